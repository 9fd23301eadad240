"""What the benchmark drivers share: running the load tool, waiting for a quiet machine,
statistics over repeated runs, and printing tables."""

import json
import os
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(ROOT, "target"))
LOAD_TOOL = os.path.join(TARGET, "release", "examples", "mjpeg_load")


def log(message):
    print(message, file=sys.stderr, flush=True)


def load_average():
    with open("/proc/loadavg") as f:
        return float(f.read().split()[0])


def wait_for_quiet(limit=1.0, max_wait=None):
    """Waits (at most `max_wait` seconds: $BENCH_QUIET_WAIT, else 30) for the 1-minute
    load average to fall below `limit`; returns the load average measuring starts at."""
    if max_wait is None:
        max_wait = float(os.environ.get("BENCH_QUIET_WAIT", "30"))
    started = time.monotonic()
    load = load_average()
    if load >= limit:
        log(f"load average {load:.2f}: waiting up to {max_wait:.0f} s for it to fall below {limit}")
    while load >= limit and time.monotonic() - started < max_wait:
        time.sleep(5)
        load = load_average()
    if load >= limit:
        log(f"load average still {load:.2f}: measuring anyway; expect a wider spread")
    return load


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_load(url, clients, seconds, warmup, pid=None, feeder_thread=None, latency="header",
             marks=None):
    """Runs the load tool; returns its JSON report. `marks`, if given, is called with
    "window start" and "window end" as the load tool reaches them."""
    command = [LOAD_TOOL, "--url", url, "--clients", str(clients), "--seconds", str(seconds),
               "--warmup", str(warmup), "--latency", latency]
    if pid is not None:
        command += ["--pid", str(pid)]
    if feeder_thread:
        command += ["--feeder-thread", feeder_thread]
    if marks:
        command.append("--marks")
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    errors = []
    for line in process.stderr:
        line = line.rstrip("\n")
        if marks and line in ("window start", "window end"):
            marks(line)
        else:
            errors.append(line)
    out = process.stdout.read()
    if process.wait() != 0 or not out.strip():
        raise RuntimeError(f"load tool failed ({process.returncode}): {' '.join(errors)}")
    return json.loads(out)


def clean(report):
    """Whether a run counts: every client got frames, no errors, no broken parts. A run
    that does not is reported and left out of the figures."""
    return report["frames"] > 0 and not report["errors"] and not report["invalid_parts"]


def left_out(runs):
    """A note on the runs `clean` refused, or ''."""
    bad = [r for r in runs if not clean(r)]
    if not bad:
        return ""
    return "left out: " + "; ".join(
        f"{r.get('server')} {r.get('scenario') or r.get('size')} {r['clients']} clients "
        f"({r['errors'][0] if r['errors'] else str(r['invalid_parts']) + ' broken parts'})"
        for r in bad)


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def spread(values):
    """'min–max' of a list of numbers."""
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    return f"{min(values):.2f}–{max(values):.2f}"


def fmt(value, digits=2):
    return "–" if value is None else f"{value:.{digits}f}"


def table(headers, rows):
    """A markdown table, as BENCHMARKS.md shows it."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def machine_line():
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Linux {os.uname().release}"
