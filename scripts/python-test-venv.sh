#!/usr/bin/env bash
# Makes (once) the venv the Python package's tests run in, and installs frcstream into it
# from this checkout (`pip install`, maturin as the build backend, the release build
# cached in target/ like every other build). Prints the venv's python on stdout.
#
#   scripts/python-test-venv.sh           venv + the package built from this tree
#   scripts/python-test-venv.sh --no-build  venv only
#
# Pinned: pytest, numpy, pillow, opencv-python-headless (the seed's example and the
# tests), maturin (the build backend, so pip needs no build isolation and no download per
# run). Location: $FRCSTREAM_PY_TEST_VENV, else <target>/py-test-venv. Python:
# $PYTHON, else python3.11, else python3. Exit status 3: the venv cannot be made (no PyPI).
set -euo pipefail

pins=(pytest==9.0.2 numpy==2.4.6 pillow==12.1.1 opencv-python-headless==4.13.0.92 maturin==1.13.1)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${FRCSTREAM_PY_TEST_VENV:-${CARGO_TARGET_DIR:-$root/target}/py-test-venv}
log() { echo "python-test-venv: $*" >&2; }

installed() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(f"{name} {m.version(name)} is not {version}")
import pytest, numpy, PIL.Image, cv2
PY
}

if ! installed; then
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
        done
    fi
    [ -n "$py" ] || { log "no python3 found"; exit 3; }
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! installed; then
        log "installing ${pins[*]} into $venv"
        rm -rf "$venv"
        if ! "$py" -m venv "$venv" >&2; then
            # Debian's own python3 keeps venv in a package of its own.
            if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 || true
            fi
            rm -rf "$venv"
            "$py" -m venv "$venv" >&2 || { log "cannot make a venv with $py (python3-venv)"; exit 3; }
        fi
        "$venv/bin/python" -m pip install --disable-pip-version-check -q \
            --timeout 20 --retries 1 "${pins[@]}" >&2 || { log "cannot install ${pins[*]}"; exit 3; }
        installed || { log "${pins[*]} do not all import from $venv"; exit 3; }
    fi
fi

if [ "${1:-}" != --no-build ]; then
    log "building and installing frcstream (pip install $root)"
    # Without build isolation: maturin is in the venv, pinned; the build reuses target/.
    PATH="$venv/bin:$PATH" nice "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        --no-build-isolation --no-deps --force-reinstall "$root" >&2 || { log "pip install failed"; exit 1; }
fi
echo "$venv/bin/python"
