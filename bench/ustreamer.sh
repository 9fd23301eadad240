#!/usr/bin/env bash
# frcstream against Debian's ustreamer on the same V4L2 devices in the qemu VM (vm/):
# YUYV 640x480@25 from vivid with 4 clients, MJPEG 640x480@30 passthrough from
# v4l2loopback with 20. Prints the table of docs/BENCHMARKS.md.
#
#   bench/ustreamer.sh [--scenarios yuyv,mjpeg] [--seconds 7] [--repeat 3] [--json FILE]
#
# Installs what it needs: the build tools (scripts/setup.sh), the VM's cache (vm/setup.sh,
# run by vm.py), the ustreamer package and its libraries (apt-get download, unpacked under
# ~/.cache/frcstream-bench, never installed on the host), numpy for the test frames
# (scripts/ensure-venv.sh), the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
USTREAMER_PKGS="ustreamer libevent-2.1-7 libevent-pthreads-2.1-7 libbsd0 libmd0"
cache=${FRCSTREAM_BENCH_CACHE:-$HOME/.cache/frcstream-bench}
root=$cache/ustreamer-root

scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh)
if [ ! -x "$root/usr/bin/ustreamer" ]; then
    echo "bench/ustreamer.sh: fetching $USTREAMER_PKGS" >&2
    mkdir -p "$cache/debs"
    # apt's sandbox user cannot write into root's home.
    (cd "$cache/debs" && { apt-get download -qq $USTREAMER_PKGS 2>/dev/null ||
        { apt-get update -qq && apt-get download -qq $USTREAMER_PKGS; }; } >&2)
    rm -rf "$root.tmp"
    for deb in "$cache"/debs/*.deb; do dpkg-deb -x "$deb" "$root.tmp"; done
    rm -rf "$root"
    mv "$root.tmp" "$root"
fi
cargo build --release --bin frcstream --example mjpeg_load --example bench_pushed >&2
exec "$python" bench/ustreamer_compare.py --ustreamer-root "$root" "$@"
