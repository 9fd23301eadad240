#!/usr/bin/env bash
# Creates (once) a Python venv holding WPILib's ntcore (PyPI `pyntcore`, pinned) for the
# NetworkTables tests, and prints the venv's python path on stdout.
#
# Idempotent: a venv that already imports the pinned version is reused at no cost.
# Location: $PYNTCORE_VENV, else <repo>/target/pyntcore-venv (never committed).
# Python: $PYTHON, else python3.11, else python3.
# Exit status non-zero (with a reason on stderr) when the venv cannot be made,
# e.g. without network access to PyPI; the tests then skip loudly.
set -euo pipefail

version=2026.2.2
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${PYNTCORE_VENV:-${CARGO_TARGET_DIR:-$root/target}/pyntcore-venv}

installed() {
    [ -x "$venv/bin/python" ] &&
        "$venv/bin/python" -c "import importlib.metadata as m, sys; sys.exit(m.version('pyntcore') != '$version')" 2>/dev/null &&
        "$venv/bin/python" -c "import ntcore" 2>/dev/null
}

if ! installed; then
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
        done
    fi
    [ -n "$py" ] || { echo "ensure-pyntcore: no python3 found" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    # A lock keeps parallel test runs from building the venv twice.
    exec 9>"$venv.lock"
    flock 9
    if ! installed; then
        echo "ensure-pyntcore: installing pyntcore==$version into $venv" >&2
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --disable-pip-version-check -q \
            --timeout 20 --retries 1 "pyntcore==$version" >&2
        installed || { echo "ensure-pyntcore: pyntcore $version does not import" >&2; exit 1; }
    fi
fi
echo "$venv/bin/python"
