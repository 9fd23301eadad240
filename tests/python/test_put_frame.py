"""The modern API: put_frame into named streams, several per server."""

import threading
import time

import cv2
import numpy as np
import pytest
from PIL import Image

import frcstream
from conftest import free_port, http


def decode(jpeg):
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def test_numpy_640x480_at_30_fps_to_4_clients(reader):
    server = frcstream.Server(port=0, bind="127.0.0.1")
    front = server.add_stream("front", fps=30)
    server.add_stream("back")
    with server:
        port = server.port
        readers = [reader(port, "/front.mjpg") for _ in range(4)]
        frame = np.zeros((480, 640, 3), np.uint8)
        frame[:, :, 2] = 255
        stop = threading.Event()
        pushed = []

        def push():
            n = 0
            next_at = time.monotonic()
            while not stop.is_set():
                n += 1
                pushed.append(time.monotonic())
                cv2.putText(frame, str(n % 10), (300, 300), cv2.FONT_HERSHEY_SIMPLEX, 4,
                            (n % 255, 255, 0), 8)
                front.put_frame(frame)
                next_at += 1 / 30
                time.sleep(max(0, next_at - time.monotonic()))

        pusher = threading.Thread(target=push)
        pusher.start()
        time.sleep(3)
        window_end = time.monotonic()
        pushed_fps = sum(1 for t in pushed if t > window_end - 2) / 2
        stop.set()
        pusher.join()
        # The pusher is a Python thread: on a loaded machine it may fall short of 30 fps
        # itself. Every client must get (nearly) every frame it pushed.
        assert pushed_fps >= 20, "the test's own pusher only managed %.1f fps" % pushed_fps
        for r in readers:
            assert r.error is None, r.error
            fps = r.fps_over(2)
            assert 0.85 * pushed_fps <= fps <= 32, \
                "a client got %.1f fps of the %.1f pushed" % (fps, pushed_fps)
            image = decode(r.parts[-1][1])
            assert image.shape == (480, 640, 3)
            b, g, r_ = image[10, 10].astype(int)
            assert r_ > 200 and g < 60 and b < 60, (b, g, r_)
        stats = front.stats()
        assert stats["clients"] == 4 and stats["published_fps"] > 25
        assert "/back.mjpg" in http(port, "/nothing")[1].decode()


def snapshot_after(push):
    """The snapshot of a fresh stream while `push()` pushes a frame every 20 ms."""
    server = frcstream.Server(port=0, bind="127.0.0.1")
    s = server.add_stream("s")
    with server:
        result = {}
        t = threading.Thread(target=lambda: result.update(r=http(server.port, "/s.jpg")))
        t.start()
        deadline = time.monotonic() + 3
        while t.is_alive() and time.monotonic() < deadline:
            push(s)
            time.sleep(0.02)
        t.join()
    status, body = result["r"]
    assert status == 200
    return body


def test_every_kind_of_frame():
        gray = np.full((100, 200), 200, np.uint8)
        assert decode(snapshot_after(lambda s: s.put_frame(gray)))[50, 50, 0] > 190
        assert decode(snapshot_after(lambda s: s.put_frame(gray[:, :, None]))).shape == (100, 200, 3)
        yuyv = np.zeros((100, 200, 2), np.uint8)
        yuyv[:, :, 0] = 81                                   # Y
        yuyv[:, 0::2, 1] = 90                                # U
        yuyv[:, 1::2, 1] = 240                               # V: red
        red = decode(snapshot_after(lambda s: s.put_frame(yuyv)))
        assert red[50, 50, 2] > 200 and red[50, 50, 1] < 60, red[50, 50]
        assert decode(snapshot_after(lambda s: s.put_frame(yuyv.reshape(100, 400), "yuyv"))).shape == (100, 200, 3)
        rgb = np.zeros((60, 80, 3), np.uint8)
        rgb[:, :, 0] = 255
        assert decode(snapshot_after(lambda s: s.put_frame(rgb, format="rgb")))[30, 40, 2] > 200
        pil = Image.new("RGB", (80, 60), (255, 0, 0))
        assert decode(snapshot_after(lambda s: s.put_frame(pil)))[30, 40, 2] > 200
        rgba = Image.new("RGBA", (80, 60), (0, 0, 255, 128))
        assert decode(snapshot_after(lambda s: s.put_frame(rgba)))[30, 40, 0] > 200
        ok, jpeg = cv2.imencode(".jpg", np.full((60, 80, 3), 77, np.uint8))
        assert snapshot_after(lambda s: s.put_frame(jpeg.tobytes())) == jpeg.tobytes()
        assert snapshot_after(lambda s: s.put_frame(memoryview(jpeg.tobytes()))) == jpeg.tobytes()
        # A region of a larger image: rows apart, read in place.
        big = np.zeros((480, 640, 3), np.uint8)
        big[100:200, 100:300] = (255, 0, 0)
        region = decode(snapshot_after(lambda s: s.put_frame(big[100:200, 100:300])))
        assert region.shape == (100, 200, 3) and region[50, 100, 0] > 200


def test_settings_before_and_after_start():
    server = frcstream.Server(port=0, bind="127.0.0.1")
    s = server.add_stream("cam", fps=10, quality=40, width=320, height=240)
    s.fps = 12
    s.size = (160, 120)
    assert (s.fps, s.quality, s.size) == (12, 40, (160, 120))
    with server:
        assert http(server.port, "/fps") == (200, b"12\n")
        s.quality = 70
        assert http(server.port, "/quality") == (200, b"70\n")
        assert not s.has_viewers
        assert server.stream("cam").name == "cam"
        assert any(u.endswith("/cam.mjpg") for u in server.urls())
    assert not server.running


def test_the_context_manager_stops_the_server():
    port = free_port()
    server = frcstream.Server(port=port, bind="127.0.0.1")
    s = server.add_stream("cam")
    with server:
        assert http(port, "/fps")[0] == 200
    with pytest.raises(RuntimeError, match="stopped"):
        s.put_frame(np.zeros((10, 10), np.uint8))
    again = frcstream.Server(port=port, bind="127.0.0.1")
    again.add_stream("cam")
    with again:                                          # the port is free again
        assert http(port, "/fps")[0] == 200
