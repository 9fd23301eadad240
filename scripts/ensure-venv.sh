#!/usr/bin/env bash
# Creates (once) one of the project's Python venvs with pinned packages from PyPI, and
# prints its python's path on stdout. The one script for every venv the project makes:
#
#   scripts/ensure-venv.sh [wpilib]      WPILib's own libraries: `pyntcore` (ntcore: the
#       NetworkTables tests' server), `robotpy-cscore` (cscore: the dashboard-reader tests'
#       HttpCamera + CvSink, the benchmarks' reference server) and `numpy`; for the tests
#       and bench/*.sh. Location: $FRCSTREAM_VENV, else <target>/py-venv.
#   scripts/ensure-venv.sh python-tests  the Python package's tests (scripts/test-python.sh):
#       pytest, numpy, pillow, opencv-python-headless (the seed's example and the tests),
#       maturin. Location: $FRCSTREAM_PY_TEST_VENV, else <target>/py-test-venv.
#   scripts/ensure-venv.sh bench-python  bench/python.sh: robotpy-cscore, numpy,
#       opencv-python-headless, gevent (the original MjpgServer), maturin.
#       Location: <target>/bench-py-venv.
#
#   --with-frcstream (after the venv's name): also builds and installs frcstream from this
#       checkout (`pip install`, maturin from the venv as the build backend, so no build
#       isolation and no download per run; the release build is cached in target/).
#
# Idempotent: a venv whose packages have the pinned versions *and* import is reused at no
# cost; anything else is rebuilt, under a lock (parallel test binaries build it once).
# Made from what a fresh machine has: Python ($PYTHON, else python3.11, else python3) and
# its venv module (Debian's python3-venv, installed here when missing and we are root).
# Exit status 3, with a reason on stderr, when the venv cannot be made here (e.g. no
# network access to PyPI): the tests then skip loudly, or fail under the
# FRCSTREAM_REQUIRE_* variables CI sets to 1. Exit status 1: frcstream does not build.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
target=${CARGO_TARGET_DIR:-$root/target}
kind=${1:-wpilib}
with_frcstream=${2:-}
case "$kind" in
    wpilib)
        pins=(pyntcore==2026.2.2 robotpy-cscore==2026.2.2 numpy==2.4.6)
        imports="import ntcore, cscore, numpy; cscore.HttpCamera, cscore.CvSink, ntcore.NetworkTableInstance"
        venv=${FRCSTREAM_VENV:-$target/py-venv}
        ;;
    python-tests)
        pins=(pytest==9.0.2 numpy==2.4.6 pillow==12.1.1 opencv-python-headless==4.13.0.92 maturin==1.13.1)
        imports="import pytest, numpy, PIL.Image, cv2"
        venv=${FRCSTREAM_PY_TEST_VENV:-$target/py-test-venv}
        ;;
    bench-python)
        pins=(robotpy-cscore==2026.2.2 numpy==2.4.6 opencv-python-headless==4.13.0.92 gevent==26.9.0 maturin==1.13.1)
        imports="import cscore, cv2, gevent, numpy"
        venv=$target/bench-py-venv
        ;;
    *) echo "ensure-venv: unknown venv '$kind' (wpilib, python-tests or bench-python)" >&2; exit 2 ;;
esac
log() { echo "ensure-venv: $*" >&2; }
case "$with_frcstream" in
    "" | --with-frcstream) ;;
    *) log "unknown option '$with_frcstream' (--with-frcstream)"; exit 2 ;;
esac
cannot() { log "$*"; exit 3; }

# The pinned versions are installed and the packages import.
installed() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$imports" "${pins[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[2:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(f"{name} {m.version(name)} is not {version}")
exec(sys.argv[1])
PY
}

# A venv at $venv made by python $1; Debian's own python3 keeps venv in a package of its own.
make_venv() {
    rm -rf "$venv"
    "$1" -m venv "$venv" >&2 && return 0
    if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >&2 || true
    fi
    rm -rf "$venv"
    "$1" -m venv "$venv" >&2 || cannot "cannot make a venv with $1 (apt-get install python3-venv)"
}

if ! installed; then
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
        done
    fi
    [ -n "$py" ] || cannot "no python3 found"
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! installed; then
        log "installing ${pins[*]} into $venv"
        make_venv "$py"
        "$venv/bin/python" -m pip install --disable-pip-version-check -q \
            --timeout 20 --retries 1 "${pins[@]}" >&2 || cannot "cannot install ${pins[*]} (PyPI?)"
        installed || cannot "${pins[*]} do not all import from $venv"
    fi
fi

if [ -n "$with_frcstream" ]; then
    log "building and installing frcstream into $venv (pip install $root)"
    PATH="$venv/bin:$PATH" nice "$venv/bin/python" -m pip install --disable-pip-version-check -q \
        --no-build-isolation --no-deps --force-reinstall "$root" >&2 ||
        { log "pip install of frcstream failed"; exit 1; }
fi
echo "$venv/bin/python"
