"""frcstream's own memory: peak RSS of the server with one camera (the built-in test
pattern, 640x480 YUYV at 30 fps) and 4 clients, then 20 (bench/rss.sh). Prints a table."""

import os
import subprocess
import sys
import tempfile
import time

from benchlib import TARGET, free_port, machine_line, median, run_load, table


def main():
    repeat, seconds = 3, 4
    port = free_port()
    with tempfile.NamedTemporaryFile("w", suffix=".toml", delete=False) as config:
        config.write(f'[server]\nbind = "127.0.0.1"\nport = {port}\nmax_clients = 25\n\n'
                     '[[camera]]\nname = "cam"\nsource = "test-pattern"\n')
    server = subprocess.Popen([os.path.join(TARGET, "release", "frcstream"), "--config",
                               config.name], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        runs = {4: [], 20: []}
        for _ in range(repeat):
            for clients in runs:
                report = run_load(f"http://127.0.0.1:{port}/cam.mjpg", clients, seconds, 1,
                                  pid=server.pid)
                runs[clients].append(report)
    finally:
        server.terminate()
        server.wait()
        os.unlink(config.name)
    rss = {c: median(r["server_rss_kib"] for r in reports) for c, reports in runs.items()}
    threads = {c: median(r["server_threads"] for r in reports) for c, reports in runs.items()}
    print(f"machine: {machine_line()}; {repeat} runs of {seconds} s each; medians\n")
    print("Peak RSS of frcstream, one camera (test pattern 640x480 YUYV, 30 fps)")
    print(table(["clients", "RSS MiB", "threads", "more per client over 4 clients (KiB)"], [
        [4, f"{rss[4] / 1024:.1f}", f"{threads[4]:.0f}", "–"],
        [20, f"{rss[20] / 1024:.1f}", f"{threads[20]:.0f}", f"{(rss[20] - rss[4]) / 16:.0f}"],
    ]))


if __name__ == "__main__":
    sys.exit(main())
