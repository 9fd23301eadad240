#!/usr/bin/env bash
# One command to put frcstream on the robot's coprocessor:
#
#   deploy/deploy.sh 1234                  team 1234: the coprocessor at 10.12.34.11
#   deploy/deploy.sh 1234 --user pi        as user pi (WPILibPi, Raspberry Pi OS)
#   deploy/deploy.sh photonvision.local    any host name or address
#
# Builds the aarch64 binary (deploy/build-aarch64.sh), copies it with the config and the
# systemd unit over ssh, installs them (/usr/local/bin/frcstream,
# /etc/frcstream/frcstream.toml, /etc/systemd/system/frcstream.service), enables and
# restarts the service, and prints its status and the stream URLs. Safe to run twice:
# only what changed is replaced, and the service is restarted only then. A config edited
# on the robot is never overwritten (the new one goes next to it as frcstream.toml.new)
# unless --force-config.
#
# The robot needs ssh, sudo (or root), tar and systemd; one ssh connection is opened and
# reused, so a password is asked once.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)

usage() {
    cat <<'EOF'
Usage: deploy/deploy.sh [options] <team-number | host>

  <team-number>          the coprocessor at 10.TE.AM.11 (team 1234: 10.12.34.11)
  <host>                 a host name or address
  --host HOST            connect to HOST instead (e.g. a team number's mDNS name)
  -u, --user USER        ssh user (default: ssh's own, from ~/.ssh/config or your name)
  -p, --ssh-port PORT    ssh port (default 22)
  -i, --identity FILE    ssh private key
  -o OPTION              more ssh options, as for ssh -o (repeatable)
  --binary FILE          deploy this binary instead of building one
  --config FILE          config to install (default: config/frcstream.toml)
  --force-config         replace a config edited on the robot (kept as .bak)
  --restart              restart the service even if nothing changed
  --dry-run              print where it would deploy, and stop
  -h, --help             this text

Environment (for tests): FRCSTREAM_DEPLOY_ROOT=DIR installs under DIR on the target;
FRCSTREAM_DEPLOY_SYSTEMCTL=CMD runs CMD instead of systemctl there (e.g. "echo").
EOF
}

die() {
    echo "deploy: $*" >&2
    exit 1
}

target='' host='' user='' port='' identity='' binary='' force_config=0 restart=0 dry_run=0
config=$repo/config/frcstream.toml
ssh_opts=()
while [ $# -gt 0 ]; do
    case "$1" in
        --host) host=${2:?--host needs a host}; shift 2 ;;
        -u | --user) user=${2:?--user needs a name}; shift 2 ;;
        -p | --ssh-port) port=${2:?--ssh-port needs a number}; shift 2 ;;
        -i | --identity) identity=${2:?--identity needs a file}; ssh_opts+=(-i "$identity"); shift 2 ;;
        -o) ssh_opts+=(-o "${2:?-o needs an option}"); shift 2 ;;
        --binary) binary=${2:?--binary needs a file}; shift 2 ;;
        --config) config=${2:?--config needs a file}; shift 2 ;;
        --force-config) force_config=1; shift ;;
        --restart) restart=1; shift ;;
        --dry-run) dry_run=1; shift ;;
        -h | --help) usage; exit 0 ;;
        -*) usage >&2; die "unknown option $1" ;;
        *) [ -z "$target" ] || die "one target only (got $target and $1)"; target=$1; shift ;;
    esac
done
[ -n "$target" ] || [ -n "$host" ] || { usage >&2; exit 2; }

