"""frcstream and WPILib cscore behind the field link, in the same run (bench/fieldlink.sh).

The link is scripts/fieldlink.sh: robot and driver station in network namespaces, the
robot -> DS direction shaped by tbf (rate, 16 kB burst, a 200 ms bottleneck queue), the
rate changed mid-run with `tc qdisc change`. Each server runs on the robot side with its
defaults as a team would start it: frcstream with no config (the 640x480@30 q50 test
pattern), cscore a `CvSource` fed 640x480 BGR frames at 30 fps and an `MjpegServer`
(quality 80, cscore's default; bench/cscore_server.py). One client, the load tool
(examples/mjpeg_load.rs), runs on the DS side.

The figure is latency p95 divided by the stream's own floor: the stream's mean frame
bytes x 8 / the link rate, the time one of its frames takes to cross the link, which no
server can beat. Latency is capture to the frame's last byte at the client: frcstream's
X-Timestamp (CLOCK_MONOTONIC, the same inside a namespace), cscore's stamp drawn into
the picture by the feeder.

Scenarios:
  F1  4 Mbit/s, one client        target p95 <= 2x floor at >= 15 fps
  F2  2 Mbit/s, one client        target p95 <= 3x floor at >= 8 fps
  F4  4 -> 2 -> 4 Mbit/s          p95 <= 3x floor from 3 s after the drop;
                                  fps and frame size back within 5 s of the recovery
  F3  three cameras, 4 Mbit/s link and budget (frcstream only): two 640x480@30 test
      patterns (YUYV, encoded) and a 1280x720@30 JPEG folder (MJPEG passed through),
      weights 1, 1, 2, one client each: total under the link, each p95 <= 2x its floor,
      each camera's part of the bytes within 20% of its part of the weights
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

from benchlib import ROOT, TARGET, LOAD_TOOL, fmt, log, machine_line, table
import frames

HERE = os.path.dirname(os.path.abspath(__file__))
RIG = os.path.join(ROOT, "scripts", "fieldlink.sh")
ROBOT = "10.99.0.1"
QUEUE_MS = 200


def rig(*args):
    subprocess.run([RIG, *args], check=True, stdout=subprocess.DEVNULL)


def mbit(rate):
    return float(rate.removesuffix("mbit"))


def cpu_seconds(pid):
    """User and system CPU time of process `pid` and all its threads so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """The server's CPU over a stretch of time, in % of one core."""

    def __init__(self, server):
        self.pid = server.process.pid
        self.cpu, self.at = cpu_seconds(self.pid), time.monotonic()

    def percent(self):
        return ((cpu_seconds(self.pid) - self.cpu) / (time.monotonic() - self.at)) * 100


