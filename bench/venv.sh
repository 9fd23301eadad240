#!/usr/bin/env bash
# Prints the python of the project's venv, with the pinned robotpy-cscore (WPILib's
# cscore) and numpy the benchmarks use. The venv is made once by scripts/ensure-venv.sh
# (<target>/py-venv, shared with the tests); $BENCH_VENV, when set, is its location.
set -euo pipefail
[ -z "${BENCH_VENV:-}" ] || export FRCSTREAM_VENV=$BENCH_VENV
exec "$(dirname "${BASH_SOURCE[0]}")/../scripts/ensure-venv.sh"
