"""noop: passes data through unchanged (useful to test toxic churn)."""

from __future__ import annotations

from faults.proxy.toxics.base import Toxic


class NoopToxic(Toxic):
    type = "noop"
