#!/usr/bin/env bash
# Builds frcstream's aarch64 release binary without Docker, for every coprocessor image:
# Raspberry Pi OS bullseye and bookworm, Ubuntu 20.04/22.04 (Jetson JetPack 5/6, Orange Pi),
# WPILibPi.
#
#   deploy/build-aarch64.sh [cargo arguments]       the release binary; prints its path
#   deploy/build-aarch64.sh test [cargo arguments]  builds and runs tests (release profile)
#                                                   with the runner given in the usual
#                                                   CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER
#                                                   (e.g. "qemu-aarch64 -L <sysroot>")
#
# zig (PyPI's `ziglang`, in a private Python venv) is the C compiler and the linker, through
# cargo-zigbuild, and links against glibc 2.31's symbols: the binary needs no glibc newer
# than 2.31 (bullseye, Ubuntu 20.04) and no shared library but glibc's own. libjpeg-turbo
# is vendored, built with its NEON code and linked statically. See ARCHITECTURE.md,
# "One aarch64 binary for every coprocessor image".
#
# Installs what is missing, once: the Rust target, the venv with ziglang, cargo-zigbuild.
# Prints the path of the binary on stdout (everything else goes to stderr). Exit status 3:
# something could not be installed (no network?); 1: the build failed.
#
# Environment:
#   FRCSTREAM_AARCH64_TARGET_DIR  cargo target dir (default: target/aarch64-build, kept
#                                 apart from the host build so neither invalidates the other)
#   FRCSTREAM_ZIG_VENV            the venv (default: ~/.cache/frcstream/zig-venv)
set -euo pipefail
exec 3>&1 1>&2

repo=$(cd "$(dirname "$0")/.." && pwd)
target=aarch64-unknown-linux-gnu
glibc=2.31
# Versions this build was tested with.
ziglang_version=0.17.1
zigbuild_version=0.24.1

target_dir=${FRCSTREAM_AARCH64_TARGET_DIR:-$repo/target/aarch64-build}
venv=${FRCSTREAM_ZIG_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/frcstream/zig-venv}
log() { echo "build-aarch64: $*"; }
cannot() { log "cannot install $*"; exit 3; }

# The build needs cmake (libjpeg-turbo) and libclang (bindgen), like the host build.
"$repo/scripts/setup.sh" || cannot "the build dependencies (scripts/setup.sh)"

if ! rustup target list --installed | grep -qx "$target"; then
    log "adding the Rust target $target"
    rustup target add "$target" || cannot "the Rust target $target"
fi

if ! "$venv/bin/python3" -c 'import ziglang' 2>/dev/null; then
    log "creating $venv with ziglang $ziglang_version"
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    if ! python3 -m venv "$venv" 2>/dev/null; then
        # Debian's own python3 keeps venv in a package of its own.
        if command -v apt-get >/dev/null; then
            sudo=()
            [ "$(id -u)" = 0 ] || sudo=(sudo)
            "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null || true
        fi
        rm -rf "$venv"
        python3 -m venv "$venv" || cannot "a Python venv (python3-venv)"
    fi
    "$venv/bin/python3" -m pip install -q --disable-pip-version-check "ziglang==$ziglang_version" ||
        cannot "ziglang $ziglang_version from PyPI"
fi

if ! command -v cargo-zigbuild >/dev/null; then
    log "installing cargo-zigbuild $zigbuild_version (once; takes a minute or two)"
    cargo install --locked "cargo-zigbuild@$zigbuild_version" || cannot "cargo-zigbuild"
fi

cd "$repo"
export CARGO_ZIGBUILD_PYTHON_PATH="$venv/bin/python3" CARGO_TARGET_DIR="$target_dir"
if [ "${1:-}" = test ]; then
    shift
    log "testing (target dir $target_dir)"
    exec cargo-zigbuild test --locked --release --target "$target.$glibc" "$@" >&3
fi
log "building (target dir $target_dir)"
cargo zigbuild --locked --release --target "$target.$glibc" "$@"

binary=$target_dir/$target/release/frcstream
[ -x "$binary" ] || { log "no binary at $binary"; exit 1; }
echo "$binary" >&3
