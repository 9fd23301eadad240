from ._frcstream import DEFAULT_QUALITY as DEFAULT_QUALITY
from ._frcstream import FPS_MAX as FPS_MAX
from ._frcstream import Server as Server
from ._frcstream import Stream as Stream
from ._mjpg import MjpgServer as MjpgServer

__version__: str
__all__: list[str]
