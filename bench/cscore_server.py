"""WPILib cscore serving frames a program puts, the way a robot's vision program does:
a `CvSource` fed BGR frames (bench/frames.py) at a fixed rate, and an `MjpegServer` on it.

    python cscore_server.py TEXTURE WIDTH HEIGHT FPS PORT QUALITY [ADDRESS]

ADDRESS is where the server listens: 127.0.0.1 unless given (bench/fieldlink.sh gives the
robot's address on the field link).

The feeding loop runs in the main thread, named `feeder` so the load tool can take its
CPU time out of the server's. Prints `READY <pid>` once serving; stops on SIGTERM.
"""

import ctypes
import signal
import sys
import time

import cscore

from frames import Frames, load_texture


def name_this_thread(name):
    PR_SET_NAME = 15
    ctypes.CDLL(None).prctl(PR_SET_NAME, name.encode(), 0, 0, 0)


def main():
    texture_path = sys.argv[1]
    width, height, fps, port, quality = (int(a) for a in sys.argv[2:7])
    frames = Frames(load_texture(texture_path, width, height), width, height)
    source = cscore.CvSource("bench", cscore.VideoMode.PixelFormat.kBGR, width, height, fps)
    address = sys.argv[7] if len(sys.argv) > 7 else "127.0.0.1"
    server = cscore.MjpegServer("bench", address, port)
    server.setSource(source)
    # The quality of clients that ask for none (cscore's default is 80).
    server.setDefaultCompression(quality)
    name_this_thread("feeder")
    running = True

    def stop(*_):
        nonlocal running
        running = False

    signal.signal(signal.SIGTERM, stop)
    print(f"READY {__import__('os').getpid()}", flush=True)
    period = 1.0 / fps
    due = time.monotonic()
    index = 0
    while running:
        frames.draw(index)
        source.putFrame(frames.stamp())
        index += 1
        due += period
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -period:
            due = time.monotonic()  # fell behind: start afresh rather than burst


if __name__ == "__main__":
    main()
