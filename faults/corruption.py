"""Tabular corruption faults: the data-quality errors real pipelines make.

Each picks cells at random — `fraction` of the rows, per column — among the `columns`
it names (default: every floating-point column), while its schedule is on:

- `data.missing`: values go missing (NaN, 0, the mean or a number you give); rows are
  picked MCAR (at random), MAR (more often where another column is high) or MNAR
  (more often where the value itself is high), as in Jenga / Schelter et al.
- `data.nan`: NaN or ±Inf.
- `data.out_of_range`: values beyond anything the reference holds.
- `data.unit_scale`: values multiplied (×10 / ×100 / ×1000: metres sent as millimetres).
- `data.noise`: gaussian noise, in reference standard deviations.
- `data.swap_columns`: two columns' values swapped in some rows (a data-entry error).
- `data.category_typo`: typos in text (categorical) columns.

`SEVERITIES` gives each one five levels, for `aftershock drift-test`.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import AfterValidator, Field

from faults.drift import SwapTransform, pick
from harness.core.payload.columns import (
    Column,
    check_selector,
    get,
    numeric_columns,
    parse_column,
    put,
    resolve,
)
from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    DataFaultParams,
    PayloadTransform,
    Reference,
)

Selector = Annotated[str, AfterValidator(check_selector)]


class CorruptionParams(DataFaultParams):
    columns: list[Selector] | None = None  # default: every floating-point column
    fraction: float = Field(0.2, ge=0, le=1)  # share of rows corrupted, per column


class CellTransform(PayloadTransform):
    """Corrupts the picked cells of each column with `corrupt(values, column, rng)`."""

    def __init__(self, params: CorruptionParams, reference: Reference) -> None:
        self.p = params
        self.ref = reference
        self.columns: list[Column] = []

    def prepare(self, batch: Batch) -> None:
        self.columns = resolve(self.p.columns, batch.features)
        if not self.columns:
            raise ValueError(f"no floating-point column in the payload ({', '.join(batch.features)}); name `columns:`")

    def cells(self, rows: np.ndarray, column: Column, batch: Batch, rng: np.random.Generator) -> np.ndarray:
        return pick(rows, self.p.fraction, rng)

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        for c in self.columns:
            cells = self.cells(rows, c, batch, rng)
            if cells.any():
                values = get(batch.features, c).astype(np.float64)
                values[cells] = self.corrupt(values[cells], c, magnitude, rng)
                put(batch.features, c, values)

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def measured(self, batch: Batch) -> list[str]:
        return [str(c) for c in (self.columns or resolve(self.p.columns, batch.features))]

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction}


class Corruption:
    """Mixin of the tabular corruption faults: `SEVERITIES[s - 1]` are the params of severity s (1..5)."""

    type: ClassVar[str]
    Params: ClassVar[type[CorruptionParams]] = CorruptionParams
    Transform: ClassVar[type[CellTransform]]
    SEVERITIES: ClassVar[list[dict[str, Any]]] = []

    @classmethod
    def transform(cls, params: Any, reference: Reference) -> PayloadTransform:
        return cls.Transform(params, reference)


# --- missing values --------------------------------------------------------------------


class MissingParams(CorruptionParams):
    mechanism: Literal["MCAR", "MAR", "MNAR"] = "MCAR"
    depends_on: Selector | None = None  # MAR: the column whose value drives missingness
    fill: Literal["nan", "zero", "mean"] | float = "nan"  # what a missing value is sent as


class MissingTransform(CellTransform):
    p: MissingParams

    def cells(self, rows: np.ndarray, column: Column, batch: Batch, rng: np.random.Generator) -> np.ndarray:
        if self.p.mechanism == "MCAR":
            return pick(rows, self.p.fraction, rng)
        driver = column
        if self.p.mechanism == "MAR":
            others = [c for c in numeric_columns(batch.features) if c != column]
            driver = parse_column(self.p.depends_on) if self.p.depends_on else (others[0] if others else column)
        # P(missing) = 2 * fraction * CDF(driver value): high values go missing more often, mean = fraction
        rank = self.ref.stats(driver).cdf(get(batch.features, driver).astype(np.float64))
        return rows & (rng.random(len(rows)) < np.clip(2 * self.p.fraction * rank, 0, 1))

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        fill = self.p.fill
        value = {"nan": np.nan, "zero": 0.0, "mean": self.ref.stats(column).mean}.get(fill, fill)  # type: ignore[arg-type]  # fill is one of the keys or a number (validated by Params)
        return np.full(len(values), float(value))

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction, "mechanism": self.p.mechanism, "fill": self.p.fill}


class Missing(Corruption, DataFault):
    type = "data.missing"
    Params = MissingParams
    Transform = MissingTransform
    SEVERITIES = [{"fraction": f, "fill": "zero"} for f in (0.05, 0.1, 0.2, 0.3, 0.5)]


# --- NaN / Inf -------------------------------------------------------------------------


class NanParams(CorruptionParams):
    value: Literal["nan", "inf", "-inf", "mixed"] = "nan"


class NanTransform(CellTransform):
    p: NanParams

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        if self.p.value == "mixed":
            return rng.choice(np.array([np.nan, np.inf, -np.inf]), size=len(values))
        return np.full(len(values), float(self.p.value))

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction, "value": self.p.value}


class NanValues(Corruption, DataFault):
    type = "data.nan"
    Params = NanParams
    Transform = NanTransform
    SEVERITIES = [{"fraction": f} for f in (0.01, 0.02, 0.05, 0.1, 0.2)]


# --- out of range ----------------------------------------------------------------------


class OutOfRangeParams(CorruptionParams):
    side: Literal["high", "low", "both"] = "high"
    factor: float = Field(1.0, gt=0)  # how far beyond the reference range, in range widths


class OutOfRangeTransform(CellTransform):
    p: OutOfRangeParams

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        s = self.ref.stats(column)
        width = max(s.high - s.low, s.std)
        beyond = width * self.p.factor * (1.0 + rng.random(len(values)))
        high = {"high": np.ones(len(values), bool), "low": np.zeros(len(values), bool)}.get(
            self.p.side, rng.random(len(values)) < 0.5
        )
        return np.where(high, s.high + beyond, s.low - beyond)

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction, "side": self.p.side, "factor": self.p.factor}


class OutOfRange(Corruption, DataFault):
    type = "data.out_of_range"
    Params = OutOfRangeParams
    Transform = OutOfRangeTransform
    SEVERITIES = [{"fraction": f} for f in (0.01, 0.02, 0.05, 0.1, 0.2)]


# --- unit scale ------------------------------------------------------------------------


class UnitScaleParams(CorruptionParams):
    factor: float = Field(1000.0, gt=0)  # e.g. 10, 100, 1000 (or 0.001 the other way)


class UnitScaleTransform(CellTransform):
    p: UnitScaleParams

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        return values * (1.0 + magnitude * (self.p.factor - 1.0))

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction, "factor": self.p.factor}


class UnitScale(Corruption, DataFault):
    type = "data.unit_scale"
    Params = UnitScaleParams
    Transform = UnitScaleTransform
    SEVERITIES = [{"fraction": f, "factor": 100.0} for f in (0.05, 0.1, 0.2, 0.35, 0.5)]


# --- gaussian noise --------------------------------------------------------------------


class NoiseParams(CorruptionParams):
    std: float = Field(0.5, gt=0)  # in reference standard deviations
    fraction: float = Field(1.0, ge=0, le=1)


class NoiseTransform(CellTransform):
    p: NoiseParams

    def corrupt(self, values: np.ndarray, column: Column, magnitude: float, rng: np.random.Generator) -> np.ndarray:
        return values + rng.normal(0.0, magnitude * self.p.std * self.ref.stats(column).std, len(values))

    def requested(self) -> dict[str, Any]:
        return {"fraction": self.p.fraction, "noise_std": self.p.std}


class Noise(Corruption, DataFault):
    type = "data.noise"
    Params = NoiseParams
    Transform = NoiseTransform
    SEVERITIES = [{"std": s} for s in (0.1, 0.25, 0.5, 1.0, 2.0)]


# --- swapped columns -------------------------------------------------------------------


class SwapColumnsParams(CorruptionParams):
    columns: list[Selector] | None = Field(None, min_length=2, max_length=2)  # default: the first two


class SwapColumnsTransform(CellTransform):
    p: SwapColumnsParams

    def prepare(self, batch: Batch) -> None:
        super().prepare(batch)
        if len(self.columns) < 2:
            raise ValueError("data.swap_columns needs two columns")
        self.columns = self.columns[:2]
        self.swap = SwapTransform(self.columns[0], self.columns[1], self.p.fraction)

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        self.swap.apply(batch, rows, magnitude, rng)


class SwapColumns(Corruption, DataFault):
    type = "data.swap_columns"
    Params = SwapColumnsParams
    Transform = SwapColumnsTransform
    SEVERITIES = [{"fraction": f} for f in (0.05, 0.1, 0.2, 0.35, 0.5)]


# --- category typos --------------------------------------------------------------------

_LETTERS = np.array(list("abcdefghijklmnopqrstuvwxyz"))


def typo(text: str, rng: np.random.Generator) -> str:
    """One keyboard slip: two letters swapped, one dropped, doubled or replaced."""
    if not text:
        return str(rng.choice(_LETTERS))
    i = int(rng.integers(len(text)))
    kind = int(rng.integers(4)) if len(text) > 1 else 2 + int(rng.integers(2))
    if kind == 0:
        j = min(i + 1, len(text) - 1) if i < len(text) - 1 else i - 1
        a, b = sorted((i, j))
        return text[:a] + text[b] + text[a] + text[b + 1 :]
    if kind == 1:
        return text[:i] + text[i + 1 :]
    if kind == 2:
        return text[: i + 1] + text[i] + text[i + 1 :]
    return text[:i] + str(rng.choice(_LETTERS[_LETTERS != text[i].lower()])) + text[i + 1 :]


class TypoParams(CorruptionParams):
    columns: list[Selector] = Field(min_length=1)  # text columns


class TypoTransform(CellTransform):
    seen = 0
    typos = 0

    def prepare(self, batch: Batch) -> None:
        self.columns = [parse_column(c) for c in self.p.columns or []]
        for c in self.columns:
            if get(batch.features, c).dtype.kind not in "USO":
                raise ValueError(f"data.category_typo: column {c} is not text")

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        for c in self.columns:
            cells = np.flatnonzero(pick(rows, self.p.fraction * magnitude, rng))
            self.seen += len(rows)
            self.typos += len(cells)
            if len(cells):
                values = get(batch.features, c).astype(object)
                for i in cells:
                    values[i] = typo(str(values[i]), rng)
                batch.features[c.name] = _as_text(batch.features[c.name], c, values)


    def delivered(self) -> dict[str, Any]:
        return {"typo_share": self.typos / self.seen if self.seen else None}


def _as_text(array: np.ndarray, c: Column, values: np.ndarray) -> np.ndarray:
    out = array.astype(object)
    if c.index is None:
        out[:] = values
    else:
        out[:, c.index] = values
    return out.astype(str)


class CategoryTypo(Corruption, DataFault):
    type = "data.category_typo"
    Params = TypoParams
    Transform = TypoTransform
    SEVERITIES = [{"fraction": f} for f in (0.05, 0.1, 0.2, 0.35, 0.5)]


TABULAR_CORRUPTIONS: dict[str, type[Any]] = {
    c.type: c for c in (Missing, NanValues, OutOfRange, UnitScale, Noise, SwapColumns, CategoryTypo)
}
