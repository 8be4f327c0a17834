"""A protocol adapter: Open Inference Protocol v2 under its own name."""

from __future__ import annotations

from harness.core.protocols.oip_v2 import OipV2Adapter


class ExtraOipAdapter(OipV2Adapter):
    name = "extra-oip"
