#!/usr/bin/env bash
# frcstream against WPILib cscore (robotpy-cscore, pinned) on the same frames: 640x480 and
# 1280x720 at 30 fps, 1, 4 and 10 clients. Prints the tables of docs/BENCHMARKS.md.
#
#   bench/cscore.sh [--sizes 640x480] [--clients 4] [--seconds 5] [--repeat 2] [--json FILE]
#
# Installs what it needs: the project's build tools (scripts/setup.sh), a venv with the
# pinned robotpy-cscore and numpy (scripts/ensure-venv.sh, once), the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh)
cargo build --release --example mjpeg_load --example bench_pushed >&2
exec "$python" bench/cscore_compare.py --python "$python" "$@"
