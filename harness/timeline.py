"""Injects and reverts the scenario's faults at their offsets, and records what happened.

Each fault gets its own task: sleep until `at`, write the undo to the ledger, inject,
sleep `duration`, revert. The actual instants go into the RunTimeline (SLO scopes use
them, not the plan) and the skew against the plan is journaled. `revert_all()` is the
one path every exit takes.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from harness.fault import Fault, FaultContext
from harness.journal import Journal
from harness.ledger import Ledger
from harness.phases import RunTimeline, Span
from harness.scenario.model import FaultEntry


@dataclass
class ScheduledFault:
    entry: FaultEntry
    fault: Fault
    fault_id: str
    span: Span | None = None
    injected: bool = False
    reverted: bool = False
    inject_skew: float | None = None
    revert_skew: float | None = None
    error: str | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class FaultTimeline:
    def __init__(self, entries: list[tuple[FaultEntry, type[Fault], Any]], ctx: FaultContext, run_id: str,
                 journal: Journal, ledger: Ledger, timeline: RunTimeline) -> None:
        self.journal = journal
        self.ledger = ledger
        self.timeline = timeline
        self.faults = [
            ScheduledFault(entry, cls(entry.name, params, ctx), f"{run_id}:{entry.name}")
            for entry, cls, params in entries
        ]

    async def run(self, start: float) -> None:
        """Run every fault's schedule relative to `start` (Unix seconds)."""
        await asyncio.gather(*(self._one(f, start) for f in self.faults))

    async def _one(self, f: ScheduledFault, start: float) -> None:
        planned_in = start + f.entry.at
        await sleep_until(planned_in)
        await self._inject(f, planned_in)
        planned_out = planned_in + f.entry.duration
        await sleep_until(planned_out)
        await self._revert(f, planned_out)

    async def _inject(self, f: ScheduledFault, planned: float) -> None:
        async with f.lock:
            if f.reverted:
                return
            self.ledger.fault_planned(f.fault_id, f.fault.type, f.fault.undo_record())
            # the span opens before the call returns: the fault may act mid-call
            f.span = Span(f.entry.name, "fault", time.time(), fault_type=f.fault.type)
            self.timeline.faults.append(f.span)
            f.injected = True
            await asyncio.to_thread(f.fault.inject)
            f.inject_skew = f.span.start - planned
            self.journal.write("fault.injected", fault=f.entry.name, type=f.fault.type,
                               planned_at=planned, skew_s=round(f.inject_skew, 4),
                               params=f.fault.params.model_dump(mode="json"))

    async def _revert(self, f: ScheduledFault, planned: float | None) -> None:
        async with f.lock:
            if f.reverted or not f.injected:
                f.reverted = True
                return
            try:
                await asyncio.to_thread(f.fault.revert)
            finally:
                f.reverted = True
                now = time.time()
                if f.span is not None:
                    f.span.end = now
                f.revert_skew = None if planned is None else now - planned
                self.ledger.fault_done(f.fault_id)
                self.journal.write("fault.reverted", fault=f.entry.name, type=f.fault.type,
                                   skew_s=None if f.revert_skew is None else round(f.revert_skew, 4),
                                   early=planned is None)

    async def revert_all(self) -> list[str]:
        """Revert every injected fault now (early exits). Returns errors, keeps going past them."""
        errors = []
        for f in reversed(self.faults):
            try:
                await asyncio.shield(self._revert(f, None))
            except Exception as exc:  # a failed revert must not stop the others
                f.error = f"revert failed: {exc}"
                errors.append(f"{f.entry.name}: {exc}")
                self.journal.write("fault.revert_failed", fault=f.entry.name, error=str(exc))
        return errors

    def active(self) -> list[str]:
        return [f.entry.name for f in self.faults if f.injected and not f.reverted]


async def sleep_until(t: float) -> None:
    while True:
        left = t - time.time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.5))
