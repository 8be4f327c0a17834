"""The load engine: Locust in a child process, measured in windows.

Nothing imported here imports locust; the Locust-side modules (plugin, model_user,
locust_shapes, locustfile, attach) are loaded only inside the child.
"""

from harness.engine.load.config import LoadConfig
from harness.engine.load.process import LoadProcess, LoadProcessError, merge_into

__all__ = ["LoadConfig", "LoadProcess", "LoadProcessError", "merge_into"]
