"""A data fault: adds `step` to column 0 of every row it picks (it acts in the Locust child)."""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    DataFaultParams,
    PayloadTransform,
    Reference,
)


class BumpParams(DataFaultParams):
    step: float = 1.0


class BumpTransform(PayloadTransform):
    def __init__(self, params: BumpParams) -> None:
        self.p = params

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        first = next(iter(batch.features))
        batch.features[first][rows, 0] += self.p.step

    def requested(self) -> dict[str, Any]:
        return {"step": self.p.step}


class BumpFault(DataFault):
    type = "extra.bump"
    Params = BumpParams

    @classmethod
    def transform(cls, params: BumpParams, reference: Reference) -> PayloadTransform:
        return BumpTransform(params)
