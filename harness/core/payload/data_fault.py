"""The base of every data fault: a Fault that acts on the payload stream the load sends.

Harness side, `inject()` writes the fault's spec into the load's control file and
`revert()` removes it (harness.core.payload.payload_channel). Child side, the Locust process builds
the fault's `PayloadTransform` from that spec and applies it to each batch before it
is encoded (harness.core.payload.payload_stream). A `Schedule` says how much of the drifted data is
mixed in at each instant of the fault's window.
"""

from __future__ import annotations

import ast
import math
import time
import zlib
from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import BeforeValidator, Field

from harness.core.fault import Fault, FaultParams, UserError
from harness.core.payload.columns import Column, get
from harness.core.payload.delivered import DELIVERED_FILE, read_delivered
from harness.core.payload.payload_channel import control_path, put_fault, remove_fault
from harness.core.units import Duration


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
    std: float  # 0 for a constant column: it has no scale, so σ-scaled changes leave it alone
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
            self._stats[column] = ColumnStats(
                float(v.mean()) if len(v) else 0.0, float(v.std()) if len(v) else 0.0,
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

    def apply_body(self, body: Any, features: dict[str, np.ndarray], encode: Encode,
                   rng: np.random.Generator) -> Any:
        """Change the request body (schema breaks): return `body` itself to leave it alone, or
        a new body (e.g. `encode(changed features)`, through the target's protocol adapter)."""
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


Encode = Callable[[dict[str, np.ndarray]], Any]  # the protocol adapter's encode: batch → JSON body


def fault_seed(run_seed: int, name: str) -> int:
    """A stable per-fault seed: the run's seed and the fault's name."""
    return zlib.crc32(f"{run_seed}:{name}".encode())


MIN_EXPECTED_CHANGES = 10


class DataFaultDidNotAct(UserError):
    """The fault was active while the load sent requests, yet it changed none of them."""


def opts_in(locustfile: str) -> bool:
    """True when the locustfile runs aftershock's ModelUser, the one user whose payloads pass
    through the data faults: it imports ModelUser (Locust then runs it) or derives a user
    class from it. Read, not imported: the harness never imports Locust."""
    tree = ast.parse(Path(locustfile).read_text(encoding="utf-8"), filename=locustfile)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "harness.engine.load.model_user" and any(
            a.name == "ModelUser" for a in node.names
        ):
            return True
        if isinstance(node, ast.ClassDef) and any(
            (isinstance(b, ast.Name) and b.id == "ModelUser") or (isinstance(b, ast.Attribute) and b.attr == "ModelUser")
            for b in node.bases
        ):
            return True
    return False


class DataFault(Fault):
    """A fault on the payload stream. Subclasses set `type`, `Params` and `transform`."""

    Params: ClassVar[type[DataFaultParams]]
    # requests whose bytes (or labels) the fault changed, over those sent while it was active
    metric_names: ClassVar[tuple[str, ...]] = ("changed_share",)

    needs_labels: ClassVar[bool] = False  # acts on the labels the load checks predictions against

    @classmethod
    def check_load(cls, labels: bool, locustfile: str | None) -> None:
        """Refuse, before the load starts, a data fault the load would not apply: `labels`,
        whether the load sends labels; `locustfile`, the user's own, if any."""
        if cls.needs_labels and not labels:
            raise UserError(f"{cls.type} changes the labels the load checks predictions against, and this "
                            "load sends none: set load.data.labels: true (and a dataset with labels)")
        if locustfile is None:
            return
        try:
            ok = opts_in(locustfile)
        except (OSError, SyntaxError, ValueError) as exc:
            raise UserError(f"{cls.type}: cannot read load.locustfile {locustfile} to check that it "
                            f"applies data faults: {exc}") from None
        if not ok:
            raise UserError(
                f"{cls.type} acts on the payloads of aftershock's ModelUser, and load.locustfile "
                f"{locustfile} does not run it, so the fault would change nothing: in the locustfile, "
                "`from harness.engine.load.model_user import ModelUser` or derive your user from it "
                "(README, 'Load'), or drop the data fault"
            )

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

    def metrics(self) -> dict[str, float]:
        """The share of requests it changed on the wire; raises when it could not act."""
        load_dir = getattr(self.ctx, "load_dir", None)
        if load_dir is None:
            return {}
        records = [r for r in read_delivered(Path(load_dir) / DELIVERED_FILE) if r.get("fault") == self.name]
        errors = [r["error"] for r in records if r.get("error")]
        if errors:
            raise DataFaultDidNotAct(f"{self.type} ({self.name}) could not act on the payloads: {errors[0]}")
        measured = [r for r in records if isinstance(r.get("changed_share"), (int, float))]
        if not measured:
            return {}  # no request went out while it was active: not measured
        wire = measured[0]
        # a working fault that picks `fraction` of what its schedule offers changes none of
        # 10 expected requests with odds e^-10: below that, 0 changed is reported, not failed
        expected = (wire.get("selected_requests") or 0) * self.params.fraction
        if not wire.get("changed_requests") and expected >= MIN_EXPECTED_CHANGES:
            raise DataFaultDidNotAct(
                f"{self.type} ({self.name}) was meant to change {wire['selected_requests']} of the "
                f"{wire.get('requests')} requests sent while it was active, and the bytes and labels "
                "sent are those that would have been sent without it: it cannot act on this target's "
                "payloads (protocol or columns)"
            )
        return {"changed_share": float(wire["changed_share"])}

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        if not record.get("control"):
            return f"{cls.type} {record.get('fault')}: nothing to undo"
        removed = remove_fault(Path(record["control"]), str(record["fault"]))
        what = "removed from" if removed else "already gone from"
        return f"{cls.type} {record['fault']}: {what} {record['control']}"
