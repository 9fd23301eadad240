#!/usr/bin/env bash
# Creates (once) the project's Python venv with WPILib's own libraries from PyPI, pinned:
# `pyntcore` (ntcore: the NetworkTables tests' server), `robotpy-cscore` (cscore: the
# dashboard-reader tests' HttpCamera + CvSink, and the benchmarks' reference server) and
# `numpy`. Prints the venv's python path on stdout.
#
# Idempotent: a venv whose packages have the pinned versions *and* import (ntcore, cscore
# with HttpCamera and CvSink, numpy) is reused at no cost; anything else is rebuilt.
# Location: $FRCSTREAM_VENV, else <target>/py-venv (never committed).
# Python: $PYTHON, else python3.11, else python3.
# Exit status non-zero (with a reason on stderr) when the venv cannot be made, e.g.
# without network access to PyPI; the tests then skip loudly (or fail under the
# FRCSTREAM_REQUIRE_* variables CI sets to 1).
set -euo pipefail

pins=(pyntcore==2026.2.2 robotpy-cscore==2026.2.2 numpy==2.4.6)
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${FRCSTREAM_VENV:-${CARGO_TARGET_DIR:-$root/target}/py-venv}

installed() {
    [ -x "$venv/bin/python" ] && "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import importlib.metadata as m, sys
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if m.version(name) != version:
        sys.exit(f"{name} {m.version(name)} is not {version}")
import ntcore, cscore, numpy
cscore.HttpCamera, cscore.CvSink, ntcore.NetworkTableInstance
PY
}

if ! installed; then
    py=${PYTHON:-}
    if [ -z "$py" ]; then
        for cand in python3.11 python3; do
            if command -v "$cand" >/dev/null 2>&1; then py=$cand; break; fi
        done
    fi
    [ -n "$py" ] || { echo "ensure-venv: no python3 found" >&2; exit 1; }
    mkdir -p "$(dirname "$venv")"
    # A lock keeps parallel test binaries from building the venv twice.
    exec 9>"$venv.lock"
    flock 9
    if ! installed; then
        echo "ensure-venv: installing ${pins[*]} into $venv" >&2
        rm -rf "$venv"
        "$py" -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --disable-pip-version-check -q \
            --timeout 20 --retries 1 "${pins[@]}" >&2
        installed || { echo "ensure-venv: ${pins[*]} do not all import from $venv" >&2; exit 1; }
    fi
fi
echo "$venv/bin/python"
