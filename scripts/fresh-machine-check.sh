#!/usr/bin/env bash
# Is the test command fresh-machine proof? Runs CI's command (`bash .ci/run`, which sets
# every FRCSTREAM_REQUIRE_*) on a fresh clone inside a chroot that looks like a new machine
# of the project's kind (Debian 12 bookworm, x86-64, the Rust toolchain, gcc, pyenv's
# CPython 3.11.7), so a package that this machine only has because an earlier run
# installed it cannot make the tests pass.
#
#   scripts/fresh-machine-check.sh [options] [REF]
#     --repo DIR      repository to clone (default: the one this script lives in)
#     --ref REF       commit, branch or tag to check (default: HEAD); REF alone works too
#     --cache DIR     where the root file system is cached and runs are kept
#                     (default: $FRCSTREAM_FRESH_CACHE, else /var/cache/frcstream-fresh)
#     --keep          keep the run's writable layer (the clone, target/, ~/.cache) afterwards
#     --image-only    build (or check) the cached root file system, run nothing
#     --shell         an interactive shell in the fresh chroot instead of .ci/run
#     --timeout SECS  end the run after SECS (default 5400: CI's 90 minutes), at once: its
#                     PID namespace ends with everything in it (exit status 137)
#     --target-dir D  set CARGO_TARGET_DIR=D inside (default: unset, as CI has it: the
#                     fresh clone's own target/ is fresh)
# Needs root (debootstrap, mounts, chroot), debootstrap and a reachable Debian mirror.
# Prints the log's path first; at the end the exit status of .ci/run, its wall time, and
# the lines that tell how it went (preflight, `test result:`, FAILED, SKIPPED, panics).
# Exit status: that of .ci/run (137 on timeout); 2 for bad arguments or a setup failure.
#
# How it is made
#   The root file system (cached as <cache>/rootfs-<key>, key = IMAGE_VERSION + the
#   package list + the host's apt sources) is `debootstrap --variant=minbase bookworm`
#   from the Debian mirror the host's /etc/apt/sources.list* name, then apt-get install
#   --no-install-recommends of scripts/fresh-machine-packages.txt: every Debian package a
#   new machine of this kind has (qemu-utils and osslsigncode from bookworm-backports, as
#   there), then the image's own touches: the host's apt sources (Debian's only), its
#   docker-style apt.conf.d files and /usr/sbin/policy-rc.d (exit 101), /etc/pip.conf,
#   an empty /opt/wheels, the second git and cargo-nextest under /usr/local, and no apt
#   package lists (`apt-get update` has not run on a new machine).
#   Each run stacks an overlay on it (writes go to <cache>/runs/<run>/, removed afterwards
#   unless --keep), and overlays on the host's /root/.rustup, /root/.cargo and
#   /root/.pyenv (read from the host, never written: `rustup target add`, crate
#   downloads and so on land in the run's layer). Binaries that `cargo install` added to
#   the host's ~/.cargo/bin (.crates.toml) are hidden: a new machine has none. HOME is
#   the chroot's /root, which has only .bashrc, .profile and those three, so
#   ~/.cache/frcstream-vm, ~/.cache/pip and the zig venv start empty. The commit is
#   cloned (git clone --no-hardlinks, checked out detached) to /work/ci/frcstream and
#   `bash .ci/run` runs there with CI=true, stdin from /dev/null, a clean environment
#   (the host's PATH, LANG, CA-bundle, PIP_*, PYENV_ROOT, RUST_* variables), under
#   `nice -n 10`, in its own PID namespace (everything it started ends with it) and a
#   private mount namespace (every mount goes when the script exits; a trap unmounts
#   them anyway).
#
# Where the chroot differs from a new machine (and where it does not)
#   - Same: the kernel and /dev (bind-mounted: /dev/kvm, /dev/net/tun, /dev/shm), there is
#     no /lib/modules on either; the network (the host's: only package registries); root;
#     systemd is installed but is not PID 1 on either (the machine's PID 1 is the
#     sandbox's own init, process_api; in the chroot it is the run's own shell, in a PID namespace where
#     the other engineers' processes are not visible).
#   - /proc and /sys are mounted fresh; /run is the image's own directory (on the
#     machine it is a plain directory too, not a tmpfs), so `ip netns` and qemu find it
#     empty of the host's state.
#   - Package versions are today's bookworm (point release and security updates), not
#     the image's snapshot; packages from outside Debian are absent (google-cloud-cli,
#     kubectl, nodejs/npm; under /usr/local the docker client, postgres, terraform).
#   - The Rust toolchain and pyenv are the host's as they are now (checked: no pip
#     package in 3.11.7 beyond the image's list), less what sessions add there that a
#     new machine lacks: rustup targets beyond the host's (removed in the run's layer)
#     and `cargo install`ed binaries (hidden). ~/.cargo/registry holds the crates the
#     host has downloaded: cargo fetches less, but builds everything. The host's
#     directories are the overlays' lower layers, read live: a session that changes
#     them during a run may show through.
#   - The CPU is shared with whatever else runs on the host: timing-sensitive tests
#     (fps, VM boots under TCG) run slower than on CI's own machine.
#   - The session machinery's ~/.gitconfig, ~/.npmrc and ~/.config are absent.
#   - The hostname, /etc/hosts and /etc/resolv.conf are the host's (copied), and so are
#     the CA certificates under /usr/local/share/ca-certificates (the image's and the
#     sandbox's, which the package registries' TLS needs: without them pip fails with
#     CERTIFICATE_VERIFY_FAILED), installed with update-ca-certificates at each run.
set -euo pipefail
# The whole script is one block, read before it runs: a checkout that changes under a
# running check (a rebase, an edit) cannot change what it does next.
{
IMAGE_VERSION=1
SUITE=bookworm
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
self_repo=$(cd "$here/.." && pwd)
packages_file=$here/fresh-machine-packages.txt

orig_args=("$@")
repo=$self_repo
ref=HEAD
cache=${FRCSTREAM_FRESH_CACHE:-/var/cache/frcstream-fresh}
keep=0
image_only=0
shell=0
timeout_secs=5400
target_dir=""
while [ $# -gt 0 ]; do
    case "$1" in
        --repo) repo=$2; shift 2 ;;
        --ref) ref=$2; shift 2 ;;
        --cache) cache=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        --image-only) image_only=1; shift ;;
        --shell) shell=1; shift ;;
        --timeout) timeout_secs=$2; shift 2 ;;
        --target-dir) target_dir=$2; shift 2 ;;
        -h|--help) sed -n '2,/^# Exit status/p' "$0"; exit 0 ;;
        -*) echo "fresh-machine-check: unknown option $1" >&2; exit 2 ;;
        *) ref=$1; shift ;;
    esac
