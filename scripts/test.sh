#!/usr/bin/env bash
# Runs every test of frcstream: installs what they need first (scripts/setup.sh), boots
# each test VM once on its own (scripts/preflight.sh), then the unit and integration
# tests, then the Python package's (scripts/test-python.sh). Every suite runs even when an earlier one fails (--no-fail-fast), so one run
# reports every failure. Tests that need something this machine cannot provide say
# SKIPPED loudly and the rest still run.
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test || exit
status=0
scripts/preflight.sh || status=1
cargo test --no-fail-fast --all-targets "$@" || status=1
# The Python package (crates/frcstream-py): built with pip into a venv under target/, then
# pytest. Its status counts like every suite's.
scripts/test-python.sh || status=1
[ "$status" -eq 0 ] || echo "test.sh: FAILED (see above: preflight and every failing suite are listed)" >&2
exit "$status"
