"""Registries of fault types (and later attacks, probes, protocols) by name.

Built-in families are listed here by module; third parties add theirs through the
`aftershock.faults` entry-point group, so the core never changes for a new family.
"""

from __future__ import annotations

import importlib
import inspect
from functools import cache
from importlib.metadata import entry_points

from harness.core.fault import Fault

BUILTIN_FAULT_MODULES = [
    "faults.network",
    "faults.process",
    "faults.container",
    "faults.gpu",
    "faults.resource",
    "faults.kubernetes",
    "faults.drift",
    "faults.corruption",
    "faults.schema_break",
    "faults.image_corruption",
]


@cache
def fault_types() -> dict[str, type[Fault]]:
    found: dict[str, type[Fault]] = {}
    for mod_name in BUILTIN_FAULT_MODULES:
        mod = importlib.import_module(mod_name)
        for obj in vars(mod).values():
            if inspect.isclass(obj) and issubclass(obj, Fault) and not inspect.isabstract(obj):
                found[obj.type] = obj
    for ep in entry_points(group="aftershock.faults"):
        cls = ep.load()
        found[getattr(cls, "type", ep.name)] = cls
    return found
