"""frcstream against ustreamer (Debian's) on the same V4L2 devices in the qemu VM
(bench/ustreamer.sh).

One VM (vm/vm.py --loopback) holds both servers and both devices:
- YUYV: vivid's /dev/video0 at 640x480, 25 fps, encoded at quality 80 (ustreamer's
  default) by both, 4 clients;
- MJPEG passthrough: v4l2loopback's /dev/video10 fed 640x480 camera-sized JPEGs
  (bench_pushed --write-jpegs: the cscore benchmark's frames at quality 80, ~35 KB) at
  30 fps, passed through by both (ustreamer --encoder HW), 20 clients. Neither limits the
  rate below the feed's: with `--desired-fps 30` on this 30 fps source, ustreamer dropped
  a third of the frames (jitter) and its CPU per delivered frame swung between runs.

Each server runs alone while it is measured, `--repeat` times in alternating order. The
clients (examples/mjpeg_load.rs) run on the host through qemu's port forwarding; the
server's CPU time (utime+stime of the whole process, all threads) and RSS are read from
the guest's /proc at the start and end of the load tool's window. The guest is emulated
(TCG, one vCPU by default), so absolute times are several times a real CPU's and move
with the host's load: only the ratios mean anything, and their spread is wider than on
the host.
"""

import argparse
import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time

from benchlib import (clean, left_out, ROOT, TARGET, fmt, load_average, log, machine_line, median, run_load,
                      spread, table, wait_for_quiet)

GUEST_CLK_TCK = 100  # USER_HZ: what /proc/<pid>/stat counts in


class Vm:
    """vm/vm.py's line protocol (vm/README.md)."""

    def __init__(self, payload, lib_root, forward, smp=2):
        command = [sys.executable, os.path.join(ROOT, "vm", "vm.py"), "--payload", payload,
                   "--forward", ",".join(str(p) for p in forward), "--loopback",
                   "--lib-root", lib_root, "--smp", str(smp)]
        self.stderr = open(os.path.join(TARGET, "bench", "vm.stderr"), "w")
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=self.stderr, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        first = self.lines.get(timeout=600)
        if not first.startswith("READY"):
            raise RuntimeError(f"VM: {first} (see {self.stderr.name})")
        self.ports = {int(g): int(h) for g, h in (p.split("=") for p in first.split()[1:])}

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put("ERR vm.py ended")

    def command(self, line, timeout=60):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        output = []
        while True:
            reply = self.lines.get(timeout=timeout)
            if reply.startswith("| "):
                output.append(reply[2:])
            elif reply == "|":
                output.append("")
            else:
                return reply, output

    def exec(self, shell, timeout=60):
        end, output = self.command(f"exec {shell}", timeout)
        if end != "EXIT 0":
            raise RuntimeError(f"guest: {shell}: {end}: {' / '.join(output)}")
        return output

    def quit(self):
        try:
            self.command("quit", timeout=20)
        except Exception:
            pass
        try:
            self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()


def guest_sample(vm, pid):
    """(cpu_ms, rss_kib, threads) of a guest process."""
    lines = vm.exec(f"cat /proc/{pid}/stat; grep -E '^(VmRSS|Threads):' /proc/{pid}/status")
    fields = lines[0].rsplit(")", 1)[1].split()
    cpu_ms = (int(fields[11]) + int(fields[12])) * 1000 / GUEST_CLK_TCK
    status = {l.split(":")[0]: int(l.split()[1]) for l in lines[1:]}
    return cpu_ms, status.get("VmRSS"), status.get("Threads")


def measure(vm, pid, url, clients, seconds, warmup):
    samples = {}

    def mark(which):
        samples[which] = guest_sample(vm, pid)

    report = run_load(url, clients, seconds, warmup, latency="none", marks=mark)
    (cpu0, _, _), (cpu1, rss, threads) = samples["window start"], samples["window end"]
    report["server_cpu_ms"] = cpu1 - cpu0
    report["server_cpu_ms_per_delivered_frame"] = (cpu1 - cpu0) / max(report["frames"], 1)
    report["server_cpu_percent"] = (cpu1 - cpu0) / 10 / seconds
    report["server_rss_kib"], report["server_threads"] = rss, threads
    return report


