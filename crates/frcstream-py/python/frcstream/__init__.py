"""frcstream from Python: frcstream's MJPEG server, in your vision program's process.

Two APIs over the same server (the one the ``frcstream`` binary runs: cscore's URLs and
wire format, per-client size/quality/fps, ``/stats.json``, NetworkTables):

* :class:`MjpgServer`, the class frcstream began from, drop-in::

      from frcstream import MjpgServer
      server = MjpgServer(port=8080, name="cam")
      server.attach_opencv(cap.read)     # frcstream calls it while someone watches
      server.start()                     # http://localhost:8080/cam.mjpg

* :class:`Server` and :class:`Stream`, cscore's ``CvSource.putFrame`` way::

      with frcstream.Server(port=1181, team=1234) as server:   # add streams first:
          ...
      server = frcstream.Server(port=1181, team=1234)
      front = server.add_stream("front", fps=30)
      server.start()
      front.put_frame(bgr)               # numpy BGR/gray/YUYV, PIL.Image or JPEG bytes

Logging: frcstream's lines go to standard error; ``FRCSTREAM_LOG=info`` shows more.
"""

import atexit as _atexit

from ._frcstream import DEFAULT_QUALITY, FPS_MAX, Server, Stream, _stop_all
from ._mjpg import MjpgServer

__all__ = ["MjpgServer", "Server", "Stream", "FPS_MAX", "DEFAULT_QUALITY"]
__version__ = "0.1.0"

# Every server stops before the interpreter does: frcstream's threads that call into
# Python (pull callbacks) must be gone by then.
_atexit.register(_stop_all)
