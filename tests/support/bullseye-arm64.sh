#!/usr/bin/env bash
# Prints a folder holding Debian 11 (bullseye)'s arm64 PACKAGEs unpacked, for
# `qemu-aarch64 -L <folder> ...`: what Raspberry Pi OS bullseye, the oldest system a
# coprocessor runs, has.
#
#   bullseye-arm64.sh NAME PACKAGE...
#
#   glibc-2.31 libc6 libgcc-s1               glibc 2.31 (~3 MB): a binary that runs there
#                                            runs on Ubuntu 20.04 and JetPack 5 (tests/aarch64.rs)
#   python3.9 libc6 ... python3.9-minimal    Python 3.9 with its standard library and the
#                                            libraries they load (tests/python_wheel.rs)
#
# Downloads once (`apt-get download`) into a cache named NAME, through a private apt state:
# the host's dpkg architectures and sources are untouched. The mirror is the one the host's
# apt already uses. Exit status 3 when it cannot be had here (no apt, no mirror); 2 for
# wrong arguments.
set -euo pipefail

[ $# -ge 2 ] || { echo "usage: bullseye-arm64.sh NAME PACKAGE..." >&2; exit 2; }
name=$1
shift
packages=("$@")
cache=${XDG_CACHE_HOME:-$HOME/.cache}/frcstream/$name-arm64
root=$cache/root
if [ -f "$root/.done" ]; then
    echo "$root"
    exit 0
fi
if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
    echo "no apt-get/dpkg-deb here" >&2
    exit 3
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || { echo "no $keyring (package debian-archive-keyring)" >&2; exit 3; }

# The host's Debian mirror: the archive its own release (not -security) comes from.
# shellcheck disable=SC2016 # apt's own $(FIELD) syntax
mirror=$(apt-get indextargets --format '$(REPO_URI) $(RELEASE)' 2>/dev/null |
    awk '$2 !~ /-/ && $1 !~ /security/ {print $1; exit}')
[ -n "$mirror" ] || { echo "no Debian mirror in the host's apt sources" >&2; exit 3; }

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
[ -f "$root/.done" ] && { echo "$root"; exit 0; }

apt_dir=$cache/apt
mkdir -p "$apt_dir/state/lists/partial" "$apt_dir/cache/archives/partial" "$apt_dir/etc/sources.list.d"
touch "$apt_dir/state/status"
echo "deb [signed-by=$keyring] $mirror bullseye main" >"$apt_dir/etc/sources.list"
apt_opts=(-o APT::Architecture=arm64 -o APT::Architectures=arm64
    -o Dir::State="$apt_dir/state" -o Dir::State::status="$apt_dir/state/status"
    -o Dir::Cache="$apt_dir/cache" -o Dir::Etc::sourcelist="$apt_dir/etc/sources.list"
    -o Dir::Etc::sourceparts="$apt_dir/etc/sources.list.d"
    -o Acquire::Languages=none -o Debug::NoLocking=1 -o APT::Sandbox::User=root)
echo "bullseye-arm64 ($name): reading bullseye's arm64 package list" >&2
apt-get "${apt_opts[@]}" update -qq >&2 || { echo "apt-get update (bullseye arm64) failed" >&2; exit 3; }

debs=$(mktemp -d "$cache/.debs.XXXXXX")
trap 'rm -rf "$debs"' EXIT
(cd "$debs" && apt-get "${apt_opts[@]}" download -qq "${packages[@]/%/:arm64}" >&2) ||
    { echo "cannot download bullseye's ${packages[*]} (arm64)" >&2; exit 3; }
rm -rf "$root" "$root.tmp"
mkdir -p "$root.tmp"
for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$root.tmp"
    basename "$deb" >>"$root.tmp/.debs"
done
mv "$root.tmp" "$root"
touch "$root/.done"
echo "$root"
