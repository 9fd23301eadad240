#!/usr/bin/env bash
# Boots each test VM architecture once, on its own, before any test runs: a rig that only
# works because another rig's setup installed something for it (qemu-system-arm needed
# ipxe-qemu's ROM, which only qemu-system-x86 brought) fails here, by name, instead of
# inside a test that happens to run first on a fresh machine.
#
#   scripts/preflight.sh [x86_64] [aarch64]     (default: both)
#
# Prints one line per architecture and "N passed, N failed"; exit status 1 when any rig
# could not boot. A rig that cannot run here at all (vm.py says UNAVAILABLE) counts as a
# failure only when FRCSTREAM_REQUIRE_VM (x86_64) or FRCSTREAM_REQUIRE_AARCH64 (aarch64)
# asks for it (=1), as the tests themselves do.
set -uo pipefail
cd "$(dirname "$0")/.."

# The tests' rule (tests/support/mod.rs): only the value 1 asks for a failure.
required() { [ "${!1:-}" = 1 ]; }

arches=("$@")
[ ${#arches[@]} -gt 0 ] || arches=(x86_64 aarch64)
passed=0
failed=0
for arch in "${arches[@]}"; do
    case "$arch" in
        x86_64) require=FRCSTREAM_REQUIRE_VM ;;
        aarch64) require=FRCSTREAM_REQUIRE_AARCH64 ;;
        *) echo "preflight: unknown architecture $arch" >&2; exit 2 ;;
    esac
    log=$(mktemp)
    payload=$(mktemp -d)
    start=$(date +%s.%N)
    # Boot, run one command, power off: stdin stays open until the VM answers (vm.py
    # ends a VM whose stdin closes), so the cache's first setup has all the time it needs.
    first=$(timeout 900 python3 - "$arch" "$payload" 2>"$log" <<'PY'
import subprocess, sys
arch, payload = sys.argv[1:3]
vm = subprocess.Popen([sys.executable, "vm/vm.py", "--arch", arch, "--payload", payload,
                       "--boot-timeout", "300"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
first = vm.stdout.readline().strip()
if first.startswith("READY"):
    vm.stdin.write("exec cat /proc/version\nquit\n")
    vm.stdin.flush()
    replies = vm.stdout.read()
    if "EXIT 0" not in replies:
        first = "ERROR the guest did not run a command: " + replies.strip()[-300:]
vm.stdin.close()
vm.wait()
print(first)
PY
)
    secs=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }')
    case "$first" in
        READY*)
            echo "preflight: $arch VM booted and answered (${secs} s, setup included)"
            passed=$((passed + 1)) ;;
        UNAVAILABLE*)
            if required "$require"; then
                echo "preflight: FAILED $arch VM: ${first#UNAVAILABLE } ($require is set)"
                tail -n 20 "$log" | sed 's/^/    /'
                failed=$((failed + 1))
            else
                echo "preflight: SKIPPED $arch VM: ${first#UNAVAILABLE } (its tests will say SKIPPED)"
            fi ;;
        *)
            echo "preflight: FAILED $arch VM did not boot: ${first:-no answer}"
            tail -n 20 "$log" | sed 's/^/    /'
            failed=$((failed + 1)) ;;
    esac
    rm -rf "$log" "$payload"
done
echo "preflight: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
