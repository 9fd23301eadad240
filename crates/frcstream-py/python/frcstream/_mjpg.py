"""The ``MjpgServer`` class frcstream began from (a Python MJPEG server "for another FRC
team that needs a python mjpeg streamer"), with frcstream's server underneath.

The API and the URLs are the original's: ``/<name>.mjpg``, ``/<name>.html`` and ``/``,
``/<name>.jpeg``, ``GET /fps`` and ``/quality``, a form POST of ``fps=``/``quality=`` to any
path; plus every frcstream URL (``/stats.json``, ``?resolution=``, cscore's
``/?action=stream``...). What changed underneath:

* ``pull()`` is called by one thread of frcstream's (``pull-<name>``) at the stream's fps,
  only while someone watches, not once per client; every client gets the same JPEG.
* Colours are right: a BGR frame is encoded as BGR (the original swapped red and blue).
* A ``pull()`` that raises is logged once and the stream shows NO SIGNAL until it works
  again; the server does not stop.
* Ctrl-C in ``start()`` stops the server and returns.
"""

import time

from ._frcstream import DEFAULT_QUALITY, FPS_MAX, Server


class MjpgServer:
    """An MJPEG server of one stream named ``name``, fed by a ``pull()`` callback.

    The port is bound here (``OSError`` if it is in use), as the original's
    ``HTTPServer`` did.
    """

    def __init__(self, bind_addr="localhost", port=8080, name="cam"):
        self._name = str(name)
        self._port = int(port)
        self._bind = bind_addr
        self._fps = -1
        self._quality = -1
        self._pull_method = None
        self._cur_method = None
        self.server = Server(port=self._port, bind=str(bind_addr), post_to_any_path=True)
        self.stream = self.server.add_stream(self._name, fps=FPS_MAX, quality=DEFAULT_QUALITY)
        self.server.start()
        self._port = self.server.port

    # Settings -------------------------------------------------------------------------

    def set_fps(self, fps=-1):
        """Frames per second to pull and send; -1: as fast as the source (up to FPS_MAX)."""
        fps = int(fps)
        self._fps = fps
        self.stream.fps = FPS_MAX if fps <= 0 else min(fps, FPS_MAX)

    def set_quality(self, quality=-1):
        """JPEG quality 1-100; -1: frcstream's default (DEFAULT_QUALITY)."""
        quality = int(quality)
        self._quality = quality
        self.stream.quality = DEFAULT_QUALITY if quality < 0 else min(max(quality, 1), 100)

    def get_fps(self):
        """The real rate: frames sent per second over the last seconds."""
        return self.stream.published_fps

    def get_band_usage(self):
        """MB/s, as the original computed it: the newest frame's size times the real rate."""
        size = self.stream.last_frame_bytes or 1
        return ((size / 1024) / 1024) * self.get_fps()

    # Sources --------------------------------------------------------------------------

    def attach_opencv(self, method):
        """``method()`` returns ``(ok, image)`` with a BGR numpy array (``cap.read``)."""
        self._attach(method, "opencv")

    def attach_pil(self, method):
        """``method()`` returns ``(ok, image)`` with a ``PIL.Image``."""
        self._attach(method, "pil")

    def attach_raw(self, method):
        """``method()`` returns ``(ok, image)`` with JPEG ``bytes``/``bytearray``."""
        self._attach(method, "raw")

    def _attach(self, method, kind):
        self.server.attach_pull(self._name, method, kind)
        self._pull_method = method
        self._cur_method = kind

    # Running --------------------------------------------------------------------------

    def start(self, threaded=False):
        """Serves. ``threaded=False`` blocks until Ctrl-C (which stops the server cleanly);
        ``threaded=True`` returns at once, serving from frcstream's threads."""
        if self._pull_method is None:
            raise RuntimeError("Request method not found")
        print("Starting mjpeg server http://%s:%d/%s.html" % (self._bind, self._port, self._name))
        if threaded:
            return None
        try:
            while self.server.running:
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()
        return None

    def stop(self):
        """Stops serving and closes every client (not in the original)."""
        self.server.stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
        return False
