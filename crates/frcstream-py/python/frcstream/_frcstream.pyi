"""Type stubs of frcstream's extension module (crates/frcstream-py/src)."""

from os import PathLike
from types import TracebackType
from typing import Any, Callable, Literal, Optional, Tuple, Union

FPS_MAX: int
DEFAULT_QUALITY: int

Format = Literal["bgr", "rgb", "gray", "yuyv", "jpeg"]
#: numpy uint8 array (BGR (h, w, 3), gray (h, w) or (h, w, 1), YUYV (h, w, 2)), a
#: PIL.Image, or a complete JPEG.
Frame = Union[Any, bytes, bytearray, memoryview]

class Server:
    """frcstream's MJPEG server (the binary's: cscore's URLs, variants, /stats.json,
    NetworkTables), serving streams Python pushes frames into."""

    def __init__(
        self,
        port: int = 1181,
        bind: str = "0.0.0.0",
        *,
        team: Optional[int] = None,
        nt_server: Optional[str] = None,
        max_clients: int = 20,
        state_file: Optional[Union[str, PathLike[str]]] = None,
        post_to_any_path: bool = False,
    ) -> None:
        """`team=` or `nt_server=` publishes every stream at /CameraPublisher/<name>/ so
        dashboards list it. `port=0` picks a free port (see `port` after start)."""
    def add_stream(
        self,
        name: str,
        *,
        width: int = 640,
        height: int = 480,
        fps: int = 30,
        quality: int = 50,
        port: Optional[int] = None,
    ) -> Stream:
        """Declares a stream at /<name>.mjpg; before start()."""
    def stream(self, name: str) -> Stream: ...
    def start(self) -> None:
        """Binds and serves; OSError if a port is in use."""
    def stop(self) -> None:
        """Closes every client and stops; idempotent."""
    @property
    def running(self) -> bool: ...
    @property
    def port(self) -> int: ...
    def urls(self) -> list[str]: ...
    def stream_names(self) -> list[str]: ...
    def attach_pull(
        self,
        name: str,
        pull: Callable[[], Tuple[bool, Any]],
        kind: Literal["opencv", "pil", "raw"],
    ) -> None:
        """frcstream calls `pull()` from its own thread at the stream's fps, only while
        someone watches."""
    def __enter__(self) -> Server: ...
    def __exit__(
        self,
        exc_type: Optional[type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class Stream:
    """One stream of a Server."""

    @property
    def name(self) -> str: ...
    def put_frame(self, frame: Frame, format: Optional[Format] = None) -> None:
        """Pushes a frame: encodes it in this thread with the GIL released, straight from
        the array (no copy), and returns; at once when nobody watches. Raises
        TypeError/ValueError saying what was expected for a frame it cannot read."""
    def set_lost(self, reason: str) -> None:
        """NO SIGNAL, with `reason` on the page, until the next frame."""
    @property
    def has_viewers(self) -> bool: ...
    fps: int
    quality: int
    size: Tuple[int, int]
    @property
    def published_fps(self) -> float: ...
    @property
    def last_frame_bytes(self) -> int: ...
    def stats(self) -> dict[str, Any]: ...

def _stop_all() -> None: ...
