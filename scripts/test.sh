#!/usr/bin/env bash
# Runs every test of frcstream: installs what they need first (scripts/setup.sh), then
# the unit and integration tests. Tests that need something this machine cannot provide
# say SKIPPED loudly and the rest still run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
cargo test --all-targets "$@"
