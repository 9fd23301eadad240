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
#   qemu-user                   the aarch64 build's unit tests and glibc check (tests/aarch64.rs)
#   openssh-server              a throw-away sshd for deploy/deploy.sh's test (tests/deploy.rs);
#                               installed without starting the machine's ssh service
#   systemd                     systemd-analyze verify of the unit (tests/systemd_notify.rs)
#   mmdebstrap, qemu-utils      the robot VM's Debian image and its overlays (tests/robot_vm.rs;
#                               vm/robot-setup.sh installs them too, with e2fsprogs)
set -euo pipefail

missing=()
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
command -v nasm >/dev/null 2>&1 || missing+=(nasm)
dpkg -s libclang-dev >/dev/null 2>&1 || missing+=(libclang-dev)
optional=()
if [ "${1:-}" = "--test" ]; then
    command -v chromium >/dev/null 2>&1 || optional+=(chromium)
    command -v chromedriver >/dev/null 2>&1 || optional+=(chromium-driver)
    command -v qemu-aarch64 >/dev/null 2>&1 || optional+=(qemu-user)
    [ -x /usr/sbin/sshd ] || optional+=(openssh-server)
    command -v systemd-analyze >/dev/null 2>&1 || optional+=(systemd)
    [ -x /usr/bin/mmdebstrap ] || optional+=(mmdebstrap)
    [ -x /usr/bin/qemu-img ] || optional+=(qemu-utils)
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
        # Packages must not start services here (openssh-server would start sshd on port
        # 22): a policy-rc.d that says no, for the time of the install, if none is there.
        policy=""
        if [ ! -e /usr/sbin/policy-rc.d ]; then
            policy=/usr/sbin/policy-rc.d
            printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
            $sudo chmod 755 "$policy"
        fi
        if ! $sudo apt-get install -y -qq --no-install-recommends "${optional[@]}" >/dev/null; then
            # One at a time, so one that cannot be had does not hold back the others.
            for package in "${optional[@]}"; do
                $sudo apt-get install -y -qq --no-install-recommends "$package" >/dev/null ||
                    echo "setup: could not install $package: the tests that need it will say SKIPPED" >&2
            done
        fi
        [ -z "$policy" ] || $sudo rm -f "$policy"
    fi
fi
