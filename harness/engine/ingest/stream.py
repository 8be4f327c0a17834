"""The event stream the harness produces into the target's ingestion endpoint (`ingest:`).

Beside the Locust load (which sends inference requests), the harness is the producer of a
pipeline: it makes events from the dataset's rows at `rate` per second, each with an
`event_id` (the idempotency key) and an `event_time` (when it was made), and posts them as
`{"rows": [...]}`. Active pipeline faults (harness.core.pipeline_fault) decide when each
event is delivered (twice, late) and what old events go out again (replays). Every window
it reads the store back and turns what it holds into the figures SLOs read
(harness.engine.ingest.tally). Bounded: it makes events only inside the run's span and at
most `max_events`; a delivery still held back when the span ends is not sent.
"""

from __future__ import annotations

import asyncio
import heapq
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness.core.errors import UserError
from harness.core.payload.payload_channel import ControlReader
from harness.core.pipeline_fault import ACTED_FILE, CONTROL_FILE, Event, StreamAction, ingest_dir
from harness.core.registry import FAULTS
from harness.engine.ingest.tally import StoreTally
from harness.engine.scenario.model import IngestSpec

MAX_ROWS_PER_POST = 500
MAX_READBACK_PAGES = 1000


@dataclass
class ActiveAction:
    name: str
    type: str
    action: StreamAction
    rng: np.random.Generator


@dataclass
class Deliveries:
    """What went out and how the target answered."""

    events_made: int = 0
    deliveries: int = 0
    requests: int = 0
    failed_requests: int = 0
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)  # by the target's reason
    held_at_end: int = 0


