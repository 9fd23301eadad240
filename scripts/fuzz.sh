#!/usr/bin/env bash
# Coverage-guided fuzzing of frcstream's parsers of outside input, with libFuzzer
# (libfuzzer-sys, as `cargo fuzz` uses it) and AddressSanitizer:
#
#   http_request   HTTP request head and body framing (src/http/request.rs)
#   stream_params  URL routing and stream parameters (src/http/routes.rs)
#   jpeg_check     the JPEG structure check of source frames (src/jpeg.rs)
#   nt4_binary     NT4 binary frames, the MessagePack decoder (crates/nt4/src/protocol.rs)
#   nt4_text       NT4 text frames, JSON control messages (same)
#   config         the config file parser and its validation (src/config.rs)
#
# Usage: scripts/fuzz.sh [--ci | --long MINUTES | --regressions] [target...]
#   --ci            15 s per target (CI; the default)
#   --long MINUTES  MINUTES per target, by hand; the corpus in fuzz/corpus/ grows across runs
#   --regressions   only replay fuzz/regressions/<target>/ (inputs of every finding so far)
#
# Every run first replays fuzz/regressions/<target>/; a crash leaves its input in
# fuzz/artifacts/<target>/ and fails the script. Copy a fixed crash's input into
# fuzz/regressions/<target>/ so it is replayed from then on.
#
# Needs no nightly toolchain and no cargo-fuzz: the stable toolchain accepts the
# sanitizer flags with RUSTC_BOOTSTRAP=1 and ships the ASan runtime; libFuzzer itself is
# C++ built by libfuzzer-sys (g++). With cargo-fuzz installed, `cargo fuzz run <target>` in
# fuzz/ works too (RUSTC_BOOTSTRAP=1 on stable). The first build takes about 4 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=15
replay_only=false
case "${1:-}" in
    --ci) shift ;;
    --long) seconds=$(( ${2:?--long needs minutes} * 60 )); shift 2 ;;
    --regressions) replay_only=true; shift ;;
esac
all=(http_request stream_params jpeg_check nt4_binary nt4_text config)
targets=("${@:-${all[@]}}")
[ $# -gt 0 ] || targets=("${all[@]}")

host=$(rustc -vV | sed -n 's/^host: //p')
# The flags `cargo fuzz build` uses (cargo-fuzz 0.13, address sanitizer, debug assertions).
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing \
-Cllvm-args=-sanitizer-coverage-stack-depth -Zsanitizer=address -Cdebug-assertions"
# --target keeps the flags off build scripts and proc macros, as cargo-fuzz does.
cargo build --quiet --manifest-path fuzz/Cargo.toml --release --target "$host" --bins
bin=fuzz/target/$host/release

status=0
summary=()
for target in "${targets[@]}"; do
    regressions=fuzz/regressions/$target
    corpus=fuzz/corpus/$target
    artifacts=fuzz/artifacts/$target/
    mkdir -p "$corpus" "$artifacts" "$regressions"
    log=fuzz/artifacts/$target.log
    # Every regression input, once.
    if ! "$bin/$target" -artifact_prefix="$artifacts" "$regressions"/* >"$log" 2>&1; then
        echo "fuzz: $target: a regression input fails again (see $log)" >&2
        status=1
        summary+=("$target: REGRESSION")
        continue
    fi
    if $replay_only; then
        summary+=("$target: $(find "$regressions" -type f | wc -l) regression inputs pass")
        continue
    fi
    if "$bin/$target" -max_total_time="$seconds" -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$artifacts" "$corpus" "$regressions" >"$log" 2>&1; then
        runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
        cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
        summary+=("$target: ${seconds} s, ${runs:-?} runs, ${cov:-cov: ?}, no crash")
    else
        echo "fuzz: $target: crash; input in $artifacts (log $log)" >&2
        status=1
        summary+=("$target: CRASH (input in $artifacts)")
    fi
done
printf 'fuzz: %s\n' "${summary[@]}"
exit "$status"
