"""The base of every data fault: a Fault that acts on the payload stream the load sends.

Harness side, `inject()` writes the fault's spec into the load's control file and
`revert()` removes it (faults.payload_channel). Child side, the Locust process builds
the fault's `PayloadTransform` from that spec and applies it to each batch before it
is encoded (faults.payload_stream). A `Schedule` says how much of the drifted data is
mixed in at each instant of the fault's window.
"""

from __future__ import annotations

import math
import zlib
from abc import abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from faults.columns import Column, get
from faults.payload_channel import control_path, put_fault, remove_fault
from harness.fault import Fault, FaultParams, UserError
from harness.units import Duration


def _schedule_shorthand(value: Any) -> Any:
    return {"kind": value} if isinstance(value, str) else value


ScheduleKind = Literal["sudden", "gradual", "incremental", "recurring"]


class Schedule(FaultParams):
    """How the drifted data is mixed in over the fault's window (times from its start).

    sudden       every row drifted from the start
    gradual      share of drifted rows = sigmoid(4 (t - position) / width), as river's
                 ConceptDriftStream mixes its two streams
    incremental  every row drifted, by a magnitude that grows linearly to full over `ramp`
    recurring    drifted for the first `duty` share of every `period`, then not
    """

    kind: ScheduleKind = "sudden"
    position: Duration = 5.0
    width: Duration = Field(2.0, gt=0)
    ramp: Duration = Field(10.0, gt=0)
    period: Duration = Field(10.0, gt=0)
    duty: float = Field(0.5, gt=0, le=1)

    def at(self, t: float) -> tuple[float, float]:
        """(share of rows drifted, magnitude 0..1) at `t` seconds into the fault."""
        if self.kind == "gradual":
            x = -4.0 * (t - self.position) / self.width
            return (0.0 if x > 700 else 1.0 / (1.0 + math.exp(x))), 1.0
        if self.kind == "incremental":
            return 1.0, min(max(t / self.ramp, 0.0), 1.0)
        if self.kind == "recurring":
            return (1.0 if (t % self.period) < self.duty * self.period else 0.0), 1.0
        return 1.0, 1.0


# the schema offers the shorthand too (`schedule: sudden`), as the validator accepts it
ScheduleField = Annotated[Schedule, BeforeValidator(_schedule_shorthand, json_schema_input_type=Schedule | ScheduleKind)]


class DataFaultParams(FaultParams):
    schedule: ScheduleField = Field(default_factory=Schedule)
    fraction: float = Field(1.0, ge=0, le=1)  # share of rows (or requests) the fault may touch


@dataclass
class Batch:
    """One payload batch as it is about to be encoded (copies: transforms edit in place)."""

    features: dict[str, np.ndarray]
    labels: np.ndarray | None


@dataclass
class ColumnStats:
    mean: float
    std: float
    low: float
    high: float
    sorted: np.ndarray  # the reference values, sorted (empirical CDF)

    def cdf(self, values: np.ndarray) -> np.ndarray:
        return np.searchsorted(self.sorted, values, side="right") / max(len(self.sorted), 1)


@dataclass
class Reference:
    """The dataset the load sends when no fault is active: what drift is measured against."""

    features: dict[str, np.ndarray]
    labels: np.ndarray | None
    _stats: dict[Column, ColumnStats] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def values(self, column: Column) -> np.ndarray:
        return get(self.features, column)

    def stats(self, column: Column) -> ColumnStats:
        if column not in self._stats:
            v = self.values(column).astype(np.float64)
            v = v[np.isfinite(v)]
            std = float(v.std()) if len(v) else 0.0
            self._stats[column] = ColumnStats(
                float(v.mean()) if len(v) else 0.0, std if std > 0 else 1.0,
                float(v.min()) if len(v) else 0.0, float(v.max()) if len(v) else 0.0, np.sort(v),
            )  # fmt: skip
        return self._stats[column]

    def rows(self, index: np.ndarray) -> Batch:
        return Batch({n: a[index].copy() for n, a in self.features.items()},
                     None if self.labels is None else self.labels[index].copy())  # fmt: skip


class PayloadTransform:
    """What a data fault does to the payloads (child side). Override one or both hooks."""

    def prepare(self, batch: Batch) -> None:
        """Check the fault fits the payloads (first batch); raise ValueError naming the problem."""

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        """Change the rows where `rows` is True, in place, at `magnitude` (0..1)."""

    def apply_body(self, body: Any, rng: np.random.Generator) -> Any:
        """Change the encoded request body (schema breaks); returns the body to send."""
        return body

    @property
    def touches_body(self) -> bool:
        return type(self).apply_body is not PayloadTransform.apply_body

    def measured(self, batch: Batch) -> list[str]:
        """What to measure on the sent payloads: column selectors, `label`, or `schema`."""
        return []

    def requested(self) -> dict[str, Any]:
        """The magnitude asked for, in the units the delivered measurement uses."""
        return {}

    def delivered(self) -> dict[str, Any]:
        """Figures only the transform itself can count (e.g. share of labels changed)."""
        return {}


def fault_seed(run_seed: int, name: str) -> int:
    """A stable per-fault seed: the run's seed and the fault's name."""
    return zlib.crc32(f"{run_seed}:{name}".encode())


class DataFault(Fault):
    """A fault on the payload stream. Subclasses set `type`, `Params` and `transform`."""

    Params: ClassVar[type[DataFaultParams]]

    @classmethod
    @abstractmethod
    def transform(cls, params: Any, reference: Reference) -> PayloadTransform:
        """Build the child-side transform from validated params."""

    def _control(self) -> Path:
        load_dir = getattr(self.ctx, "load_dir", None)
        if load_dir is None:
            raise UserError(
                f"{self.type} ({self.name}): data faults act on the payloads aftershock's own load "
                "sends; this run has no load folder (give the scenario a `load:` with `data:`)"
            )
        return control_path(load_dir)

    def undo_record(self) -> dict[str, Any]:
        load_dir = getattr(self.ctx, "load_dir", None)
        return {"control": str(control_path(load_dir)) if load_dir else None, "fault": self.name}

    def inject(self) -> None:
        import time

        spec = {
            "type": self.type,
            "params": self.params.model_dump(mode="json"),
            "seed": fault_seed(self.ctx.seed, self.name),
            "started": time.time(),
        }
        put_fault(self._control(), self.name, spec)
        self.ctx.journal("data_fault.active", fault=self.name, type=self.type)

    def revert(self) -> None:
        load_dir = getattr(self.ctx, "load_dir", None)
        if load_dir is not None:
            remove_fault(control_path(load_dir), self.name)

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        if not record.get("control"):
            return f"{cls.type} {record.get('fault')}: nothing to undo"
        removed = remove_fault(Path(record["control"]), str(record["fault"]))
        what = "removed from" if removed else "already gone from"
        return f"{cls.type} {record['fault']}: {what} {record['control']}"