class Server:
    def __init__(self, name, command, port, path, latency, ready_line):
        self.name, self.command, self.port, self.path = name, command, port, path
        self.latency, self.ready_line = latency, ready_line
        self.process = None

    def start(self, tag, log_dir):
        stderr = open(os.path.join(log_dir, f"fieldlink-{self.name}.log"), "w")
        self.process = subprocess.Popen([RIG, "robot", tag, *self.command],
                                        stdout=subprocess.PIPE, stderr=stderr, text=True,
                                        cwd=HERE)
        if self.ready_line:
            line = self.process.stdout.readline()
            if not line.startswith(self.ready_line):
                raise RuntimeError(f"{self.name} did not start (see {stderr.name})")
        time.sleep(1.5)

    def stop(self):
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def run_load(tag, server, seconds, warmup, trace, changes):
    """The load tool on the DS side; `changes` are (seconds into the window, rate)."""
    command = [RIG, "ds", tag, LOAD_TOOL, "--url",
               f"http://{ROBOT}:{server.port}{server.path}", "--clients", "1",
               "--seconds", str(seconds), "--warmup", str(warmup),
               "--latency", server.latency, "--trace", trace, "--marks"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    timers = []
    errors = []
    for line in process.stderr:
        line = line.rstrip("\n")
        if line == "window start":
            for at, rate in changes:
                timer = threading.Timer(at, rig, ("rate", tag, rate))
                timer.start()
                timers.append(timer)
        elif line != "window end":
            errors.append(line)
    out = process.stdout.read()
    for timer in timers:
        timer.join()
    if process.wait() != 0 or not out.strip():
        raise RuntimeError(f"load tool failed: {' '.join(errors)}")
    return json.loads(out)


def read_trace(path):
    frames_ = []
    with open(path) as f:
        for line in f:
            at, ms, size = line.split()
            frames_.append((float(at), float(ms), int(size)))
    frames_.sort()
    return frames_


def window(trace, start, end, rate_mbit):
    """fps, Mbit/s, p50, p95, floor (ms) and p95 / floor of the frames in [start, end)."""
    part = [f for f in trace if start <= f[0] < end]
    if not part:
        return None
    latencies = sorted(f[1] for f in part if f[1] >= 0)
    mean_bytes = sum(f[2] for f in part) / len(part)
    floor = mean_bytes * 8 / (rate_mbit * 1e6) * 1000
    p = lambda q: latencies[round((len(latencies) - 1) * q)] if latencies else None
    return {
        "fps": len(part) / (end - start),
        "mbit": sum(f[2] for f in part) * 8 / (end - start) / 1e6,
        "kb": mean_bytes / 1000,
        "p50": p(0.5),
        "p95": p(0.95),
        "floor": floor,
        "ratio": p(0.95) / floor if latencies else None,
    }


SCENARIOS = {
    # name: (starting rate, [(seconds into the window, rate)], window seconds)
    "F1": ("4mbit", [], 12),
    "F2": ("2mbit", [], 12),
    "F4": ("4mbit", [(6, "2mbit"), (14, "4mbit")], 22),
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True, help="a python with robotpy-cscore")
    parser.add_argument("--frcstream", default=os.path.join(TARGET, "release", "frcstream"))
    parser.add_argument("--scenarios", default="F1,F2,F4")
    parser.add_argument("--servers", default="frcstream,cscore")
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--bench-pushed",
                        default=os.path.join(TARGET, "release", "examples", "bench_pushed"))
    parser.add_argument("--json", help="append every run's figures to this file")
    args = parser.parse_args()

    work = os.path.join(TARGET, "bench")
    os.makedirs(work, exist_ok=True)
    texture = frames.ensure_texture(work, 640, 480)
    servers = {
        "frcstream": Server("frcstream", [args.frcstream, "--state-file", ""], 1181,
                            "/cam.mjpg", "header", None),
        "cscore": Server("cscore", [args.python, os.path.join(HERE, "cscore_server.py"),
                                    texture, "640", "480", "30", "1181", "80", ROBOT],
                         1181, "/stream.mjpg", "barcode", "READY"),
    }
    print(f"machine: {machine_line()}")
    print(f"link: scripts/fieldlink.sh, tbf burst 16kb, {QUEUE_MS} ms queue; one client on "
          f"the DS side; {args.warmup:g} s warm-up\n")
    out = open(args.json, "a") if args.json else None
    rows = []
    for scenario in args.scenarios.split(","):
        if scenario == "F3":
            rows.append(run_f3(args, work, texture, out))
            continue
        rate, changes, seconds = SCENARIOS[scenario]
        for name in args.servers.split(","):
            server = servers[name]
            tag = f"b{os.getpid() % 10000}"
            rig("up", tag, rate, str(QUEUE_MS), "16kb")
            trace_path = os.path.join(work, f"fieldlink-{scenario}-{name}.trace")
            try:
                server.start(tag, work)
                meter = CpuMeter(server)
                report = run_load(tag, server, seconds, args.warmup, trace_path, changes)
                cpu = meter.percent()
            finally:
                server.stop()
                rig("down", tag)
            trace = read_trace(trace_path)
            figures = analyse(scenario, trace, rate, changes, seconds)
            figures.update(server=name, scenario=scenario, errors=report["errors"],
                           cpu_percent=cpu)
            if out:
                out.write(json.dumps(figures) + "\n")
                out.flush()
            log(f"{scenario} {name}: {figures}")
            rows.append(figures)
    print_table(rows)


F3_CAMERAS = [("a", 1), ("b", 1), ("c", 2)]


