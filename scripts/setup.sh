#!/usr/bin/env bash
# Installs what building and testing frcstream needs on a fresh Debian machine that has
# only the Rust toolchain, gcc and Python. Idempotent: installs nothing that is present.
#
#   cmake, nasm     build the vendored libjpeg-turbo (with its SIMD code)
#   libclang-dev    bindgen, for the V4L2 kernel structures (crate v4l2-sys-mit)
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)

if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; update only when an install needs it.
    $sudo apt-get update -qq || true
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
