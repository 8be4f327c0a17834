"""aftershock: chaos and resilience testing for ML systems.

The public API (harness/api.py): `load_scenario`, `run_scenario` -> `RunResult`, and the
plug-in registries. Imported on first use, so that importing a part of aftershock (a
fault in the Locust child, say) does not import the engine.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from harness.api import (
        ATTACKS,
        FAULTS,
        PROBES,
        PROTOCOLS,
        PluginError,
        Registry,
        RunResult,
        UserError,
        Verdict,
        load_scenario,
        run_scenario,
    )

__all__ = [
    "ATTACKS",
    "FAULTS",
    "PROBES",
    "PROTOCOLS",
    "PluginError",
    "Registry",
    "RunResult",
    "UserError",
    "Verdict",
    "load_scenario",
    "run_scenario",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        return getattr(importlib.import_module("harness.api"), name)
    raise AttributeError(f"module 'harness' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
