#!/usr/bin/env bash
# Builds and runs frcstream (release build). With no arguments it uses
# /etc/frcstream/frcstream.toml if present, else the built-in test-pattern camera "cam",
# and prints the URLs to open. Arguments are passed on, e.g. --config config/frcstream.toml
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec cargo run --release --quiet -- "$@"