SCENARIOS = {
    "yuyv": {
        "title": "YUYV 640x480@25 from vivid, encoded at quality 80",
        "clients": 4,
        "frcstream": "/payload/frcstream --config /payload/yuyv.toml",
        "ustreamer": "/payload/ustreamer --device /dev/video0 --format YUYV --resolution 640x480 "
                     "--desired-fps 25 --quality 80 --host 0.0.0.0 --port 8080",
    },
    "mjpeg": {
        "title": "MJPEG 640x480@30 from v4l2loopback, passed through",
        "clients": 20,
        "feed_fps": 30,
        "frcstream": "/payload/frcstream --config /payload/mjpeg.toml",
        "ustreamer": "/payload/ustreamer --device /dev/video10 --format MJPEG --encoder HW "
                     "--resolution 640x480 --host 0.0.0.0 --port 8080",
    },
}
SERVERS = {"frcstream": (1181, "/cam.mjpg"), "ustreamer": (8080, "/stream")}

CONFIG = """[server]
bind = "0.0.0.0"
port = 1181
max_clients = 25
# The host's clients reach the VM over qemu's network, not loopback: no radio budget here.
max_mbit = 0

[[camera]]
name = "cam"
source = "v4l2:{device}"
format = "{format}"
width = 640
height = 480
fps = {fps}
quality = 80
"""


def make_payload(args):
    payload = os.path.join(TARGET, "bench", "vm-payload")
    shutil.rmtree(payload, ignore_errors=True)
    os.makedirs(payload)
    shutil.copy(args.frcstream, os.path.join(payload, "frcstream"))
    subprocess.run(["strip", os.path.join(payload, "frcstream")], check=False)
    shutil.copy(os.path.join(args.ustreamer_root, "usr", "bin", "ustreamer"), payload)
    with open(os.path.join(payload, "yuyv.toml"), "w") as f:
        f.write(CONFIG.format(device="/dev/video0", format="yuyv", fps=25))
    with open(os.path.join(payload, "mjpeg.toml"), "w") as f:
        # The camera's fps limit above the feed rate: ustreamer takes every frame too.
        f.write(CONFIG.format(device="/dev/video10", format="mjpeg", fps=60))
    import frames
    texture = frames.ensure_texture(os.path.join(TARGET, "bench"), 640, 480)
    subprocess.run([os.path.join(TARGET, "release", "examples", "bench_pushed"), "--write-jpegs",
                    os.path.join(payload, "jpeg"), "8", texture, "640", "480", "80"], check=True)
    return payload


