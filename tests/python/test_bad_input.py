"""Bad input gets an exception that says what was expected; a failing pull() is logged
once and the stream goes on with NO SIGNAL; nothing crashes the process."""

import errno
import subprocess
import sys
import time

import numpy as np
import pytest

import frcstream
from conftest import free_port, http


@pytest.fixture
def stream():
    server = frcstream.Server(port=0, bind="127.0.0.1")
    s = server.add_stream("cam")
    with server:
        yield s


@pytest.mark.parametrize("frame, error, words", [
    (np.zeros((48, 64, 3), np.float32), TypeError, "dtype uint8"),
    (np.zeros((48, 64, 3), np.uint16), TypeError, "got dtype uint16"),
    (np.zeros((48, 64, 4), np.uint8), ValueError, "got 4"),
    (np.zeros((48, 64, 5), np.uint8), ValueError, "channels, got 5"),
    (np.zeros((2, 48, 64, 3), np.uint8), ValueError, "shape (height, width"),
    (np.zeros(100, np.uint8), ValueError, "shape (height, width"),
    (np.zeros((48, 64, 3), np.uint8)[:, ::2], ValueError, "ascontiguousarray"),
    (np.zeros((48, 64, 3), np.uint8)[::-1], ValueError, "non-contiguous"),
    (np.zeros((64, 48, 3), np.uint8).transpose(1, 0, 2), ValueError, "non-contiguous"),
    (np.zeros((0, 64, 3), np.uint8), ValueError, "not usable"),
    (np.zeros((48, 63, 2), np.uint8), ValueError, "even width"),
    (b"not a jpeg", ValueError, "complete JPEG"),
    ([1, 2, 3], TypeError, "expected a frame"),
    (None, TypeError, "expected a frame"),
])
def test_bad_frames_say_what_was_expected(stream, frame, error, words):
    with pytest.raises(error) as raised:
        stream.put_frame(frame)
    assert words in str(raised.value)


def test_bad_formats_and_settings(stream):
    with pytest.raises(ValueError, match="format must be"):
        stream.put_frame(np.zeros((4, 4), np.uint8), format="hsv")
    with pytest.raises(ValueError, match="is not BGR"):
        stream.put_frame(np.zeros((4, 4), np.uint8), format="bgr")
    with pytest.raises(TypeError, match="needs the frame as a numpy array"):
        stream.put_frame(b"\xff\xd8", format="bgr")
    with pytest.raises(ValueError, match="fps must be 1–120"):
        stream.fps = 0
    with pytest.raises(ValueError, match="quality must be 1–100"):
        stream.quality = 101
    with pytest.raises(RuntimeError, match="before start"):
        stream.size = (320, 240)


def test_bad_server_arguments():
    with pytest.raises(ValueError, match="port must be"):
        frcstream.Server(port=70000)
    with pytest.raises(ValueError, match="team must be"):
        frcstream.Server(team=0)
    with pytest.raises(ValueError, match="not both"):
        frcstream.Server(team=1234, nt_server="localhost")
    server = frcstream.Server(port=0)
    with pytest.raises(ValueError, match="stream name"):
        server.add_stream("bad name/")
    server.add_stream("cam")
    with pytest.raises(ValueError, match="already a stream"):
        server.add_stream("cam")
    with pytest.raises(RuntimeError, match="add_stream"):
        frcstream.Server(port=0).start()
    with pytest.raises(RuntimeError, match="call start"):
        server.stream("cam").put_frame(np.zeros((4, 4), np.uint8))
    with pytest.raises(TypeError, match="pull must be a function"):
        server.attach_pull("cam", 42, "opencv")
    with pytest.raises(KeyError):
        server.stream("nope")


def test_a_port_in_use_is_an_oserror():
    port = free_port()
    first = frcstream.MjpgServer(bind_addr="127.0.0.1", port=port)
    try:
        with pytest.raises(OSError) as raised:
            frcstream.MjpgServer(bind_addr="127.0.0.1", port=port)
        assert raised.value.errno == errno.EADDRINUSE
        assert "in use" in str(raised.value)
    finally:
        first.stop()


FAILING_PULL = r"""
import sys, time, json, urllib.request
import numpy as np
from frcstream import MjpgServer
from conftest import MjpegReader
mode = ["raise"]
def pull():
    if mode[0] == "raise":
        raise ValueError("the camera fell off")
    if mode[0] == "garbage":
        return "not a pair"
    if mode[0] == "none":
        return True, None
    if mode[0] == "false":
        return False, None
    return True, np.full((120, 160, 3), 200, np.uint8)
s = MjpgServer("127.0.0.1", 0, "cam")
s.attach_opencv(pull)
s.set_fps(20)
s.start(threaded=True)
port = s.server.port
r = MjpegReader(port, "/cam.mjpg")
time.sleep(1.5)
stats = s.stream.stats()
print("problem:", stats["problem"], "connected:", stats["connected"], "parts:", len(r.parts), flush=True)
mode[0] = "ok"
time.sleep(1)
print("after:", s.stream.stats()["problem"], len(r.parts), flush=True)
for m in ("garbage", "none", "false", "ok"):
    mode[0] = m
    time.sleep(0.5)
n = len(r.parts); time.sleep(0.5)
print("end:", s.stream.stats()["problem"], len(r.parts) - n, r.error, flush=True)
r.close()
s.stop()
"""


def test_a_failing_pull_is_logged_once_and_shows_no_signal():
    result = subprocess.run([sys.executable, "-c", FAILING_PULL], capture_output=True, text=True,
                            timeout=30, cwd=__file__.rsplit("/", 1)[0])
    assert result.returncode == 0, result.stderr
    out, err = result.stdout, result.stderr
    assert err.count("ERROR] cam: pull() raised") == 1, err
    assert "(at <string>:9)" in err, err                # where it was raised
    problem = next(l for l in out.splitlines() if l.startswith("problem:"))
    assert "ValueError: the camera fell off" in problem and "connected: False" in problem, out
    assert int(problem.split("parts:")[1]) >= 2, "NO SIGNAL cards reach the client: " + out
    assert "after: None" in out, out
    assert "works again" in err
    for words in ("must return (ok, image)", "(True, None)", "ok=False"):
        assert words in err, err
    end = next(l for l in out.splitlines() if l.startswith("end:"))
    assert end.startswith("end: None") and end.endswith("None"), out
    assert int(end.split()[2]) >= 5, "frames flow again: " + out
