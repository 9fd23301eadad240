"""frcstream's encoder alone against bare libjpeg-turbo on the same frames
(bench/encode.sh; examples/encode_bench.rs says what is compared). Prints a table."""

import argparse
import json
import os
import subprocess
import sys

from benchlib import TARGET, fmt, machine_line, median, spread, table, wait_for_quiet
import frames

BENCH = os.path.join(TARGET, "release", "examples", "encode_bench")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--qualities", default="50,80")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = wait_for_quiet()
    print(f"machine: {machine_line()}; load average at start {load:.2f}")
    print(f"{args.rounds} rounds of 30 frames per run, {args.repeat} runs; medians, ratio spread "
          f"over runs\n")
    rows = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        texture = frames.ensure_texture(os.path.join(TARGET, "bench"), width, height)
        for quality in args.qualities.split(","):
            runs = []
            for _ in range(args.repeat):
                out = subprocess.run([BENCH, str(width), str(height), quality, str(args.rounds),
                                      texture], check=True, capture_output=True, text=True).stdout
                runs.append({r["input"]: r for r in map(json.loads, out.splitlines())})
            for kind, what in (("yuyv", "YUYV (camera)"), ("bgr", "BGR (pushed)")):
                reports = [r[kind] for r in runs]
                ratios = [r["ratio"] for r in reports]
                rows.append([what, size, quality,
                             fmt(median(r["frcstream_ms_per_frame"] for r in reports), 3),
                             fmt(median(r["bare_libjpeg_turbo_ms_per_frame"] for r in reports), 3),
                             f"**{fmt(median(ratios))}** ({spread(ratios)})",
                             f"{median(r['frcstream_avg_bytes'] for r in reports) / 1000:.1f}"])
    print("Encode time per frame (ms), frcstream's encoder against bare libjpeg-turbo")
    print(table(["input", "size", "quality", "frcstream", "bare libjpeg-turbo",
                 "ratio (spread)", "JPEG KB"], rows))


if __name__ == "__main__":
    sys.exit(main())
