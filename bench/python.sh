#!/usr/bin/env bash
# The Python options side by side (bench/python_compare.py): frcstream's Python package,
# robotpy-cscore and the original MjpgServer class (the seed, with gevent), 640x480 BGR at
# 30 fps to 4 clients. Prints the table of docs/BENCHMARKS.md, "From Python".
#
#   bench/python.sh [--seconds 5] [--repeat 2] [--json FILE] [--seed SEED_FILE]
#
# Installs what it needs, once: a venv under target/ (bench-py-venv) with the pinned
# robotpy-cscore, numpy, opencv-python-headless, gevent and maturin, frcstream built from
# this checkout with pip, and the load tool.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh >&2
venv=${CARGO_TARGET_DIR:-target}/bench-py-venv
pins=(robotpy-cscore==2026.2.2 numpy==2.4.6 opencv-python-headless==4.13.0.92 gevent==26.9.0 maturin==1.13.1)
if ! "$venv/bin/python" -c 'import cscore, cv2, gevent, numpy' 2>/dev/null; then
    rm -rf "$venv"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install -q --disable-pip-version-check "${pins[@]}" >&2
fi
PATH="$PWD/$venv/bin:$PATH" nice "$venv/bin/python" -m pip install -q --disable-pip-version-check \
    --no-build-isolation --no-deps --force-reinstall . >&2
cargo build --release --example mjpeg_load >&2
exec "$venv/bin/python" bench/python_compare.py --python "$PWD/$venv/bin/python" "$@"
