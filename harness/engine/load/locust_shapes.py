"""LoadTestShape classes for the Locust child, built from the run's LoadConfig.

Only one shape class may be visible in a locustfile, so the locustfile asks
`shape_class_for(config)` for the one the config names.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import ClassVar

from locust import LoadTestShape

from harness.engine.load.config import ArrivalRateShape, ConstantShape, CustomShape, LoadConfig
from harness.engine.load.shape_profiles import spawn_rate, users_at


class ProfileShape(LoadTestShape):
    """Follows harness.engine.load.shape_profiles.users_at for the config."""

    abstract = True
    config: ClassVar[LoadConfig]

    def tick(self) -> tuple[int, float] | None:
        users = users_at(self.config, self.get_run_time())
        return None if users is None else (users, spawn_rate(self.config))


def load_class(class_path: str) -> type:
    """ "pkg.module:Class" or "path/to/file.py:Class"."""
    module_ref, _, name = class_path.rpartition(":")
    if module_ref.endswith(".py"):
        spec = importlib.util.spec_from_file_location(Path(module_ref).stem, module_ref)
        if spec is None or spec.loader is None:
            raise ImportError(f"cannot load {module_ref}")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_ref)
    return getattr(module, name)


def _bounded(user_shape: type[LoadTestShape], config: LoadConfig) -> type[LoadTestShape]:
    """The user's shape, ended at the run's duration (Locust ignores --run-time with a shape)."""

    def tick(self: LoadTestShape):  # type: ignore[no-untyped-def]  # Locust's tick returns a tuple or None, left unannotated to match it
        if self.get_run_time() >= config.duration:
            return None
        return user_shape.tick(self)

    return type("AftershockShape", (user_shape,), {"tick": tick, "abstract": False})


def shape_class_for(config: LoadConfig) -> type[LoadTestShape] | None:
    shape = config.shape
    if isinstance(shape, (ConstantShape, ArrivalRateShape)):
        return None  # plain -u/-r/--run-time
    if isinstance(shape, CustomShape):
        cls = load_class(shape.class_path)
        if not (isinstance(cls, type) and issubclass(cls, LoadTestShape)):
            raise TypeError(f"{shape.class_path} is not a locust LoadTestShape subclass")
        return _bounded(cls, config)
    return type("AftershockShape", (ProfileShape,), {"config": config, "abstract": False})
