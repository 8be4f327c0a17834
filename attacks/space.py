"""The attack space: the attacked input's mutable columns, scaled to [0, 1].

Tabular features live on very different scales (an amount in dollars next to a
0..1 risk score), so attacks and perturbation norms work in a space where every
mutable column spans [0, 1] between its bounds. Columns the attacker may not
change, and the other inputs of a row (e.g. `entity_id`), are copied from the
original row into every query. A column whose bounds are equal (a pixel that is 0 in
every image) has no range to move in: it is not mutable by default, and where it is
named mutable every point maps back to its one value, so no query leaves the bounds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.core.fault import UserError


@dataclass(frozen=True)
class FeatureSpace:
    input: str  # the dataset array the attack perturbs
    low: np.ndarray  # raw lower bound per column [d]
    high: np.ndarray  # raw upper bound per column [d]
    mutable: np.ndarray  # indices of the columns the attacker may change

    @classmethod
    def from_data(
        cls,
        input: str,
        x: np.ndarray,
        bounds: list[tuple[float, float]] | None = None,
        mutable: list[int] | None = None,
    ) -> FeatureSpace:
        """Bounds per column: given, or the data's own min and max. `mutable` None: every
        column whose bounds leave it room to move."""
        if x.ndim != 2:
            raise UserError(
                f"input {input!r} must be a 2-D array (rows, columns), got shape {x.shape}"
            )
        d = x.shape[1]
        if bounds is not None:
            if len(bounds) != d:
                raise UserError(f"bounds: give one [low, high] pair per column of {input!r} ({d})")
            low = np.array([b[0] for b in bounds], dtype=np.float64)
            high = np.array([b[1] for b in bounds], dtype=np.float64)
        else:
            low, high = x.min(axis=0).astype(np.float64), x.max(axis=0).astype(np.float64)
        if np.any(high < low):
            raise UserError("bounds: every column needs low <= high")
        if mutable is None:
            cols = np.flatnonzero(high > low)
            if len(cols) == 0:
                raise UserError(f"every column of {input!r} is constant (or has equal bounds): nothing to attack")
        else:
            cols = np.array(sorted(set(mutable)), dtype=np.int64)
        if len(cols) == 0 or cols.min() < 0 or cols.max() >= d:
            raise UserError(f"mutable: column indices must be 0..{d - 1}")
        return cls(input=input, low=low, high=high, mutable=cols)

    @property
    def width(self) -> int:
        return len(self.mutable)

    @property
    def span(self) -> np.ndarray:
        """Raw width of each mutable column (0 for a constant one: low + z * span stays put)."""
        return (self.high - self.low)[self.mutable]

    def encode(self, x: np.ndarray) -> np.ndarray:
        """Raw rows [n, d] → attack-space points [n, m] in [0, 1] (float32)."""
        span = self.span
        z = (x[:, self.mutable].astype(np.float64) - self.low[self.mutable]) / np.where(span > 0, span, 1.0)
        return np.clip(z, 0.0, 1.0).astype(np.float32)

    def decode(self, z: np.ndarray, base: np.ndarray) -> np.ndarray:
        """Attack-space points [n, m] on top of a raw row `base` [d] → raw rows [n, d]."""
        z = np.asarray(z, dtype=np.float64).reshape(len(z), -1)
        z = np.where(
            np.isfinite(z), z, self.encode(base.reshape(1, -1))
        )  # a broken step: keep the row
        z = np.clip(z, 0.0, 1.0)
        out = np.repeat(base.reshape(1, -1).astype(np.float64), len(z), axis=0)
        out[:, self.mutable] = self.low[self.mutable] + z * self.span
        return out

    def request(
        self, z: np.ndarray, row: dict[str, np.ndarray], dtype: np.dtype | None = None
    ) -> dict[str, np.ndarray]:
        """A request batch: attack-space points for one original `row` (arrays of 1 row)."""
        base = row[self.input][0]
        x = self.decode(z, base).astype(dtype or row[self.input].dtype)
        batch = {}
        for name, arr in row.items():
            batch[name] = x if name == self.input else np.repeat(arr, len(x), axis=0)
        return batch


def take_row(dataset: dict[str, np.ndarray], i: int) -> dict[str, np.ndarray]:
    """Row `i` of every dataset array, each as a 1-row array."""
    return {name: arr[i : i + 1] for name, arr in dataset.items()}


def take_rows(dataset: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: arr[rows] for name, arr in dataset.items()}
