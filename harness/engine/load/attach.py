"""Bring-your-own locustfile: loaded next to the user's file (`-f attach.py,theirs.py`).

It adds no users: it attaches the window recorder to every request the user's classes
make, and the configured shape, if any.
"""

import harness.engine.load.model_user  # noqa: F401 - loaded once, before --processes forks workers
from harness.engine.load import plugin
from harness.engine.load.locust_shapes import shape_class_for

_config = plugin.config_from_env()
if _config is not None and (_shape := shape_class_for(_config.load)) is not None:
    AftershockShape = _shape
