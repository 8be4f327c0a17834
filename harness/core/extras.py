"""Optional dependencies: import one where a feature needs it, or say which extra installs it.

A core install (`pip install aftershock`) validates every scenario and runs network and
process faults; torch, ART, scipy and hypothesis come with the `ml` extra, the Docker
and Kubernetes clients with `docker` and `k8s`.
"""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from harness.core.fault import UserError

# the extra that installs each optional dependency, by top-level module name
EXTRA_OF = {"torch": "ml", "art": "ml", "scipy": "ml", "hypothesis": "ml", "docker": "docker", "kubernetes": "k8s"}


class MissingExtra(UserError):
    """A feature's optional dependency is not installed."""


def import_extra(module: str, extra: str, feature: str) -> ModuleType:
    """`module`, imported; MissingExtra naming the extra to install if it is not there."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise MissingExtra(missing_extra_message(exc.name or module, extra, feature)) from None


def missing_extra_message(module: str, extra: str, feature: str) -> str:
    return f"{feature} needs {module} (not installed here): pip install 'aftershock[{extra}]'"


def require_extra(module: str, extra: str, feature: str) -> None:
    """MissingExtra unless `module` is installed (checked without importing it)."""
    if importlib.util.find_spec(module) is None:
        raise MissingExtra(missing_extra_message(module, extra, feature))
