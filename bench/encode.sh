#!/usr/bin/env bash
# frcstream's encoder alone against bare libjpeg-turbo on the same frames: YUYV from a
# camera and BGR from a program, 640x480 and 1280x720, quality 50 and 80. Prints the table
# of docs/BENCHMARKS.md.
#
#   bench/encode.sh [--sizes 640x480] [--qualities 50] [--rounds 10] [--repeat 3]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh)
cargo build --release --example encode_bench >&2
exec "$python" bench/encode_compare.py "$@"
