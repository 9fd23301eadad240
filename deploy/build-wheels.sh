#!/usr/bin/env bash
# Builds the Python package's wheels for the robot and for laptops:
#
#   deploy/build-wheels.sh [aarch64|x86_64 ...]     (default: both) prints the wheels' paths
#
# maturin with zig as C compiler and linker (as deploy/build-aarch64.sh builds the binary)
# against glibc 2.31's symbols: tagged manylinux_2_31, the wheels install on Raspberry Pi
# OS bullseye and bookworm, Ubuntu 20.04/22.04 (JetPack 5/6), WPILibPi, and any x86-64
# Linux with glibc 2.31 or newer. One wheel per architecture serves every CPython from 3.9
# on (abi3). libjpeg-turbo is inside, with its SIMD code.
#
# Installs what is missing, once: the Rust targets, a venv with maturin and ziglang from
# PyPI (pinned). Wheels land in target/wheels; their paths go to stdout, everything else
# to stderr. Exit status 3: something could not be installed (no network?); 1: a build
# failed.
#
# Environment: FRCSTREAM_WHEEL_VENV (default ~/.cache/frcstream/wheel-venv).
set -euo pipefail
exec 3>&1 1>&2

repo=$(cd "$(dirname "$0")/.." && pwd)
glibc=2.31
maturin_version=1.13.1
ziglang_version=0.17.1
venv=${FRCSTREAM_WHEEL_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/frcstream/wheel-venv}
out=$repo/target/wheels
log() { echo "build-wheels: $*"; }
cannot() { log "cannot install $*"; exit 3; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(aarch64 x86_64)

"$repo/scripts/setup.sh" || cannot "the build dependencies (scripts/setup.sh)"

ready() {
    "$venv/bin/python3" - "$maturin_version" "$ziglang_version" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
assert m.version("maturin") == sys.argv[1] and m.version("ziglang") == sys.argv[2]
import ziglang
PY
}
if ! ready; then
    log "creating $venv with maturin $maturin_version and ziglang $ziglang_version"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" || cannot "a Python venv (python3-venv)"
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check \
        "maturin==$maturin_version" "ziglang==$ziglang_version" || cannot "maturin and ziglang from PyPI"
fi
# maturin finds zig as `python3 -m ziglang` on PATH.
export PATH="$venv/bin:$PATH"

mkdir -p "$out"
cd "$repo"
for arch in "${arches[@]}"; do
    target=$arch-unknown-linux-gnu
    if ! rustup target list --installed | grep -qx "$target"; then
        log "adding the Rust target $target"
        rustup target add "$target" || cannot "the Rust target $target"
    fi
    log "building the $arch wheel (manylinux_${glibc/./_})"
    # Each target in a directory of its own, apart from the host build.
    before=$(date +%s)
    CARGO_TARGET_DIR=$repo/target/wheel-build \
        nice maturin build --release --zig --target "$target" \
        --compatibility "manylinux_${glibc/./_}" --out "$out" >&2 || { log "the $arch build failed"; exit 1; }
    wheel=$(ls -t "$out"/frcstream-*-manylinux_*_"${arch}".whl | head -1)
    [ "$(stat -c %Y "$wheel")" -ge "$before" ] || { log "no new $arch wheel in $out"; exit 1; }
    log "$wheel: $(du -k "$wheel" | cut -f1) KB"
    echo "$wheel" >&3
done
