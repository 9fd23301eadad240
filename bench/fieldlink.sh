#!/usr/bin/env bash
# frcstream against WPILib cscore behind the field link (scripts/fieldlink.sh: network
# namespaces, tbf with a 200 ms queue): F1 (4 Mbit/s), F2 (2 Mbit/s), F4 (4 -> 2 -> 4
# Mbit/s mid-run), one client on the driver station's side; F3 (three cameras sharing a
# 4 Mbit/s link, frcstream only) when asked for. Prints the tables of docs/BENCHMARKS.md.
# Needs root.
#
#   bench/fieldlink.sh [--scenarios F1,F2,F4,F3] [--servers frcstream,cscore] [--json FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/fieldlink.sh check
scripts/setup.sh >&2
python=$(scripts/ensure-venv.sh)
cargo build --release --bin frcstream --example mjpeg_load >&2
exec "$python" bench/fieldlink_compare.py --python "$python" "$@"
