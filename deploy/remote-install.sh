#!/bin/sh
# Runs ON THE ROBOT, as root, from the folder deploy/deploy.sh copied over ssh (binary,
# config, unit and this script). Installs what changed and only that, so a second run with
# the same files changes nothing:
#
#   /usr/local/bin/frcstream                  the program (replaced atomically)
#   /etc/frcstream/frcstream.toml             the config: never replaces one edited on the
#                                             robot (the new one goes next to it as .new),
#                                             unless --force-config (the old one is kept
#                                             as .bak)
#   /etc/systemd/system/frcstream.service     the unit (then systemctl daemon-reload)
#
# then enables the service and restarts it if anything changed (or it is not running),
# and prints its status. Options: --root DIR (install under DIR; tests), --systemctl CMD
# (what to run for systemctl; tests), --force-config, --restart (restart even if nothing
# changed).
set -eu

here=$(cd "$(dirname "$0")" && pwd)
root=
systemctl=systemctl
force_config=0
restart=0
while [ $# -gt 0 ]; do
    case "$1" in
        --root) root=${2%/}; shift 2 ;;
        --systemctl) systemctl=$2; shift 2 ;;
        --force-config) force_config=1; shift ;;
        --restart) restart=1; shift ;;
        *) echo "remote-install: unknown argument $1" >&2; exit 2 ;;
    esac
done

say() { echo "robot: $*"; }
sha() { sha256sum "$1" | cut -d' ' -f1; }

# put SRC DEST MODE: installs SRC as DEST unless DEST already has that content and mode.
# Status 0 when it wrote, 1 when DEST was already right.
put() {
    if [ -f "$2" ] && cmp -s "$1" "$2" &&
        [ "$(stat -c %a "$2")" = "$3" ]; then
        return 1
    fi
    mkdir -p "$(dirname "$2")"
    cp "$1" "$2.deploy-tmp"
    chmod "$3" "$2.deploy-tmp"
    mv -f "$2.deploy-tmp" "$2"
    return 0
}

# The new binary must run here before anything is replaced (a wrong architecture, or a
# 32-bit userland on a 64-bit kernel, stops the deploy with the robot untouched).
if ! version=$("$here/frcstream" --version 2>&1); then
    echo "robot: the new binary does not run on this robot ($(uname -m)):" >&2
    echo "$version" >&2
    exit 1
fi

changed=0
if put "$here/frcstream" "$root/usr/local/bin/frcstream" 755; then
    say "installed /usr/local/bin/frcstream ($version)"
    changed=1
else
    say "/usr/local/bin/frcstream is up to date ($version)"
fi

unit_changed=0
if put "$here/frcstream.service" "$root/etc/systemd/system/frcstream.service" 644; then
    say "installed /etc/systemd/system/frcstream.service"
    unit_changed=1
    changed=1
fi

# The config. A marker holds the checksum of the config last installed by a deploy: a
# config that no longer matches it was edited on the robot.
config=$root/etc/frcstream/frcstream.toml
marker=$root/etc/frcstream/.frcstream.toml.deployed
mkdir -p "$root/etc/frcstream"
new_sum=$(sha "$here/frcstream.toml")
echo "$new_sum" >"$here/marker"
if [ ! -e "$config" ]; then
    put "$here/frcstream.toml" "$config" 644 || true
    put "$here/marker" "$marker" 644 || true
    say "installed /etc/frcstream/frcstream.toml"
    changed=1
elif cmp -s "$here/frcstream.toml" "$config"; then
    put "$here/marker" "$marker" 644 || true
    rm -f "$config.new"
    say "/etc/frcstream/frcstream.toml is up to date"
elif [ -f "$marker" ] && [ "$(sha "$config")" = "$(cat "$marker")" ]; then
    # Not edited since the last deploy: the new one replaces it.
    put "$here/frcstream.toml" "$config" 644 || true
    put "$here/marker" "$marker" 644 || true
    rm -f "$config.new"
    say "updated /etc/frcstream/frcstream.toml"
    changed=1
elif [ "$force_config" = 1 ]; then
    cp -p "$config" "$config.bak"
    put "$here/frcstream.toml" "$config" 644 || true
    put "$here/marker" "$marker" 644 || true
    rm -f "$config.new"
    say "replaced the edited /etc/frcstream/frcstream.toml (--force-config); the old one is /etc/frcstream/frcstream.toml.bak"
    changed=1
else
    put "$here/frcstream.toml" "$config.new" 644 || true
    say "KEPT /etc/frcstream/frcstream.toml: it was edited on the robot. The new one is"
    say "/etc/frcstream/frcstream.toml.new: compare them (diff), or deploy with --force-config"
fi

if ! command -v "${systemctl%% *}" >/dev/null 2>&1; then
    echo "robot: no systemctl here: frcstream is installed but not started" >&2
    exit 1
fi
if [ "$unit_changed" = 1 ]; then
    $systemctl daemon-reload
fi
if ! $systemctl is-enabled --quiet frcstream.service; then
    $systemctl enable frcstream.service
    say "enabled frcstream.service (starts at boot)"
fi
if [ "$changed" = 1 ] || [ "$restart" = 1 ] || ! $systemctl is-active --quiet frcstream.service; then
    say "restarting frcstream.service"
    # Type=notify: this returns once frcstream says READY=1 (or fails).
    if ! $systemctl restart frcstream.service; then
        $systemctl status --no-pager --lines=20 frcstream.service || true
        echo "robot: frcstream.service did not start (journalctl -u frcstream)" >&2
        exit 1
    fi
else
    say "nothing changed: frcstream.service keeps running (--restart restarts it anyway)"
fi
$systemctl status --no-pager --lines=8 frcstream.service || true

# Where to watch: the port and camera names of the config in force.
awk '
    function value(line) { sub(/^[^=]*=/, "", line); sub(/#.*/, "", line); gsub(/[" \t]/, "", line); return line }
    /^[[:space:]]*\[/ { section = $0; gsub(/[[:space:]]/, "", section) }
    section == "[server]" && /^[[:space:]]*port[[:space:]]*=/ { print "robot: port " value($0) }
    section == "[[camera]]" && /^[[:space:]]*name[[:space:]]*=/ { print "robot: camera " value($0) }
' "$config"
