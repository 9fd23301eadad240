"""frcstream against WPILib cscore on the same frames, in the same run (bench/cscore.sh).

Both servers are fed the same BGR frames by a feeder in their own process at the same
rate (bench/frames.py, examples/bench_pushed.rs): cscore through a `CvSource` and its
`MjpegServer`, frcstream through a pushed camera. Both encode once per frame at the same
quality (cscore's default, 80) and serve it to every client. For each size and client
count, each server is measured in turn, `--repeat` times, in alternating order; the
server not being measured is frozen (SIGSTOP), so its feeder costs nothing meanwhile.

Figures per run (examples/mjpeg_load.rs):
- server CPU per delivered frame: the process's CPU time less its feeder thread's, over
  the frames all clients received;
- feeder CPU per delivered frame, on its own;
- latency: from the time stamp the feeder draws into the picture just before handing the
  frame over, to the arrival of the frame's last byte at the client (same clock, same
  host, same definition for both);
- RSS: the process's peak in the window (both include their feeder's texture and frame).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time

from benchlib import (clean, left_out, TARGET, fmt, free_port, load_average, log, machine_line, median,
                      run_load, spread, table, wait_for_quiet)
import frames

HERE = os.path.dirname(os.path.abspath(__file__))


class Server:
    def __init__(self, name, command, path):
        self.name, self.command, self.path = name, command, path
        self.process = None
        self.pid = None

    def start(self, log_dir):
        stderr = open(os.path.join(log_dir, f"{self.name}.log"), "w")
        self.process = subprocess.Popen(self.command, stdout=subprocess.PIPE, stderr=stderr,
                                        text=True, cwd=HERE)
        line = self.process.stdout.readline()
        if not line.startswith("READY"):
            raise RuntimeError(f"{self.name} did not start (see {stderr.name})")
        self.pid = int(line.split()[1])

    def url(self, port):
        return f"http://127.0.0.1:{port}{self.path}"

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            os.kill(self.process.pid, signal.SIGCONT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="a python with robotpy-cscore")
    parser.add_argument("--sizes", default="640x480,1280x720")
    parser.add_argument("--clients", default="1,4,10")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", help="append every run's report to this file")
    parser.add_argument("--bench-pushed", help="another build of examples/bench_pushed.rs "
                        "(to measure an older frcstream the same way)",
                        default=os.path.join(TARGET, "release", "examples", "bench_pushed"))
    args = parser.parse_args()

    work = os.path.join(TARGET, "bench")
    os.makedirs(work, exist_ok=True)
    load = wait_for_quiet()
    print(f"machine: {machine_line()}; load average at start {load:.2f}")
    print(f"frames: bench/frames.py BGR, {args.fps} fps, quality {args.quality}; "
          f"{args.seconds:g} s per run after {args.warmup:g} s warm-up; "
          f"{args.repeat} runs per server, alternating; medians, ratio spread over runs\n")
    out = open(args.json, "a") if args.json else None
    results = []
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        texture = frames.ensure_texture(work, width, height)
        common = [texture, str(width), str(height), str(args.fps)]
        ports = {"cscore": free_port(), "frcstream": free_port()}
        servers = [
            Server("cscore", [args.python, os.path.join(HERE, "cscore_server.py"), *common,
                              str(ports["cscore"]), str(args.quality)], "/stream.mjpg"),
            Server("frcstream", [args.bench_pushed, *common, str(ports["frcstream"]),
                                 str(args.quality)], "/bench.mjpg"),
        ]
        try:
            for server in servers:
                server.start(work)
                server.pause()
            for clients in (int(c) for c in args.clients.split(",")):
                runs = {"cscore": [], "frcstream": []}
                for rep in range(args.repeat):
                    order = servers if rep % 2 == 0 else servers[::-1]
                    for server in order:
                        server.resume()
                        time.sleep(0.5)
                        report = run_load(server.url(ports[server.name]), clients, args.seconds,
                                          args.warmup, pid=server.pid, feeder_thread="feeder",
                                          latency="barcode")
                        server.pause()
                        report.update(server=server.name, size=size, load_average=load_average())
                        if report["errors"] or report["invalid_parts"]:
                            log(f"{server.name} {size} {clients} clients: {report['errors']} "
                                f"{report['invalid_parts']} invalid parts")
                        runs[server.name].append(report)
                        if out:
                            out.write(json.dumps(report) + "\n")
                            out.flush()
                results.append((size, clients, runs))
                log(f"{size} {clients} clients done")
        finally:
            for server in servers:
                server.stop()
    print_tables(results)


def latency(report, q):
    lat = report.get("latency_ms")
    return lat[q] if lat else None


def print_tables(results):
    rows_cpu, rows_latency, rows_rss, notes = [], [], [], []
    for size, clients, runs in results:
        notes.append(left_out(runs["cscore"] + runs["frcstream"]))
        pairs = [(c, f) for c, f in zip(runs["cscore"], runs["frcstream"]) if clean(c) and clean(f)]
        cs, fr = [c for c, _ in pairs], [f for _, f in pairs]
        ratios = [f["server_cpu_ms_per_delivered_frame"] / c["server_cpu_ms_per_delivered_frame"]
                  for c, f in zip(cs, fr)]
        process_ratios = [f["process_cpu_ms_per_delivered_frame"]
                          / c["process_cpu_ms_per_delivered_frame"] for c, f in zip(cs, fr)]
        rows_cpu.append([
            size, clients,
            f"{fmt(median(r['fps_per_client'] for r in cs), 1)} / {fmt(median(r['fps_per_client'] for r in fr), 1)}",
            fmt(median(r["server_cpu_ms_per_delivered_frame"] for r in cs), 3),
            fmt(median(r["server_cpu_ms_per_delivered_frame"] for r in fr), 3),
            f"**{fmt(median(ratios))}** ({spread(ratios)})",
            f"{fmt(median(r['feeder_cpu_ms_per_delivered_frame'] for r in cs), 3)} / "
            f"{fmt(median(r['feeder_cpu_ms_per_delivered_frame'] for r in fr), 3)}",
            f"{fmt(median(process_ratios))} ({spread(process_ratios)})",
        ])
        p95_ratios = [latency(f, "p95") / latency(c, "p95") for c, f in zip(cs, fr)
                      if latency(c, "p95") and latency(f, "p95")]
        rows_latency.append([
            size, clients,
            f"{fmt(median(latency(r, 'p50') for r in cs))} / {fmt(median(latency(r, 'p95') for r in cs))}",
            f"{fmt(median(latency(r, 'p50') for r in fr))} / {fmt(median(latency(r, 'p95') for r in fr))}",
            f"**{fmt(median(p95_ratios))}** ({spread(p95_ratios)})",
        ])
        rows_rss.append([
            size, clients,
            f"{median(r['server_rss_kib'] for r in cs) / 1024:.1f}",
            f"{median(r['server_rss_kib'] for r in fr) / 1024:.1f}",
            f"{median(r['server_threads'] for r in cs):.0f} / {median(r['server_threads'] for r in fr):.0f}",
        ])
    print("Server CPU per delivered frame (ms; the process less its feeder thread)")
    print(table(["size", "clients", "fps per client cscore / frcstream", "cscore",
                 "frcstream", "ratio (spread)", "feeder cscore / frcstream",
                 "ratio with feeders (spread)"], rows_cpu))
    print("\nLatency, feeder's stamp to the frame's last byte at the client (ms)")
    print(table(["size", "clients", "cscore p50 / p95", "frcstream p50 / p95",
                 "p95 ratio (spread)"], rows_latency))
    print("\nPeak RSS (MiB; both hold their feeder's texture and frame) and threads")
    print(table(["size", "clients", "cscore", "frcstream", "threads cscore / frcstream"],
                rows_rss))
    for note in filter(None, notes):
        print(note)


if __name__ == "__main__":
    sys.exit(main())
