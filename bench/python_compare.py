"""The three ways a Python vision program can serve its frames, in one run
(bench/python.sh): frcstream's Python package (Server + put_frame), robotpy-cscore
(CvSource + MjpegServer) and the MjpgServer class frcstream began from (the seed). Each
is one Python process (bench/python_server.py) whose main thread pushes the same 640x480
BGR frames (bench/frames.py) at 30 fps; 4 clients read its stream (examples/mjpeg_load.rs).
Measured in turn, `--repeat` times, in rotating order; the servers not measured are
frozen (SIGSTOP).

Figures: CPU of the whole Python process (feeder included: drawing the frames costs the
same in each) per frame delivered to a client; the latency from the stamp drawn into the
frame to its last byte at the client, p50/p95; fps delivered per client.
"""

import argparse
import json
import os
import time

import frames
from benchlib import TARGET, clean, fmt, free_port, left_out, load_average, log, machine_line, \
    median, run_load, table, wait_for_quiet
from cscore_compare import Server

HERE = os.path.dirname(os.path.abspath(__file__))
SEED = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "seed", "000_3fbbf4029fcb76a2.txt")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--python", required=True,
                        help="a python with frcstream, robotpy-cscore, gevent and opencv")
    parser.add_argument("--seed", default=SEED, help="the seed file (the original MjpgServer)")
    parser.add_argument("--size", default="640x480")
    parser.add_argument("--clients", default="4,1")
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", help="append every run's report to this file")
    args = parser.parse_args()

    work = os.path.join(TARGET, "bench")
    os.makedirs(work, exist_ok=True)
    width, height = (int(v) for v in args.size.split("x"))
    texture = frames.ensure_texture(work, width, height)
    load = wait_for_quiet()
    print(f"machine: {machine_line()}; load average at start {load:.2f}")
    print(f"frames: bench/frames.py BGR {args.size}, {args.fps} fps, quality {args.quality}, "
          f"{args.clients} clients; {args.seconds:g} s per run after {args.warmup:g} s warm-up; "
          f"{args.repeat} runs per server, rotating; medians\n")
    servers = []
    for mode, path in (("frcstream", "/bench.mjpg"), ("cscore", "/stream.mjpg"), ("seed", "/bench.mjpg")):
        port = free_port()
        command = [args.python, os.path.join(HERE, "python_server.py"), mode, texture, str(width),
                   str(height), str(args.fps), str(port), str(args.quality), args.seed]
        server = Server(mode, command, path)
        server.port = port
        servers.append(server)
    out = open(args.json, "a") if args.json else None
    results = []
    try:
        for server in servers:
            server.start(work)
            server.pause()
        for clients in (int(c) for c in args.clients.split(",")):
            runs = {s.name: [] for s in servers}
            for rep in range(args.repeat):
                order = servers[rep % 3:] + servers[:rep % 3]
                for server in order:
                    server.resume()
                    time.sleep(0.5)
                    report = run_load(server.url(server.port), clients, args.seconds, args.warmup,
                                      pid=server.pid, feeder_thread="feeder", latency="barcode")
                    server.pause()
                    report.update(server=server.name, size=args.size, clients=clients,
                                  load_average=load_average())
                    if not clean(report):
                        log(f"{server.name}, {clients} clients: {report['errors']} "
                            f"{report['invalid_parts']} invalid parts")
                    runs[server.name].append(report)
                    if out:
                        out.write(json.dumps(report) + "\n")
                        out.flush()
                log(f"{clients} clients: round {rep + 1} done")
            results.append((clients, runs))
    finally:
        for server in servers:
            server.stop()

    rows = []
    notes = []
    for clients, runs in results:
        def figure(name, key):
            return median(r[key] for r in runs[name] if clean(r))

        def latency(name, q):
            return median(r["latency_ms"][q] for r in runs[name] if clean(r) and r.get("latency_ms"))

        def useful(name):
            """Process CPU per frame delivered, a frame sent again to the same client (the
            seed re-sends the newest frame as fast as it can) not counted again."""
            return median(r["process_cpu_ms_per_delivered_frame"] * r["frames"]
                          / (min(r["fps_per_client"], args.fps) * clients * r["seconds"])
                          for r in runs[name] if clean(r))

        def percent(name):
            return median(r["process_cpu_ms_per_delivered_frame"] * r["frames"] / r["seconds"] / 10
                          for r in runs[name] if clean(r))

        base = useful("frcstream")
        for name in ("frcstream", "cscore", "seed"):
            if not any(clean(r) for r in runs[name]):
                broken = median(r["invalid_parts"] for r in runs[name])
                rows.append([clients, name, f"broken: {broken:.0f} invalid parts a run", "", "", "", "", ""])
                continue
            cpu = useful(name)
            rows.append([
                clients, name,
                fmt(figure(name, "fps_per_client"), 1),
                fmt(cpu, 3),
                f"{percent(name):.0f}%",
                "1" if name == "frcstream" else f"**{fmt(base / cpu)}**",
                f"{fmt(latency(name, 'p50'))} / {fmt(latency(name, 'p95'))}",
                f"{median(r['server_rss_kib'] for r in runs[name] if clean(r)) / 1024:.0f}",
            ])
        notes.append(left_out([r for rs in runs.values() for r in rs]))
    print("Python process CPU per delivered frame (ms; feeder included; a frame sent again to "
          "the same client not counted), CPU of the process, latency, fps")
    print(table(["clients", "server", "fps per client", "CPU ms / delivered frame", "process CPU",
                 "frcstream ÷ this", "latency p50 / p95 (ms)", "peak RSS (MiB)"], rows))
    for note in filter(None, notes):
        print(note)


if __name__ == "__main__":
    main()
