"""Helpers of the Python package's tests: an MJPEG reader that times each part, HTTP
requests, free ports. Run by scripts/test.sh (after cargo test) in the venv
`scripts/ensure-venv.sh python-tests` makes, with frcstream installed by pip from this checkout."""

import socket
import threading
import time
import urllib.request

import pytest


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, path, method="GET", body=None, content_type="application/x-www-form-urlencoded"):
    """(status, body bytes) of one request."""
    request = urllib.request.Request(
        "http://127.0.0.1:%d%s" % (port, path), data=body, method=method,
        headers={"Content-Type": content_type} if body is not None else {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


class MjpegReader:
    """Reads /<path> as an MJPEG stream in a thread: every part's arrival time and JPEG."""

    def __init__(self, port, path):
        self.parts = []
        self.error = None
        self._stop = False
        self._sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._sock.sendall(("GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path).encode())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        buf = b""
        try:
            file = self._sock.makefile("rb")
            status = file.readline()
            assert b" 200 " in status, status
            while file.readline().strip():
                pass
            while not self._stop:
                line = file.readline()
                if not line:
                    return
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
                    while file.readline().strip():
                        pass
                    jpeg = file.read(length)
                    self.parts.append((time.monotonic(), jpeg))
        except Exception as e:  # noqa: BLE001 (reported by the test)
            if not self._stop:
                self.error = e

    def close(self):
        self._stop = True
        try:
            self._sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._sock.close()
        self._thread.join(2)

    def fps_over(self, seconds):
        """Parts per second over the last `seconds` (after a start-up second)."""
        now = time.monotonic()
        return sum(1 for t, _ in self.parts if t > now - seconds) / seconds


@pytest.fixture
def reader():
    readers = []

    def open_reader(port, path):
        r = MjpegReader(port, path)
        readers.append(r)
        return r

    yield open_reader
    for r in readers:
        r.close()
