"""The original MjpgServer API, drop-in: the seed's example (OpenCV and PIL), its URLs,
POST of fps/quality, colours, Ctrl-C."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from conftest import MjpegReader, free_port, http
from frcstream import MjpgServer

REPO = Path(__file__).resolve().parents[2]

# Runs the seed's example (examples/python/seed_example.py) as it is, with a synthetic
# camera in place of /dev/video0 (changing 640x480 frames, red on the left half) and the
# port 8080 it asks for moved to a free one.
HARNESS = r"""
import runpy, sys, cv2, numpy as np, frcstream
port = int(sys.argv[1])
class FakeCapture:
    def __init__(self, index): self.n = 0
    def set(self, prop, value): return True
    def read(self):
        self.n += 1
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, :320] = (0, 0, 255)                     # BGR red
        cv2.putText(frame, str(self.n), (340, 240), cv2.FONT_HERSHEY_SIMPLEX, 3, (255, 255, 255), 5)
        return True, frame
cv2.VideoCapture = FakeCapture
Original = frcstream.MjpgServer
class Moved(Original):
    def __init__(self, bind_addr="localhost", port=8080, name="cam"):
        super().__init__(bind_addr, port if port != 8080 else globals()["port"], name)
    def set_quality(self, quality=-1):
        super().set_quality(quality)
        self.set_fps(15)                                 # the rate the test checks
frcstream.MjpgServer = Moved
runpy.run_path(sys.argv[2], run_name="__main__")
"""


def wait_for_port(port, deadline=10):
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        try:
            status, _ = http(port, "/fps")
            if status == 200:
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError("the example did not start serving on port %d" % port)


def decode(jpeg):
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "a part is not a JPEG"
    return image


def assert_red_left(image):
    b, g, r = image[image.shape[0] // 2, image.shape[1] // 8].astype(int)
    assert r > 200 and g < 60 and b < 60, "BGR red arrived as BGR %s" % ((b, g, r),)


def test_seed_example_streams_changing_frames_in_the_right_colours_at_the_set_fps(tmp_path):
    port = free_port()
    example = subprocess.Popen(
        [sys.executable, "-c", HARNESS, str(port), str(REPO / "examples/python/seed_example.py")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for_port(port)
        reader = MjpegReader(port, "/cam.mjpg")
        time.sleep(3)
        fps = reader.fps_over(2)
        reader.close()
        assert reader.error is None, reader.error
        assert 12 <= fps <= 17, "the example asked for 15 fps, the stream brought %.1f" % fps
        frames = [decode(j) for _, j in reader.parts[-10:]]
        assert frames[0].shape == (480, 640, 3)
        assert_red_left(frames[-1])
        assert any(not np.array_equal(a, b) for a, b in zip(frames, frames[1:])), "frames never change"
        status, page = http(port, "/cam.html")
        assert status == 200 and b"cam" in page
        status, snapshot = http(port, "/cam.jpeg")
        assert status == 200 and snapshot.startswith(b"\xff\xd8")
        assert http(port, "/")[0] == 200
        assert http(port, "/fps") == (200, b"15\n")
        assert http(port, "/quality") == (200, b"50\n")
        assert http(port, "/stats.json")[0] == 200               # frcstream's own URLs too
    finally:
        example.send_signal(signal.SIGINT)
        out, err = example.communicate(timeout=10)
    assert "Starting mjpeg server http://localhost:%d/cam.html" % port in out, out
    assert "Traceback" not in err.replace("KeyboardInterrupt", "") or "KeyboardInterrupt" in err, err


def test_pil_pull_and_post_of_fps_to_any_path(reader):
    shade = [0]

    def pull():
        shade[0] = (shade[0] + 7) % 256
        array = np.zeros((240, 320, 3), np.uint8)
        array[:, :, 0] = 255                                   # RGB red
        array[:, 200:] = shade[0]
        return True, Image.fromarray(array)

    server = MjpgServer(bind_addr="127.0.0.1", port=0, name="pil")
    try:
        server.attach_pil(pull)
        server.set_fps(20)
        server.start(threaded=True)
        port = server.server.port
        r = reader(port, "/pil.mjpg")
        time.sleep(2.2)
        assert 16 <= r.fps_over(1.5) <= 23, r.fps_over(1.5)
        assert 15 <= server.get_fps() <= 24, server.get_fps()
        assert server.get_band_usage() > 0
        assert_red_left(decode(r.parts[-1][1]))
        assert decode(r.parts[-1][1]).shape == (240, 320, 3)
        assert len({j for _, j in r.parts[-10:]}) > 5, "frames never change"

        # The original took fps= and quality= in a form POST to any path.
        status, _ = http(port, "/whatever/path", "POST", b"fps=5")
        assert status == 200
        assert http(port, "/fps") == (200, b"5\n")
        status, _ = http(port, "/", "POST", b"quality=30")
        assert status == 200
        assert http(port, "/quality") == (200, b"30\n")
        time.sleep(2.2)
        assert 4 <= r.fps_over(1.5) <= 6.5, r.fps_over(1.5)
    finally:
        server.stop()


def test_raw_pull_serves_the_jpeg_as_it_is(reader):
    ok, jpeg = cv2.imencode(".jpg", np.full((120, 160, 3), 90, np.uint8))
    jpeg = jpeg.tobytes()
    server = MjpgServer(bind_addr="127.0.0.1", port=0, name="raw")
    try:
        server.attach_raw(lambda: (True, bytearray(jpeg)))
        server.set_fps(10)
        server.start(threaded=True)
        status, body = http(server.server.port, "/raw.jpeg")
        assert status == 200 and body == jpeg
    finally:
        server.stop()


def test_pull_is_called_only_while_someone_watches(reader):
    calls = [0]

    def pull():
        calls[0] += 1
        return True, np.zeros((48, 64, 3), np.uint8)

    server = MjpgServer(bind_addr="127.0.0.1", port=0, name="idle")
    try:
        server.attach_opencv(pull)
        server.set_fps(30)
        server.start(threaded=True)
        time.sleep(0.5)
        assert calls[0] == 0, "pull() called with nobody watching"
        r = reader(server.server.port, "/idle.mjpg")
        time.sleep(1)
        assert calls[0] >= 20
        r.close()
        time.sleep(0.3)
        before = calls[0]
        time.sleep(0.5)
        assert calls[0] - before <= 1, "pull() still called after the last client left"
    finally:
        server.stop()


def test_start_blocks_until_ctrl_c_and_stops_cleanly():
    port = free_port()
    script = (
        "import numpy as np\n"
        "from frcstream import MjpgServer\n"
        "s = MjpgServer('127.0.0.1', %d, 'cam')\n"
        "s.attach_opencv(lambda: (True, np.zeros((48, 64, 3), np.uint8)))\n"
        "s.start()\n"
        "print('returned')\n" % port)
    process = subprocess.Popen([sys.executable, "-u", "-c", script], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    # The port is bound in the constructor (as the original's HTTPServer did): wait for
    # start() itself, then a moment for it to reach its wait.
    started = process.stdout.readline()
    assert started.startswith("Starting mjpeg server"), started
    time.sleep(0.5)
    wait_for_port(port)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=10)
    out = started + out
    assert process.returncode == 0, err
    assert "returned" in out and "Traceback" not in err, err