# A team number is the robot network 10.TE.AM.0/24; the coprocessor is .11 by convention.
if [[ "$target" =~ ^[0-9]{1,5}$ ]]; then
    team=$((10#$target))
    robot=10.$((team / 100)).$((team % 100)).11
else
    robot=$target
fi
host=${host:-$robot}
destination=${user:+$user@}$host
[ -n "$port" ] && ssh_opts+=(-p "$port")
if [ "$dry_run" = 1 ]; then
    echo "deploy: would deploy to $destination${port:+ (ssh port $port)}"
    exit 0
fi

[ -f "$config" ] || die "no config file $config"
if [ -z "$binary" ]; then
    echo "deploy: building the aarch64 binary (deploy/build-aarch64.sh)" >&2
    binary=$("$repo/deploy/build-aarch64.sh") || die "the build failed"
fi
[ -x "$binary" ] || die "no binary at $binary"

stage=$(mktemp -d "${TMPDIR:-/tmp}/frcstream-deploy.XXXXXX")
trap 'ssh ${ssh_opts[@]+"${ssh_opts[@]}"} -o ControlPath="$stage/ssh" -O exit "$destination" 2>/dev/null || true; rm -rf "$stage"' EXIT
mkdir "$stage/files"
cp "$binary" "$stage/files/frcstream"
cp "$config" "$stage/files/frcstream.toml"
cp "$repo/systemd/frcstream.service" "$stage/files/frcstream.service"
cp "$repo/deploy/remote-install.sh" "$stage/files/install.sh"
chmod 755 "$stage/files/frcstream" "$stage/files/install.sh"

# One connection, reused by every ssh below (one password prompt at most).
ssh_opts+=(-o ControlMaster=auto -o ControlPath="$stage/ssh" -o ControlPersist=60
    -o ConnectTimeout=10)
echo "deploy: copying to $destination" >&2
remote_dir=$(tar -C "$stage/files" -czf - . |
    ssh "${ssh_opts[@]}" "$destination" \
        'd=$(mktemp -d /tmp/frcstream-deploy.XXXXXX) && tar -xzf - -C "$d" && echo "$d"') ||
    die "cannot copy the files to $destination over ssh"
[ -n "$remote_dir" ] || die "no folder on $destination"

args=()
[ -n "${FRCSTREAM_DEPLOY_ROOT:-}" ] && args+=(--root "$FRCSTREAM_DEPLOY_ROOT")
[ -n "${FRCSTREAM_DEPLOY_SYSTEMCTL:-}" ] && args+=(--systemctl "$FRCSTREAM_DEPLOY_SYSTEMCTL")
[ "$force_config" = 1 ] && args+=(--force-config)
[ "$restart" = 1 ] && args+=(--restart)
quoted=
[ ${#args[@]} -eq 0 ] || quoted=$(printf ' %q' "${args[@]}")
# sudo unless already root; a terminal for sudo's password prompt when there is one. The
# output is shown as it comes (the prompt too) and kept for the URLs.
tty=()
[ -t 0 ] && tty=(-t)
install="sh $remote_dir/install.sh$quoted"
# shellcheck disable=SC2029 # $install and $remote_dir are meant to expand here
if ! ssh "${ssh_opts[@]}" ${tty[@]+"${tty[@]}"} "$destination" \
    "if [ \"\$(id -u)\" = 0 ]; then $install; else sudo $install; fi; s=\$?; rm -rf $remote_dir; exit \$s" |
    tee "$stage/output"; then
    die "installing on $destination failed"
fi

stream_port=$(tr -d '\r' <"$stage/output" | awk '$1 == "robot:" && $2 == "port" {print $3; exit}')
stream_port=${stream_port:-1181}
echo
echo "frcstream is running on $host. Open in a browser, Shuffleboard or Elastic:"
echo "  http://$host:$stream_port/"
tr -d '\r' <"$stage/output" | while read -r who kind name; do
    if [ "$who" = robot: ] && [ "$kind" = camera ]; then
        echo "  http://$host:$stream_port/$name.mjpg"
    fi
done
# The ssh command as the user would type it: with the port and key they deployed with.
logs=ssh
[ -n "$port" ] && logs+=" -p $port"
[ -n "$identity" ] && logs+=" -i $(printf %q "$identity")"
echo "Logs: $logs $destination journalctl -u frcstream -f"
