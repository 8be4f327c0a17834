"""Protocol adapters by name: built-ins plus the `aftershock.protocols` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from harness.core.fault import UserError
from harness.core.protocols.base import Decoded, DecodeError, ProtocolAdapter, same_prediction
from harness.core.protocols.bentoml import BentoMLAdapter
from harness.core.protocols.http_json import HttpJsonAdapter
from harness.core.protocols.kserve_v1 import KServeV1Adapter
from harness.core.protocols.oip_v2 import OipV2Adapter
from harness.core.protocols.seldon_v1 import SeldonV1Adapter
from harness.core.protocols.torchserve import TorchServeAdapter

BUILTIN_ADAPTERS: tuple[type[ProtocolAdapter], ...] = (
    OipV2Adapter,
    KServeV1Adapter,
    TorchServeAdapter,
    BentoMLAdapter,
    SeldonV1Adapter,
    HttpJsonAdapter,
)

__all__ = [
    "DecodeError",
    "Decoded",
    "ProtocolAdapter",
    "adapter_types",
    "make_adapter",
    "same_prediction",
]


@cache
def adapter_types() -> dict[str, type[ProtocolAdapter]]:
    found: dict[str, type[ProtocolAdapter]] = {a.name: a for a in BUILTIN_ADAPTERS}
    for ep in entry_points(group="aftershock.protocols"):
        cls = ep.load()
        found[getattr(cls, "name", ep.name)] = cls
    return found


def make_adapter(name: str, **options: Any) -> ProtocolAdapter:
    """The adapter registered as `name`, built with its options; UserError if unknown."""
    types = adapter_types()
    if name not in types:
        raise UserError(f"unknown protocol {name!r}: use one of {', '.join(sorted(types))}")
    return types[name](**options)
