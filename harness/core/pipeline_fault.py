"""The base of every pipeline fault: a Fault that acts on the event stream the harness ingests.

A scenario's `ingest:` makes the harness a producer: it posts labelled events (each with an
event id and an event time) to the target's ingestion endpoint at a rate. Pipeline faults
change that stream the way real pipelines do: deliver an event twice, replay old events,
deliver events late. As for data faults (harness.core.payload), `inject()` adds the fault's
spec to a control file in the stream's folder (`<run>/ingest/ingest-faults.json`) and
`revert()` removes it; the stream builds each active fault's `StreamAction` from the spec
and applies it to every event. When the stream ends it writes what each fault did
(`acted.json`): a fault that was meant to act and did nothing fails the run.
"""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from harness.core.fault import Fault, FaultFailed, FaultParams
from harness.core.payload.data_fault import MIN_EXPECTED_CHANGES, fault_seed
from harness.core.payload.payload_channel import put_fault, remove_fault

INGEST_DIR = "ingest"  # the stream's folder in the run folder
CONTROL_FILE = "ingest-faults.json"
ACTED_FILE = "acted.json"


def ingest_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / INGEST_DIR


@dataclass(frozen=True)
class Event:
    """One event the harness produced: `row` is the dataset row it carries."""

    seq: int
    event_id: str
    event_time: float  # epoch seconds: when it happened (made), not when it is delivered
    row: dict[str, Any]


class StreamAction:
    """What a pipeline fault does to the stream while active (the stream's side).

    `offered` counts the events it could act on, `acted` what it did (events duplicated,
    delayed, or re-sent), `expected` how many acts its params ask for, on average."""

    def __init__(self) -> None:
        self.offered = 0
        self.acted = 0
        self.expected = 0.0

    def deliveries(self, event: Event, times: list[float], rng: np.random.Generator) -> list[float]:
        """The instants at which to deliver a new event (given: those so far, e.g. [now])."""
        return times

    def resends(self, now: float, history: Sequence[Event], rng: np.random.Generator) -> list[Event]:
        """Events already sent to deliver again now, in the order to send them."""
        return []

    def report(self) -> dict[str, float]:
        return {"offered": self.offered, "acted": self.acted, "expected": self.expected}


class PipelineFault(Fault):
    """A fault on the ingested event stream. Subclasses set `type`, `Params`, `metric_names`
    (one name: the count of its acts) and `action`."""

    Params: ClassVar[type[FaultParams]]

    @classmethod
    @abstractmethod
    def action(cls, params: Any, started: float) -> StreamAction:
        """Build the stream-side action from validated params; `started`: when it was injected."""

    def _folder(self) -> Path:
        if self.ctx.run_dir is None or not ingest_dir(self.ctx.run_dir).is_dir():
            raise FaultFailed(f"{self.type} {self.name}: no event stream is running to act on "
                              "(the scenario needs an `ingest:` section)")
        return ingest_dir(self.ctx.run_dir)

    def undo_record(self) -> dict[str, Any]:
        folder = None if self.ctx.run_dir is None else ingest_dir(self.ctx.run_dir)
        return {"control": None if folder is None else str(folder / CONTROL_FILE), "fault": self.name}

    def inject(self) -> None:
        spec = {"type": self.type, "params": self.params.model_dump(mode="json"),
                "seed": fault_seed(self.ctx.seed, self.name), "started": time.time()}
        put_fault(self._folder() / CONTROL_FILE, self.name, spec)
        self.ctx.journal("pipeline_fault.active", fault=self.name, type=self.type)

    def revert(self) -> None:
        if self.ctx.run_dir is not None:
            remove_fault(ingest_dir(self.ctx.run_dir) / CONTROL_FILE, self.name)

    def metrics(self) -> dict[str, float]:
        """How many events it duplicated, re-sent or delayed; FaultFailed when it should
        have acted on enough events to be sure, and did not."""
        if self.ctx.run_dir is None:
            return {}
        try:
            acted = json.loads((ingest_dir(self.ctx.run_dir) / ACTED_FILE).read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            return {}  # the stream never ended cleanly: not measured
        mine = acted.get(self.name) if isinstance(acted, dict) else None
        if not isinstance(mine, dict):
            return {}  # active while no event went out
        if not mine.get("acted") and mine.get("expected", 0) >= MIN_EXPECTED_CHANGES:
            raise FaultFailed(f"{self.type} {self.name}: was meant to act on about {mine['expected']:.0f} of the "
                              f"{mine.get('offered', 0)} events it saw, and acted on none")
        return {self.metric_names[0]: float(mine.get("acted", 0))}

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        if not record.get("control"):
            return f"{cls.type} {record.get('fault')}: nothing to undo"
        removed = remove_fault(Path(record["control"]), str(record["fault"]))
        return f"{cls.type} {record['fault']}: {'removed from' if removed else 'already gone from'} {record['control']}"
