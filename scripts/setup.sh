#!/usr/bin/env bash
# Installs what building and testing frcstream needs on a fresh Debian machine that has
# only the Rust toolchain, gcc and Python. Idempotent: installs nothing that is present.
#
#   cmake, nasm     build the vendored libjpeg-turbo (with its SIMD code)
#   libclang-dev    bindgen, for the V4L2 kernel structures (crate v4l2-sys-mit)
#
# With --test (scripts/test.sh) also, on a best-effort basis (a test that lacks them says
# SKIPPED):
#   chromium, chromium-driver   the web page's test in a real browser (tests/browser.rs)
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
optional=()
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || optional+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || optional+=(chromium-driver)
fi

if [ $((${#missing[@]} + ${#optional[@]})) -gt 0 ]; then
    echo "setup: installing ${missing[*]} ${optional[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # A fresh machine has no package lists yet; update only when an install needs it.
    $sudo apt-get update -qq || true
    if [ ${#missing[@]} -gt 0 ]; then
        $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    if [ ${#optional[@]} -gt 0 ]; then
        $sudo apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null ||
            echo "setup: could not install ${optional[*]}: the browser test will say SKIPPED" >&2
    fi
fi