done

log() { echo "fresh-machine-check: $*" >&2; }
die() { log "error: $*"; exit 2; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap, mount, chroot)"
for tool in debootstrap unshare chroot git flock mount; do
    command -v "$tool" >/dev/null || die "needs $tool (apt-get install debootstrap)"
done

# Everything below runs in a private mount namespace: its mounts vanish with it, and
# none of them is ever seen by (or propagated to) the host's other processes.
if [ -z "${FRESH_CHECK_IN_NS:-}" ]; then
    FRESH_CHECK_IN_NS=1 exec unshare --mount --propagation private "$0" "${orig_args[@]}"
fi

# ------------------------------------------------------------- apt sources ----
# The host's active Debian sources (files under sources.list.d that are switched off by
# a suffix are not read by apt, and neither are they copied).
host_sources=()
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -s "$f" ] || continue
    grep -qE '^[^#]*debian' "$f" || continue
    grep -qE '^[^#]*(https?://|URIs:)' "$f" || continue
    host_sources+=("$f")
done
[ ${#host_sources[@]} -gt 0 ] || die "no Debian source in /etc/apt/sources.list*"
# The main archive's mirror: the first URI that is neither security nor a third party.
mirror=$(cat "${host_sources[@]}" |
    grep -oE '^[^#]*(deb|URIs:)[^#]*https?://[^ ]+' | grep -oE 'https?://[^ ]+' |
    grep -v -- '-security' | grep -E '/debian/?$' | head -1)
[ -n "$mirror" ] || die "no Debian mirror found in ${host_sources[*]}"

key=$({ echo "$IMAGE_VERSION $SUITE $mirror"; cat "$packages_file" "${host_sources[@]}"; } |
    sha1sum | cut -c1-12)
rootfs=$cache/rootfs-$key
mkdir -p "$cache/runs" "$cache/logs"

# --------------------------------------------------------------- the image ----
mounted=()
umount_all() {
    local i
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do
        umount -R "${mounted[$i]}" 2>/dev/null || umount -Rl "${mounted[$i]}" 2>/dev/null || true
    done
    mounted=()
}
mnt() { # mnt <mount arguments...> <target>
    mount "$@"
    mounted+=("${!#}")
}

build_image() {
    local tmp=$cache/.tmp.rootfs-$key
    findmnt -rn -o TARGET | grep -qF "$tmp/" && die "something is mounted under $tmp"
    rm -rf --one-file-system "$tmp"
    log "building the root file system ($SUITE from $mirror; takes some minutes, once)"
    debootstrap --variant=minbase --components=main "$SUITE" "$tmp" "$mirror" \
        >"$cache/logs/debootstrap-$key.log" 2>&1 ||
        die "debootstrap failed: see $cache/logs/debootstrap-$key.log"

    # The image's apt setup: the host's Debian sources, docker-style apt.conf.d files,
    # a policy-rc.d that keeps services from starting.
    rm -f "$tmp/etc/apt/sources.list"
    local f
    for f in "${host_sources[@]}"; do
        case "$f" in
            /etc/apt/sources.list) cp "$f" "$tmp/etc/apt/sources.list" ;;
            *) cp "$f" "$tmp/etc/apt/sources.list.d/" ;;
        esac
    done
    for f in /etc/apt/apt.conf.d/docker-* /etc/apt/apt.conf.d/99artifact-registry; do
        [ -f "$f" ] && cp "$f" "$tmp/etc/apt/apt.conf.d/"
    done
    # For the build: no service starts, and the image's qemu-utils and osslsigncode are
    # backports.
    printf '#!/bin/sh\nexit 101\n' >"$tmp/usr/sbin/policy-rc.d"
    chmod 755 "$tmp/usr/sbin/policy-rc.d"
    echo "deb $mirror $SUITE-backports main" >"$tmp/etc/apt/sources.list.d/zz-fresh-build-backports.list"
    cp /etc/resolv.conf "$tmp/etc/resolv.conf"

    mnt -t proc proc "$tmp/proc"
    mnt --rbind /dev "$tmp/dev"
    mnt -t sysfs sysfs "$tmp/sys"
    local in=(chroot "$tmp" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
        LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive)
    "${in[@]}" apt-get update -qq >>"$cache/logs/debootstrap-$key.log" 2>&1 ||
        { umount_all; die "apt-get update in the new root failed"; }
    # Every listed package that Debian has; the others are named in the log.
    local wanted available missing
    wanted=$(grep -v '^#' "$packages_file" | grep -v -E '^(qemu-utils|osslsigncode)$' | tr '\n' ' ')
    # shellcheck disable=SC2086
    available=$("${in[@]}" apt-cache show --no-all-versions $wanted 2>/dev/null |
        awk '/^Package: /{print $2}' | sort -u)
    missing=$(comm -23 <(echo "$wanted" | tr ' ' '\n' | grep . | sort -u) <(echo "$available"))
    [ -z "$missing" ] || log "not in Debian $SUITE, left out: $(echo "$missing" | tr '\n' ' ')"
    log "installing $(echo "$available" | wc -l) packages into the root file system"
    # shellcheck disable=SC2086
    "${in[@]}" apt-get install -y -q --no-install-recommends $available \
        qemu-utils/"$SUITE"-backports osslsigncode/"$SUITE"-backports \
        >>"$cache/logs/debootstrap-$key.log" 2>&1 ||
        { umount_all; die "apt-get install in the new root failed: see $cache/logs/debootstrap-$key.log"; }
    umount_all
    rm -f "$tmp/etc/apt/sources.list.d/zz-fresh-build-backports.list"
    # A new machine has never run apt-get update: no package lists, no cached .debs.
    rm -rf "$tmp"/var/lib/apt/lists/* "$tmp"/var/cache/apt/*.bin "$tmp"/var/cache/apt/archives/*.deb
    mkdir -p "$tmp/var/lib/apt/lists/partial"
    # The image has a policy-rc.d that says no (docker-style) when the host has one.
    if [ -f /usr/sbin/policy-rc.d ]; then
        cp -p /usr/sbin/policy-rc.d "$tmp/usr/sbin/policy-rc.d"
    else
        rm -f "$tmp/usr/sbin/policy-rc.d"
    fi

    # The image's own files outside Debian's packages that a build could use.
    [ -f /etc/pip.conf ] && cp /etc/pip.conf "$tmp/etc/pip.conf"
    mkdir -p "$tmp/opt/wheels"
    mkdir -p "$tmp/usr/local/bin" "$tmp/usr/local/libexec" "$tmp/usr/local/share"
    for f in /usr/local/bin/git /usr/local/bin/git-* /usr/local/bin/scalar /usr/local/bin/cargo-nextest; do
        [ -e "$f" ] && cp -a "$f" "$tmp/usr/local/bin/"
    done
    for f in /usr/local/libexec/git-core /usr/local/share/git-core; do
        [ -e "$f" ] && cp -a "$f" "$tmp${f%/*}/"
    done
    for f in .bashrc .profile; do
        [ -f "/root/$f" ] && cp "/root/$f" "$tmp/root/$f"
    done
    mkdir -p "$tmp/root/.rustup" "$tmp/root/.cargo" "$tmp/root/.pyenv" "$tmp/work"
    echo "frcstream fresh-machine image v$IMAGE_VERSION ($SUITE, $mirror), built $(date -u +%FT%TZ)" \
        >"$tmp/.fresh-machine-image"
    mv "$tmp" "$rootfs"
    log "root file system ready: $rootfs ($(du -sh "$rootfs" | cut -f1))"
}

exec 8>"$cache/.image.lock"
flock 8
if [ ! -f "$rootfs/.fresh-machine-image" ]; then
    build_image
else
    log "cached root file system: $rootfs"
fi
flock -u 8
[ "$image_only" = 0 ] || exit 0

# ---------------------------------------------------------------- the run ----
commit=$(git -C "$repo" rev-parse --verify "$ref^{commit}") || die "no commit $ref in $repo"
run=$cache/runs/$(date -u +%Y%m%dT%H%M%SZ)-${commit:0:10}
root=$run/root
logfile=$cache/logs/$(basename "$run").log
mkdir -p "$run/root" "$run/upper" "$run/work"

# shellcheck disable=SC2317  # (run by the trap)
finish() {
    local status=$?
    # The run's PID namespace has ended every process it started; unmount, then drop
    # the writable layer unless asked to keep it.
    umount_all
    if findmnt -rn -o TARGET | grep -qF "$run/"; then
        log "something under $run is still mounted: left as it is"
    elif [ "$keep" = 0 ] && [ -d "$run" ]; then
        rm -rf --one-file-system "$run"
    elif [ -d "$run" ]; then
        log "kept the run's writable layer: $run (the chroot's files are under $run/upper)"
    fi
    exit "$status"
}
trap finish EXIT
trap 'exit 130' INT TERM HUP

mnt -t overlay overlay -o "lowerdir=$rootfs,upperdir=$run/upper,workdir=$run/work" "$root"
for d in .rustup .cargo .pyenv; do
    [ -d "/root/$d" ] || continue
    mkdir -p "$run/$d-upper" "$run/$d-work"
    # redirect_dir: rustup renames directories of the lower layer (target remove).
    mnt -t overlay overlay -o "redirect_dir=on,lowerdir=/root/$d,upperdir=$run/$d-upper,workdir=$run/$d-work" \
        "$root/root/$d"
done
# Binaries `cargo install` put on the host are not on a new machine.
if [ -f "$root/root/.cargo/.crates.toml" ]; then
    while read -r bin; do
        [ -n "$bin" ] && rm -f "$root/root/.cargo/bin/$bin"
    done < <(grep -oE '\[[^]]*\]' "$root/root/.cargo/.crates.toml" | tr -d '[]" ' | tr ',' '\n')
    rm -f "$root/root/.cargo/.crates.toml" "$root/root/.cargo/.crates2.json"
fi
mnt --rbind /dev "$root/dev"
mount --make-rslave "$root/dev"
mnt -t sysfs sysfs "$root/sys"
for f in resolv.conf hosts hostname; do
    [ -f "/etc/$f" ] && { rm -f "$root/etc/$f"; cp "/etc/$f" "$root/etc/$f"; }
done

log "cloning $repo at $commit ($ref)"
mkdir -p "$root/work/ci"
git clone -q --no-hardlinks --no-checkout "$repo" "$root/work/ci/frcstream"
git -C "$root/work/ci/frcstream" -c advice.detachedHead=false checkout -q --detach "$commit"

# The machine's environment, less the session's own variables.
envs=(HOME=/root USER=root LOGNAME=root SHELL=/bin/bash CI=true
    PATH=/root/.cargo/bin:/root/.pyenv/plugins/pyenv-virtualenv/shims:/root/.pyenv/shims:/root/.pyenv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin)
while IFS='=' read -r name _; do
    case "$name" in
        LANG|LC_*|DEBIAN_FRONTEND|PYENV_ROOT|PIP_*|PYTHONDONTWRITEBYTECODE|PYTHONUNBUFFERED|\
        RUST_BACKTRACE|RUSTUP_AUTO_INSTALL|OPENBLAS_*|*_CA_BUNDLE|*_CA_CERTS*|SSL_CERT_*|\
        GIT_SSL_CAINFO|NIX_SSL_CERT_FILE|GRPC_DEFAULT_SSL_ROOTS_FILE_PATH)
            envs+=("$name=${!name}") ;;
    esac
done < <(env)
[ -z "$target_dir" ] || envs+=("CARGO_TARGET_DIR=$target_dir")

inside=(unshare --pid --fork --kill-child --mount-proc="$root/proc"
    chroot "$root" /usr/bin/env -i "${envs[@]}")
# The machine's own CA certificates (the image's, and the one the sandbox's network
# presents for the package registries' TLS): the same trust as on the host, made the
# way the machine makes it.
if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$root/usr/local/share/ca-certificates/"
    "${inside[@]}" update-ca-certificates >"$run/update-ca-certificates.log" 2>&1 ||
        { cat "$run/update-ca-certificates.log" >&2; die "update-ca-certificates failed in the chroot"; }
fi
# A new machine's toolchains have the host's own target only; others that a session
# added to the host (`rustup target add`) are removed here, in the run's layer.
# shellcheck disable=SC2016  # (expanded inside)
"${inside[@]}" bash -c '
    host=$(rustc -vV | sed -n "s/^host: //p")
    for tc in $(rustup toolchain list | cut -d" " -f1); do
        for t in $(rustup "+$tc" target list --installed 2>/dev/null); do
            [ "$t" = "$host" ] || rustup "+$tc" target remove "$t" || exit 1
        done
    done' >"$run/rustup-targets.log" 2>&1 ||
    { cat "$run/rustup-targets.log" >&2; die "could not reset the chroot's rustup targets"; }
if [ "$shell" = 1 ]; then
    log "a shell in the fresh chroot (the clone is /work/ci/frcstream); exit to unmount"
    "${inside[@]}" bash -l
    exit
fi

log "log: $logfile"
log "running bash .ci/run at ${commit:0:12} (nice -n 10, timeout ${timeout_secs} s)"
start=$(date +%s)
set +e
{
    echo "# fresh-machine-check: $repo $ref = $commit, image $(cat "$rootfs/.fresh-machine-image")"
    echo "# started $(date -u +%FT%TZ)"
    nice -n 10 timeout --signal=KILL "$timeout_secs" "${inside[@]}" \
        bash -c 'cd /work/ci/frcstream && exec bash .ci/run' </dev/null 2>&1
} >"$logfile" 2>&1
status=$?
set -e
secs=$(($(date +%s) - start))
echo "# ended $(date -u +%FT%TZ): exit status $status after ${secs} s" >>"$logfile"

echo "=== what the log says ($logfile) ==="
grep -E '^preflight:|test result:|Running (unittests|tests/|benches/)|SKIPPED|FAILED|panicked at|^error(\[|:)|^failures:|^    [a-z_:0-9]+$|test\.sh:|setup:|ensure-venv:|build-aarch64:|vm/setup: error' \
    "$logfile" | cut -c1-300 | tail -n 200 || true
echo "=== fresh-machine-check: .ci/run at ${commit:0:12} exited $status after $((secs / 60)) min $((secs % 60)) s ==="
exit "$status"
}
