#!/usr/bin/env bash
# The Python options side by side (bench/python_compare.py): frcstream's Python package,
# robotpy-cscore and the original MjpgServer class (the seed, with gevent), 640x480 BGR at
# 30 fps to 4 clients. Prints the table of docs/BENCHMARKS.md, "From Python".
#
#   bench/python.sh [--seconds 5] [--repeat 2] [--json FILE] [--seed SEED_FILE]
#
# Installs what it needs, once: a venv under target/ (scripts/ensure-venv.sh bench-python:
# pinned robotpy-cscore, numpy, opencv-python-headless, gevent and maturin), frcstream
# built from this checkout with pip, and the load tool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh bench-python --with-frcstream)
cargo build --release --example mjpeg_load >&2
exec "$python" bench/python_compare.py --python "$python" "$@"
