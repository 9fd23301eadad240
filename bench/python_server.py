"""One Python vision program serving frames the way each Python option does, for
bench/python_compare.py:

    python python_server.py MODE TEXTURE WIDTH HEIGHT FPS PORT QUALITY [SEED_FILE]

MODE: `frcstream` (frcstream's Python package: Server + put_frame), `cscore`
(robotpy-cscore: CvSource + MjpegServer) or `seed` (the MjpgServer class frcstream
began from, read from SEED_FILE at run time and run as it is, gevent and all; it pulls the
newest frame through attach_opencv). In every mode the main thread, named `feeder`,
draws the same BGR frames (bench/frames.py, time-stamped) at FPS. Prints `READY <pid>` once
serving; stops on SIGTERM. The stream is at /stream.mjpg (cscore), /bench.mjpg (the others).
"""

import contextlib
import ctypes
import os
import re
import signal
import sys
import time

from frames import Frames, load_texture


def name_this_thread(name):
    PR_SET_NAME = 15
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def seed_class(path):
    """The seed's MjpgServer class: its program up to the example, executed as a module."""
    text = open(path, encoding="utf-8").read()
    code = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    code = code.split("'''\nOpencv capture example")[0]
    # The one change: its stream's framing. It writes the boundary without the leading
    # "--" its header promises and without a line end, which browsers forgive and a strict
    # reader (the load tool) does not. Same bytes otherwise, same work.
    code = code.replace("self.wfile.write(b'--jpgboundary')",
                        "self.wfile.write(b'----jpgboundary\\r\\n')")
    namespace = {"__name__": "seed_mjpgserver"}
    exec(compile(code, path, "exec"), namespace)
    return namespace["MjpgServer"]


def main():
    mode, texture_path = sys.argv[1], sys.argv[2]
    width, height, fps, port, quality = (int(a) for a in sys.argv[3:8])
    frames = Frames(load_texture(texture_path, width, height), width, height)
    if mode == "frcstream":
        import frcstream
        server = frcstream.Server(port=port, bind="127.0.0.1")
        stream = server.add_stream("bench", fps=fps, quality=quality, width=width, height=height)
        server.start()
        put = stream.put_frame
    elif mode == "cscore":
        import cscore
        source = cscore.CvSource("bench", cscore.VideoMode.PixelFormat.kBGR, width, height, fps)
        server = cscore.MjpegServer("bench", "127.0.0.1", port)
        server.setSource(source)
        server.setDefaultCompression(quality)
        put = source.putFrame
    elif mode == "seed":
        MjpgServer = seed_class(sys.argv[8])
        newest = [None]
        server = MjpgServer(bind_addr="127.0.0.1", port=port, name="bench")
        server.attach_opencv(lambda: (newest[0] is not None, newest[0]))
        server.set_fps(fps)
        server.set_quality(quality)
        with contextlib.redirect_stdout(sys.stderr):    # its "Starting ..." line
            server.start(threaded=True)

        def put(frame):
            newest[0] = frame.copy()   # the program's own frame buffer is reused
    else:
        sys.exit(f"unknown mode {mode}")
    name_this_thread("feeder")
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    print(f"READY {os.getpid()}", flush=True)
    period = 1.0 / fps
    due = time.monotonic()
    index = 0
    while running:
        frames.draw(index)
        put(frames.stamp())
        index += 1
        due += period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            due = time.monotonic()
    if mode == "frcstream":
        server.stop()
    os._exit(0)


if __name__ == "__main__":
    main()
