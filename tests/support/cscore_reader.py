"""Reads an MJPEG stream the way Shuffleboard does: WPILib's own cscore `HttpCamera` with a
`CvSink` (PyPI `robotpy-cscore`, pinned in scripts/ensure-venv.sh), which decodes every
frame to a BGR numpy array.

    cscore_reader.py URL FRAMES [--timeout SECONDS] [--seconds SECONDS]

Grabs FRAMES frames (and, with --seconds, keeps grabbing until that long has passed since
the first one) and prints one JSON line per frame:

    {"frame": 0, "width": 320, "height": 240, "channels": 3, "at": 0.71, "time_us": ..., "mean": 97.2}

`at` is seconds since the camera was opened, `time_us` cscore's own frame time (wpi::Now,
when its HttpCamera thread finished reading the part), `mean` the mean pixel value (a
decoded picture, not an empty buffer). Then a summary line:

    {"done": true, "frames": 20, "fps": 15.1, "max_gap": 0.09, "first_at": 0.3,
     "warnings": [...], "errors": [...]}

`fps` and `max_gap` come from cscore's frame times, `first_at` is when the first frame
came. `warnings` holds every warning and error cscore logged: a stream that breaks off
("disconnected during headers"), a bad response, a part that is not a JPEG. `errors` holds
the sink's errors (getError) for grabs that returned 0 with one.

Frames are grabbed with `grabFrameNoTimeout`, which waits for the next frame however long
it takes; when --timeout seconds (5 by default) pass without one, the helper prints
{"error": <the sink's getError()>, "frames": <got so far>, "warnings": [...], ...} and exits
with status 1.
"""

import argparse
import json
import logging
import os
import threading
import time

import cscore
import numpy as np


class Collect(logging.Handler):
    """Keeps cscore's log lines at WARNING and above."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(f"{record.levelname}: {record.getMessage()}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("frames", type=int)
    parser.add_argument("--timeout", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=0.0)
    args = parser.parse_args()

    log = Collect()
    logging.getLogger("cscore").addHandler(log)
    logging.getLogger("cscore").setLevel(logging.WARNING)
    cscore.enableLogging(logging.WARNING)

    opened = time.monotonic()
    camera = cscore.HttpCamera("reader", args.url)
    sink = cscore.CvSink("reader-sink")
    sink.setSource(camera)
    image = np.zeros((480, 640, 3), dtype=np.uint8)
    times = []
    errors = []
    last_progress = [time.monotonic()]

    def watchdog():
        while time.monotonic() - last_progress[0] < args.timeout:
            time.sleep(0.05)
        error = {
            "error": sink.getError() or "no frame",
            "url": args.url,
            "frames": len(times),
            "seconds_without_a_frame": args.timeout,
            "connected": camera.isConnected(),
            "warnings": log.lines,
            "errors": errors,
        }
        print(json.dumps(error), flush=True)
        os._exit(1)

    threading.Thread(target=watchdog, daemon=True).start()
    while len(times) < args.frames or (
        args.seconds > 0 and (times[-1] - times[0]) / 1e6 < args.seconds
    ):
        # Not grabFrame(image, timeout): it gives up after about 0.225 s whatever timeout it
        # is given (2026.2.2), and a frame that arrives as it gives up is lost to it.
        frame_time, image = sink.grabFrameNoTimeout(image)
        if frame_time == 0:
            # 0 with an empty error comes now and then between frames and means nothing; an
            # error is a broken connection or a bad part.
            if sink.getError():
                errors.append(sink.getError())
            continue
        last_progress[0] = time.monotonic()
        if not times:
            first_at = time.monotonic() - opened
        times.append(frame_time)
        height, width = image.shape[:2]
        print(
            json.dumps(
                {
                    "frame": len(times) - 1,
                    "width": width,
                    "height": height,
                    "channels": image.shape[2] if image.ndim == 3 else 1,
                    "at": round(time.monotonic() - opened, 3),
                    "time_us": frame_time,
                    "mean": round(float(image.mean()), 1),
                }
            ),
            flush=True,
        )
    span = (times[-1] - times[0]) / 1e6
    gaps = [(b - a) / 1e6 for a, b in zip(times, times[1:])]
    print(
        json.dumps(
            {
                "done": True,
                "url": args.url,
                "frames": len(times),
                "fps": round((len(times) - 1) / span, 2) if span > 0 else None,
                "max_gap": round(max(gaps), 3) if gaps else None,
                "first_at": round(first_at, 3) if times else None,
                "warnings": log.lines,
                "errors": errors,
            }
        ),
        flush=True,
    )
    # Tearing cscore down can block on a camera thread mid-reconnect: skip it.
    os._exit(0)


if __name__ == "__main__":
    main()
