"""Drift faults: the payloads move away from the reference data the model knows.

- `data.covariate_shift`: chosen features shift their mean (in reference standard
  deviations) and scale their spread around it.
- `data.prior_shift`: the class mix changes (rows resampled from the reference, by class).
- `data.concept_drift`: the features stay, the true labels change (classes remapped):
  the labels the load checks predictions against are the new ones.
- `data.feature_swap`: two features trade places (an upstream pipeline bug).

All follow the fault's `schedule:` (sudden, gradual, incremental, recurring).
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import AfterValidator, Field, field_validator

from harness.core.payload.columns import Column, check_selector, get, parse_column, put
from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    DataFaultParams,
    PayloadTransform,
    Reference,
)

Selector = Annotated[str, AfterValidator(check_selector)]


def pick(rows: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """`rows`, thinned to `fraction` of them at random."""
    if fraction >= 1.0:
        return rows
    return rows & (rng.random(len(rows)) < fraction)


# --- covariate shift -------------------------------------------------------------------


class CovariateShiftParams(DataFaultParams):
    columns: list[Selector] = Field(min_length=1)  # e.g. [amount] or ["features[0]"]
    shift: float = 1.0  # mean shift, in reference standard deviations
    scale: float = Field(1.0, gt=0)  # spread around the mean multiplied by this


class CovariateShiftTransform(PayloadTransform):
    def __init__(self, params: CovariateShiftParams, reference: Reference) -> None:
        self.p = params
        self.ref = reference
        self.columns = [parse_column(c) for c in params.columns]

    def prepare(self, batch: Batch) -> None:
        for c in self.columns:
            get(batch.features, c)

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        rows = pick(rows, self.p.fraction, rng)
        if not rows.any():
            return
        for c in self.columns:
            s = self.ref.stats(c)
            values = get(batch.features, c).astype(np.float64)
            scale = 1.0 + magnitude * (self.p.scale - 1.0)
            moved = s.mean + (values - s.mean) * scale + magnitude * self.p.shift * s.std
            put(batch.features, c, np.where(rows, moved, values))

    def measured(self, batch: Batch) -> list[str]:
        return list(self.p.columns)

    def requested(self) -> dict[str, Any]:
        return {"shift_std": self.p.shift * self.p.fraction, "scale": self.p.scale}


class CovariateShift(DataFault):
    type = "data.covariate_shift"
    Params = CovariateShiftParams

    @classmethod
    def transform(cls, params: CovariateShiftParams, reference: Reference) -> PayloadTransform:
        return CovariateShiftTransform(params, reference)


# --- prior (label) shift ---------------------------------------------------------------


class PriorShiftParams(DataFaultParams):
    proportions: dict[str, float]  # class label -> share of rows, e.g. {0: 0.9, 1: 0.1}

    @field_validator("proportions", mode="before")
    @classmethod
    def _keys(cls, v: Any) -> Any:
        return {str(k): x for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("proportions")
    @classmethod
    def _shares(cls, v: dict[str, float]) -> dict[str, float]:
        if not v or any(s < 0 for s in v.values()) or sum(v.values()) <= 0:
            raise ValueError("give each class a share >= 0, e.g. {0: 0.9, 1: 0.1}")
        total = sum(v.values())
        return {str(k): s / total for k, s in v.items()}


class PriorShiftTransform(PayloadTransform):
    def __init__(self, params: PriorShiftParams, reference: Reference) -> None:
        self.p = params
        self.ref = reference
        if reference.labels is None:
            raise ValueError("data.prior_shift needs labelled payloads (load.data.labels: true)")
        labels = np.array([str(x) for x in reference.labels.tolist()])
        self.classes = list(params.proportions)
        missing = [c for c in self.classes if not (labels == c).any()]
        if missing:
            raise ValueError(f"data.prior_shift: no reference row has label {missing[0]!r} "
                             f"(labels: {', '.join(sorted(set(labels.tolist()))[:10])})")
        self.by_class = [np.flatnonzero(labels == c) for c in self.classes]
        self.shares = np.array([params.proportions[c] for c in self.classes])

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        rows = pick(rows, self.p.fraction * magnitude, rng)
        where = np.flatnonzero(rows)
        if not len(where):
            return
        classes = rng.choice(len(self.classes), size=len(where), p=self.shares)
        picked = np.array([rng.choice(self.by_class[k]) for k in classes])
        drawn = self.ref.rows(picked)
        for name, array in batch.features.items():
            array[where] = drawn.features[name]
        assert batch.labels is not None and drawn.labels is not None
        batch.labels[where] = drawn.labels

    def measured(self, batch: Batch) -> list[str]:
        return ["label"]

    def requested(self) -> dict[str, Any]:
        return {"proportions": self.p.proportions, "fraction": self.p.fraction}


class PriorShift(DataFault):
    type = "data.prior_shift"
    Params = PriorShiftParams
    needs_labels = True

    @classmethod
    def transform(cls, params: PriorShiftParams, reference: Reference) -> PayloadTransform:
        return PriorShiftTransform(params, reference)


# --- concept drift ---------------------------------------------------------------------


class ConceptDriftParams(DataFaultParams):
    # old label -> new label; default: each class becomes the next one (binary: swapped)
    mapping: dict[str, str] | None = None

    @field_validator("mapping", mode="before")
    @classmethod
    def _text(cls, v: Any) -> Any:
        return {str(k): str(x) for k, x in v.items()} if isinstance(v, dict) else v


class ConceptDriftTransform(PayloadTransform):
    def __init__(self, params: ConceptDriftParams, reference: Reference) -> None:
        self.p = params
        if reference.labels is None:
            raise ValueError("data.concept_drift needs labelled payloads (load.data.labels: true)")
        self.dtype = reference.labels.dtype
        classes = sorted({str(x) for x in reference.labels.tolist()}, key=_label_order)
        self.mapping = params.mapping or {c: classes[(i + 1) % len(classes)] for i, c in enumerate(classes)}
        ref = np.array([str(x) for x in reference.labels.tolist()])
        self.changing_share = float(np.mean([self.mapping.get(x, x) != x for x in ref]))
        self.seen = 0
        self.changed = 0

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        assert batch.labels is not None
        rows = pick(rows, self.p.fraction * magnitude, rng)
        old = batch.labels.copy()
        for i in np.flatnonzero(rows):
            key = str(batch.labels[i].item() if hasattr(batch.labels[i], "item") else batch.labels[i])
            if key in self.mapping:
                batch.labels[i] = np.asarray(self.mapping[key]).astype(self.dtype)
        self.seen += len(old)
        self.changed += int((old != batch.labels).sum())

    def measured(self, batch: Batch) -> list[str]:
        return ["label"]

    def requested(self) -> dict[str, Any]:
        return {"relabelled_share": self.changing_share * self.p.fraction, "mapping": self.mapping}

    def delivered(self) -> dict[str, Any]:
        return {"relabelled_share": self.changed / self.seen if self.seen else None}


def _label_order(text: str) -> tuple[int, float | str]:
    try:
        return (0, float(text))
    except ValueError:
        return (1, text)


class ConceptDrift(DataFault):
    type = "data.concept_drift"
    Params = ConceptDriftParams
    needs_labels = True

    @classmethod
    def transform(cls, params: ConceptDriftParams, reference: Reference) -> PayloadTransform:
        return ConceptDriftTransform(params, reference)


# --- feature swap ----------------------------------------------------------------------


class SwapParams(DataFaultParams):
    columns: list[Selector] = Field(min_length=2, max_length=2)  # the two features that trade places


class SwapTransform(PayloadTransform):
    """Columns `a` and `b` trade values in `fraction` of the rows."""

    def __init__(self, a: Column, b: Column, fraction: float) -> None:
        self.a, self.b, self.fraction = a, b, fraction

    def prepare(self, batch: Batch) -> None:
        get(batch.features, self.a), get(batch.features, self.b)

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        rows = pick(rows, self.fraction * magnitude, rng)
        a = get(batch.features, self.a).astype(np.float64)
        b = get(batch.features, self.b).astype(np.float64)
        put(batch.features, self.a, np.where(rows, b, a))
        put(batch.features, self.b, np.where(rows, a, b))

    def measured(self, batch: Batch) -> list[str]:
        return [str(self.a), str(self.b)]

    def requested(self) -> dict[str, Any]:
        return {"swapped": self.measured(Batch({}, None)), "fraction": self.fraction}


class FeatureSwap(DataFault):
    type = "data.feature_swap"
    Params = SwapParams

    @classmethod
    def transform(cls, params: SwapParams, reference: Reference) -> PayloadTransform:
        a, b = (parse_column(c) for c in params.columns)
        return SwapTransform(a, b, params.fraction)