def run_f3(args, work, texture, out):
    jpegs = os.path.join(work, "fieldlink-jpeg-720p")
    if not os.path.isdir(jpegs):
        texture_720 = frames.ensure_texture(work, 1280, 720)
        subprocess.run([args.bench_pushed, "--write-jpegs", jpegs, "8", texture_720, "1280",
                        "720", "80"], check=True)
    config = os.path.join(work, "fieldlink-f3.toml")
    with open(config, "w") as f:
        f.write('[server]\nport = 1181\nstate_file = ""\nmax_mbit = 4.0\n')
        for (name, weight), source in zip(F3_CAMERAS, ["test-pattern", "test-pattern",
                                                       f"folder:{jpegs}"]):
            size = "width = 1280\nheight = 720\n" if name == "c" else ""
            f.write(f'[[camera]]\nname = "{name}"\nsource = "{source}"\n{size}'
                    f'weight = {weight}\n')
    server = Server("frcstream", [args.frcstream, "--config", config], 1181, None, "header",
                    None)
    tag = f"b{os.getpid() % 10000}"
    seconds = 12
    rig("up", tag, "4mbit", str(QUEUE_MS), "16kb")
    results = {}
    try:
        server.start(tag, work)
        meter = CpuMeter(server)
        threads = []
        for name, _ in F3_CAMERAS:
            cam = Server(name, [], 1181, f"/{name}.mjpg", "header", None)
            trace = os.path.join(work, f"fieldlink-F3-{name}.trace")

            def go(cam=cam, trace=trace, name=name):
                results[name] = (run_load(tag, cam, seconds, args.warmup, trace, []), trace)
            threads.append(threading.Thread(target=go))
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        cpu = meter.percent()
    finally:
        server.stop()
        rig("down", tag)
    windows = {name: window(read_trace(results[name][1]), 0, seconds, 4.0)
               for name, _ in F3_CAMERAS}
    total = sum(w["mbit"] for w in windows.values() if w)
    weights = sum(w for _, w in F3_CAMERAS)
    figures = {"scenario": "F3", "server": "frcstream", "total_mbit": total, "cameras": {},
               "cpu_percent": cpu}
    for name, weight in F3_CAMERAS:
        w = windows[name]
        if w:
            w["part"] = w["mbit"] / total if total else 0
            w["weight_part"] = weight / weights
        figures["cameras"][name] = w
    if out:
        out.write(json.dumps(figures) + "\n")
        out.flush()
    log(f"F3: {figures}")
    return figures


def analyse(scenario, trace, rate, changes, seconds):
    if not changes:
        w = window(trace, 0, seconds, mbit(rate))
        return {"steady": w}
    (drop_at, low), (back_at, high) = changes
    before = window(trace, 0, drop_at, mbit(rate))
    after_drop = window(trace, drop_at + 3, back_at, mbit(low))
    first_after_drop = window(trace, drop_at, drop_at + 3, mbit(low))
    recovered = window(trace, back_at + 5, seconds, mbit(high))
    return {"before": before, "drop_0_3s": first_after_drop, "drop_3s_on": after_drop,
            "recovered_5s_on": recovered}


def cells(w):
    if not w:
        return ["–"] * 4
    return [f"{w['fps']:.1f}", f"{w['mbit']:.2f}",
            f"{fmt(w['p50'], 0)} / {fmt(w['p95'], 0)} ms (floor {w['floor']:.0f} ms)",
            f"**{fmt(w['ratio'], 1)}×**"]


def print_table(rows):
    lines = []
    for r in rows:
        if r["scenario"] == "F3":
            for name, weight in F3_CAMERAS:
                w = r["cameras"][name]
                label = (f"camera {name}, weight {weight}: "
                         f"{w['part'] * 100:.0f}% of the bytes for {w['weight_part'] * 100:.0f}%"
                         if w else f"camera {name}")
                lines.append(["F3", "frcstream", label, *cells(w),
                              f"{w['kb']:.1f}" if w else "–", ""])
            lines.append(["F3", "frcstream", "all three", "", f"{r['total_mbit']:.2f}", "", "",
                          "", f"{r['cpu_percent']:.0f}%"])
            continue
        if "steady" in r:
            lines.append([r["scenario"], r["server"], "whole run", *cells(r["steady"]),
                          f"{r['steady']['kb']:.1f}" if r["steady"] else "–",
                          f"{r['cpu_percent']:.0f}%"])
        else:
            for key, label in (("before", "4 Mbit/s, before the drop"),
                               ("drop_0_3s", "2 Mbit/s, first 3 s"),
                               ("drop_3s_on", "2 Mbit/s, from 3 s on"),
                               ("recovered_5s_on", "4 Mbit/s again, from 5 s on")):
                w = r[key]
                cpu = f"{r['cpu_percent']:.0f}%" if key == "before" else ""
                lines.append([r["scenario"], r["server"], label, *cells(w),
                              f"{w['kb']:.1f}" if w else "–", cpu])
    print(table(["scenario", "server", "window", "fps", "Mbit/s", "latency p50 / p95",
                 "p95 / floor", "frame kB", "server CPU (whole run)"], lines))


if __name__ == "__main__":
    sys.exit(main())
