#!/usr/bin/env bash
# Makes (once) the benchmarks' Python venv, with the pinned robotpy-cscore (WPILib's cscore)
# and numpy, and prints its python's path. Location: $BENCH_VENV, else
# <target>/bench-venv (never committed). A venv that already has the pinned versions is
# reused at no cost.
set -euo pipefail
CSCORE_VERSION=2026.2.2
NUMPY_VERSION=2.4.6
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=${BENCH_VENV:-${CARGO_TARGET_DIR:-$root/target}/bench-venv}

installed() {
    "$venv/bin/python" - <<PY 2>/dev/null
import importlib.metadata as m, sys
sys.exit(m.version("robotpy-cscore") != "$CSCORE_VERSION" or m.version("numpy") != "$NUMPY_VERSION")
PY
}
if ! installed; then
    mkdir -p "$(dirname "$venv")"
    exec 9>"$venv.lock"
    flock 9
    if ! installed; then
        echo "bench/venv.sh: installing robotpy-cscore==$CSCORE_VERSION numpy==$NUMPY_VERSION into $venv" >&2
        rm -rf "$venv"
        python3 -m venv "$venv" >&2
        "$venv/bin/python" -m pip install --disable-pip-version-check -q --timeout 30 \
            "robotpy-cscore==$CSCORE_VERSION" "numpy==$NUMPY_VERSION" >&2
        installed || { echo "bench/venv.sh: the venv does not have the pinned versions" >&2; exit 1; }
    fi
fi
echo "$venv/bin/python"
