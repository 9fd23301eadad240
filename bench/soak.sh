#!/usr/bin/env bash
# Soak of docs/RELIABILITY.md: a server on 127.0.0.1:18183 with one 640x480 test pattern,
# 4 clients streaming for 5 minutes, and every 30 s: 25 open/close (bench/open_close.py),
# 20 snapshots, a lockout probe (200 idle connections, 5 probes) and 60 one-frame clients
# of a full-size variant. Prints RSS and threads every 30 s, then the load's JSON.
#
#   bench/soak.sh [frcstream binary]   (default: target/debug/frcstream, built here)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --bin frcstream --example mjpeg_load --example lockout_probe >&2
binary=${1:-target/debug/frcstream}
config=$(mktemp --suffix=.toml)
printf '[server]\nbind = "127.0.0.1"\nport = 18183\n[[camera]]\nname = "cam"\nwidth = 640\nheight = 480\nfps = 30\n' >"$config"
"$binary" --config "$config" 2>/dev/null &
pid=$!
trap 'kill $pid 2>/dev/null; rm -f "$config"' EXIT
sleep 2
target/debug/examples/mjpeg_load --url http://127.0.0.1:18183/cam.mjpg --clients 4 \
    --seconds 300 --pid $pid >/tmp/frcstream-soak-load.json 2>/dev/null &
load=$!
rss() { awk '/VmRSS/ {print $2}' /proc/$pid/status; }
echo "t=0s RSS $(rss) KiB"
for i in $(seq 1 10); do
    end=$((SECONDS + 30))
    python3 bench/open_close.py 18183 25 >/dev/null
    for _ in $(seq 20); do curl -s -o /dev/null http://127.0.0.1:18183/cam.jpg; done
    probe=$(target/debug/examples/lockout_probe 127.0.0.1:18183 200 idle 5 | tail -2 | tr '\n' ' ')
    for _ in $(seq 60); do
        curl -s -o /dev/null --max-time 0.3 'http://127.0.0.1:18183/cam.mjpg?resolution=4096x4096&compression=20' || true
    done
    while [ $SECONDS -lt $end ]; do sleep 1; done
    echo "t=$((i * 30))s RSS $(rss) KiB threads $(ls /proc/$pid/task | wc -l); probe: $probe"
done
wait $load
cat /tmp/frcstream-soak-load.json
