#!/usr/bin/env bash
# frcstream's own memory: peak RSS with one camera and 4 clients, then 20. Prints the table
# of docs/BENCHMARKS.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh)
cargo build --release --bin frcstream --example mjpeg_load >&2
exec "$python" bench/rss_check.py "$@"
