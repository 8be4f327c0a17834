"""Protocol adapters by name: built-in and third-party alike, from the `aftershock.protocols`
entry-point group (harness.core.registry)."""

from __future__ import annotations

from typing import Any

from harness.core.protocols.base import Decoded, DecodeError, ProtocolAdapter, same_prediction
from harness.core.registry import PROTOCOLS

__all__ = [
    "DecodeError",
    "Decoded",
    "ProtocolAdapter",
    "adapter_types",
    "make_adapter",
    "same_prediction",
]


def adapter_types() -> dict[str, type[ProtocolAdapter]]:
    return PROTOCOLS.types()


def make_adapter(name: str, **options: Any) -> ProtocolAdapter:
    """The adapter registered as `name`, built with its options; UserError if unknown."""
    return PROTOCOLS.get(name)(**options)
