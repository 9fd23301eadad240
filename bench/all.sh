#!/usr/bin/env bash
# Every benchmark of docs/BENCHMARKS.md, one after the other: the encoder alone, frcstream
# against cscore, frcstream against ustreamer, frcstream's memory. Prints their tables and
# keeps a copy in target/bench/results-<time>.md, with every run's JSON report beside it.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${CARGO_TARGET_DIR:-$PWD/target}/bench
mkdir -p "$out"
stamp=$(date +%Y%m%d-%H%M%S)
{
    echo "## Encoder alone"; echo
    bench/encode.sh
    echo; echo "## Against cscore"; echo
    bench/cscore.sh --json "$out/cscore-$stamp.jsonl"
    echo; echo "## Against ustreamer"; echo
    bench/ustreamer.sh --json "$out/ustreamer-$stamp.jsonl"
    echo; echo "## Memory"; echo
    bench/rss.sh
} | tee "$out/results-$stamp.md"
