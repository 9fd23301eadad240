#!/usr/bin/env bash
# Prints the python of the project's venv, which holds WPILib's ntcore (PyPI `pyntcore`,
# pinned) for the NetworkTables tests. The venv is made once by scripts/ensure-venv.sh
# (which also pins robotpy-cscore and numpy); this name is kept for its callers.
# $PYNTCORE_VENV, when set, is the venv's location.
set -euo pipefail
[ -z "${PYNTCORE_VENV:-}" ] || export FRCSTREAM_VENV=$PYNTCORE_VENV
exec "$(dirname "${BASH_SOURCE[0]}")/ensure-venv.sh"