class IngestStream:
    def __init__(self, spec: IngestSpec, base_url: str, model: str, rows: list[dict[str, Any]], *,
                 run_dir: Path, run_id: str, seed: int, window: float, request_timeout: float,
                 journal: Callable[..., None], add_values: Callable[..., None]) -> None:
        if not rows:
            raise ValueError("the ingest stream needs a dataset with at least one row")
        self.spec = spec
        self.ingest_url = base_url.rstrip("/") + spec.path.replace("{model}", model)
        self.readback_url = base_url.rstrip("/") + spec.readback.replace("{model}", model)
        self.rows = rows
        self.order = np.random.default_rng(seed).permutation(len(rows))
        self.run_id = run_id
        self.folder = ingest_dir(run_dir)
        self.folder.mkdir(parents=True, exist_ok=True)  # pipeline faults inject into it
        self.control = ControlReader(self.folder / CONTROL_FILE)
        self.window = window
        self.request_timeout = request_timeout
        self.journal = journal
        self.add_values = add_values
        self.tally = StoreTally(window)
        self.sent = Deliveries()
        self.history: list[Event] = []
        self.actions: dict[str, ActiveAction] = {}  # every fault seen active, for its report
        self.active: list[ActiveAction] = []
        self.queue: list[tuple[float, int, Event]] = []  # (due, tie-break, event)
        self.first_error: str | None = None
        self.readbacks = 0  # pages read back
        self.last_readback_error: str | None = None
        self._ties = 0

    async def run(self, start: float, end: float) -> None:
        """Produce from `start` until `end`, then read the store back one last time."""
        self.journal("ingest.started", url=self.ingest_url, readback=self.readback_url, rate=self.spec.rate,
                     max_events=self.spec.max_events)
        tick = min(0.05, 1.0 / self.spec.rate)
        next_read = start + self.window
        try:
            async with httpx.AsyncClient(timeout=self.request_timeout) as client:
                while (now := time.time()) < end:
                    self._refresh_actions()
                    self._make_events(start, now)
                    for a in self.active:
                        for event in a.action.resends(now, self.history, a.rng):
                            self._push(now, event)
                    await self._deliver_due(client, now)
                    if now >= next_read:
                        await self._read_back(client)
                        next_read = now + self.window
                    await asyncio.sleep(max(0.0, min(tick, end - time.time())))
                self.sent.held_at_end = len(self.queue)
                await asyncio.sleep(self.spec.settle)  # what was accepted last becomes visible
                await self._read_back(client)
        finally:
            self._write_acted()
            self.journal("ingest.summary", **vars(self.sent), **self.tally.summary())
        self._check_it_reached_the_store()

    def _check_it_reached_the_store(self) -> None:
        """A stream the target never took, or a store never read, measured nothing: say why."""
        if self.sent.requests and self.sent.failed_requests == self.sent.requests:
            raise UserError(f"ingest: every one of the {self.sent.requests} POSTs to {self.ingest_url} failed "
                            f"(first: {self.first_error}): check ingest.path and that the target ingests "
                            '{"rows": [...]} (README, Pipeline faults)')
        if not self.readbacks:
            raise UserError(f"ingest: the store could not be read back at {self.readback_url} (last: {self.last_readback_error}): "
                            'check ingest.readback; it must answer GET ?after=N with {"rows": n, "stored": [[event_id, stored_at], ...]}')

    def _refresh_actions(self) -> None:
        if not self.control.poll():
            return
        for name, spec in self.control.faults.items():
            if name not in self.actions:
                cls = FAULTS.get(spec["type"])  # this one entry point: loading them all stalls the stream
                params = cls.Params.model_validate(spec["params"])
                self.actions[name] = ActiveAction(name, spec["type"], cls.action(params, spec["started"]),
                                                  np.random.default_rng(spec["seed"]))
        self.active = [a for name, a in self.actions.items() if name in self.control.faults]

    def _make_events(self, start: float, now: float) -> None:
        due = min(math.floor((now - start) * self.spec.rate) + 1, self.spec.max_events)
        while self.sent.events_made < due:
            seq = self.sent.events_made
            row = self.rows[int(self.order[seq % len(self.order)])]
            event = Event(seq, f"{self.run_id}-{seq}", now, row)
            self.sent.events_made += 1
            times = [now]
            for a in self.active:
                times = a.action.deliveries(event, times, a.rng)
            for t in times:
                self._push(t, event)
            self.history.append(event)
            self.tally.sent[event.event_id] = event.event_time

    def _push(self, due: float, event: Event) -> None:
        self._ties += 1
        heapq.heappush(self.queue, (due, self._ties, event))

    async def _deliver_due(self, client: httpx.AsyncClient, now: float) -> None:
        while self.queue and self.queue[0][0] <= now:
            batch: list[Event] = []
            while self.queue and self.queue[0][0] <= now and len(batch) < MAX_ROWS_PER_POST:
                batch.append(heapq.heappop(self.queue)[2])
            await self._post(client, batch)

    async def _post(self, client: httpx.AsyncClient, batch: list[Event]) -> None:
        body = {"rows": [{**e.row, "event_id": e.event_id, "event_time": e.event_time} for e in batch]}
        self.sent.requests += 1
        self.sent.deliveries += len(batch)
        try:
            response = await client.post(self.ingest_url, json=body)
            answer = response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            self._failed(f"POST {self.ingest_url}: {exc!r}")
            return
        if not isinstance(answer, dict):
            self._failed(f"POST {self.ingest_url}: HTTP {response.status_code} {response.text[:200]}")
            return
        self.sent.accepted += int(answer.get("accepted", 0) or 0)
        for error in answer.get("errors") or []:
            reason = str(error.get("reason", "other")) if isinstance(error, dict) else "other"
            self.sent.refused[reason] = self.sent.refused.get(reason, 0) + 1

    def _failed(self, error: str) -> None:
        self.first_error = self.first_error or error
        self.sent.failed_requests += 1
        if self.sent.failed_requests <= 5:  # the first few say why; the summary counts them all
            self.journal("ingest.request_failed", error=error)

    async def _read_back(self, client: httpx.AsyncClient) -> None:
        """Read the rows stored since the last read; their figures go into the windows."""
        for _ in range(MAX_READBACK_PAGES):
            try:
                response = await client.get(self.readback_url, params={"after": self.tally.rows_read})
                response.raise_for_status()
                page = response.json()
                stored = [(str(r[0]), float(r[1])) for r in page["stored"]]
                total = int(page["rows"])
            except (httpx.HTTPError, ValueError, KeyError, TypeError, IndexError) as exc:
                self.last_readback_error = repr(exc)
                self.journal("ingest.readback_failed", url=self.readback_url, error=repr(exc))
                return
            self.readbacks += 1
            for figures in self.tally.add_page(stored):
                self.add_values({"duplicate_effect": figures.duplicate_effect, "ingest_lag": figures.ingest_lag},
                                at=figures.at)
            if not stored or self.tally.rows_read >= total:
                return

    def _write_acted(self) -> None:
        acted = {a.name: {"type": a.type, **a.action.report()} for a in self.actions.values()}
        (self.folder / ACTED_FILE).write_text(json.dumps(acted), encoding="utf-8")


def dataset_rows(features: dict[str, np.ndarray], labels: np.ndarray | None, label_field: str) -> list[dict[str, Any]]:
    """The dataset as JSON rows: each input column by name (`features` a list for a 2-D one)
    and the label, as Python numbers."""
    n = len(next(iter(features.values()))) if features else 0
    columns = {name: values.tolist() for name, values in features.items()}
    label_values = None if labels is None else labels.tolist()
    rows = []
    for i in range(n):
        row = {name: values[i] for name, values in columns.items()}
        if label_values is not None:
            row[label_field] = label_values[i]
        rows.append(row)
    return rows