def run_server(vm, name, command, clients, args):
    guest_port, path = SERVERS[name]
    end, _ = vm.command(f"spawn {name} exec {command}")
    if not end.startswith("OK "):
        raise RuntimeError(f"cannot start {name}: {end}")
    pid = int(end.split()[1])
    try:
        end, _ = vm.command(f"waitport {guest_port} 30", timeout=40)
        if end != "OK":
            _, log_lines = vm.command(f"log {name}")
            raise RuntimeError(f"{name} does not listen: {' / '.join(log_lines[-5:])}")
        url = f"http://127.0.0.1:{vm.ports[guest_port]}{path}"
        return measure(vm, pid, url, clients, args.seconds, args.warmup)
    finally:
        vm.command(f"kill {name}")
        # Wait for it to be gone: both servers want the same device.
        for _ in range(50):
            end, _ = vm.command(f"status {name}")
            if "EXITED" in end:
                break
            time.sleep(0.1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ustreamer-root", required=True,
                        help="the unpacked ustreamer package and its libraries")
    parser.add_argument("--scenarios", default="yuyv,mjpeg")
    parser.add_argument("--seconds", type=float, default=7)
    parser.add_argument("--warmup", type=float, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    # One vCPU: with two, the guest's CPU times moved more with the host's load (both
    # gave the same ratios within their spread).
    parser.add_argument("--smp", type=int, default=1, help="the VM's CPUs")
    parser.add_argument("--json", help="append every run's report to this file")
    parser.add_argument("--frcstream", help="another build of frcstream (to measure an older "
                        "one the same way)", default=os.path.join(TARGET, "release", "frcstream"))
    args = parser.parse_args()
    os.makedirs(os.path.join(TARGET, "bench"), exist_ok=True)
    payload = make_payload(args)
    load = wait_for_quiet()
    print(f"machine: {machine_line()}; guest: qemu TCG, {args.smp} vCPUs; "
          f"load average at start {load:.2f}")
    print(f"{args.seconds:g} s per run after {args.warmup:g} s warm-up; {args.repeat} runs per "
          f"server, alternating; medians, ratio spread over runs\n")
    out = open(args.json, "a") if args.json else None
    vm = Vm(payload, args.ustreamer_root, [p for p, _ in SERVERS.values()], args.smp)
    results = []
    try:
        for key in args.scenarios.split(","):
            scenario = SCENARIOS[key]
            if "feed_fps" in scenario:
                end, _ = vm.command(f"spawn feed feed-mjpeg -r {scenario['feed_fps']} "
                                    "/payload/jpeg")
                if not end.startswith("OK"):
                    raise RuntimeError(f"cannot feed the loopback device: {end}")
                # Both servers need the device to have its MJPEG format before they open it.
                vm.exec("n=0; until v4l2-ctl -d /dev/video10 --get-fmt-video 2>/dev/null | "
                        "grep -q MJPG; do n=$((n+1)); [ $n -gt 100 ] && exit 1; usleep 100000; "
                        "done; sleep 1", timeout=30)
            runs = {"frcstream": [], "ustreamer": []}
            for rep in range(args.repeat):
                order = ["frcstream", "ustreamer"] if rep % 2 == 0 else ["ustreamer", "frcstream"]
                for name in order:
                    report = run_server(vm, name, scenario[name], scenario["clients"], args)
                    report.update(server=name, scenario=key, load_average=load_average())
                    if report["errors"] or report["invalid_parts"]:
                        log(f"{name} {key}: {report['errors']} {report['invalid_parts']} invalid")
                    runs[name].append(report)
                    if out:
                        out.write(json.dumps(report) + "\n")
                        out.flush()
            if "feed_fps" in scenario:
                vm.command("kill feed")
                time.sleep(0.5)
            results.append((key, runs))
            log(f"{key} done")
    finally:
        vm.quit()
    print_table(results)


def print_table(results):
    rows, notes = [], []
    for key, runs in results:
        notes.append(left_out(runs["ustreamer"] + runs["frcstream"]))
        pairs = [(u, f) for u, f in zip(runs["ustreamer"], runs["frcstream"])
                 if clean(u) and clean(f)]
        us, fr = [u for u, _ in pairs], [f for _, f in pairs]
        ratios = [f["server_cpu_ms_per_delivered_frame"] / u["server_cpu_ms_per_delivered_frame"]
                  for u, f in pairs]
        rows.append([
            SCENARIOS[key]["title"], SCENARIOS[key]["clients"],
            f"{fmt(median(r['fps_per_client'] for r in us), 1)} / {fmt(median(r['fps_per_client'] for r in fr), 1)}",
            f"{fmt(median(r['server_cpu_percent'] for r in us), 1)} / {fmt(median(r['server_cpu_percent'] for r in fr), 1)}",
            fmt(median(r["server_cpu_ms_per_delivered_frame"] for r in us), 3),
            fmt(median(r["server_cpu_ms_per_delivered_frame"] for r in fr), 3),
            f"**{fmt(median(ratios))}** ({spread(ratios)})",
            f"{median(r['server_rss_kib'] for r in us) / 1024:.1f} / {median(r['server_rss_kib'] for r in fr) / 1024:.1f}",
            f"{median(r['server_threads'] for r in us):.0f} / {median(r['server_threads'] for r in fr):.0f}",
        ])
    print("Server CPU per delivered frame in the VM (ms of emulated CPU; whole process)")
    print(table(["input", "clients", "fps per client ustreamer / frcstream",
                 "CPU % ustreamer / frcstream", "ustreamer", "frcstream", "ratio (spread)",
                 "RSS MiB ustreamer / frcstream", "threads ustreamer / frcstream"], rows))
    for note in filter(None, notes):
        print(note)


if __name__ == "__main__":
    sys.exit(main())
