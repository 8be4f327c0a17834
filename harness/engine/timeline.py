"""Injects and reverts the scenario's faults at their offsets, and records what happened.

Each fault gets its own task: sleep until `at`, write the undo to the ledger, inject,
sleep `duration`, revert. The actual instants go into the RunTimeline (SLO scopes use
them, not the plan) and the skew against the plan is journaled. `revert_all()` is the
one path every exit takes.

A revert counts as done (in the ledger too) only once it returned: a revert that
raised stays open, is retried by `revert_all()` and, if it still fails, by `aftershock
cleanup`. An injection runs in a thread that a cancellation cannot stop, so its revert
waits for it to return first: otherwise the injection could act after its undo.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from harness.core.fault import Fault, FaultContext
from harness.engine.journal import Journal
from harness.engine.ledger import Ledger
from harness.engine.phases import RunTimeline, Span
from harness.engine.scenario.model import FaultEntry

REVERT_RETRIES = 2  # more attempts at a failed revert before the run gives up on it
REVERT_BACKOFF_S = 0.5  # times the attempt number: a flapping dependency gets a moment


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
    injecting: asyncio.Future[None] | None = None  # the inject() thread, awaited before any revert


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
        try:
            await self._revert(f, planned_out)
        except Exception as exc:  # still open in the ledger: teardown's revert_all retries it
            raise RevertFailed(f"fault {f.entry.name} ({f.fault.type}): revert failed: {exc}") from exc

    async def _inject(self, f: ScheduledFault, planned: float) -> None:
        async with f.lock:
            if f.reverted:
                return
            self.ledger.fault_planned(f.fault_id, f.fault.type, f.fault.undo_record())
            # the span opens before the call returns: the fault may act mid-call
            f.span = Span(f.entry.name, "fault", time.time(), fault_type=f.fault.type)
            self.timeline.faults.append(f.span)
            f.injected = True
            f.injecting = asyncio.ensure_future(asyncio.to_thread(f.fault.inject))
            await asyncio.shield(f.injecting)  # cancelled: the thread runs on; _revert waits
            f.inject_skew = f.span.start - planned
            bad = tuple(f.fault.bad_versions())
            f.span.bad_versions = bad
            self.journal.write("fault.injected", fault=f.entry.name, type=f.fault.type,
                               planned_at=planned, skew_s=round(f.inject_skew, 4),
                               params=f.fault.params.model_dump(mode="json"),
                               **({"bad_versions": list(bad)} if bad else {}))

    async def _revert(self, f: ScheduledFault, planned: float | None) -> None:
        """Revert `f` once; raises (and leaves it open in the ledger) if the revert failed."""
        async with f.lock:
            if f.reverted or not f.injected:
                f.reverted = True
                return
            if f.injecting is not None and not f.injecting.done():
                self.journal.write("fault.revert_waits", fault=f.entry.name, reason="inject() still running")
                await asyncio.wait({f.injecting})  # its outcome (error or not) is the run's to report
            try:
                await asyncio.to_thread(f.fault.revert)
            except Exception as exc:
                f.error = f"revert failed: {exc}"
                self.journal.write("fault.revert_failed", fault=f.entry.name, type=f.fault.type, error=str(exc))
                raise
            f.reverted = True
            f.error = None
            now = time.time()
            if f.span is not None:
                f.span.end = now
            f.revert_skew = None if planned is None else now - planned
            self.ledger.fault_done(f.fault_id)
            self.journal.write("fault.reverted", fault=f.entry.name, type=f.fault.type,
                               skew_s=None if f.revert_skew is None else round(f.revert_skew, 4),
                               early=planned is None)

    async def revert_all(self, retries: int = REVERT_RETRIES) -> list[str]:
        """Revert every injected fault now (every exit path), retrying failed reverts.

        Returns one line per fault that is still not reverted; keeps going past them."""
        pending = [f for f in reversed(self.faults) if f.injected and not f.reverted]
        for attempt in range(retries + 1):
            if attempt:
                await asyncio.sleep(REVERT_BACKOFF_S * attempt)
            failed = []
            for f in pending:
                try:
                    await asyncio.shield(self._revert(f, None))
                except Exception:  # noqa: BLE001 (journaled in _revert; a failed revert must not stop the others)
                    failed.append(f)
            pending = failed
            if not pending:
                break
        for f in self.faults:  # faults never injected are done too
            f.reverted = f.reverted or not f.injected
        return [f"fault {f.entry.name} ({f.fault.type}): {f.error}" for f in pending]

    def active(self) -> list[str]:
        return [f.entry.name for f in self.faults if f.injected and not f.reverted]


class RevertFailed(RuntimeError):
    """A fault's scheduled revert raised: the system may still be broken."""


async def sleep_until(t: float) -> None:
    while True:
        left = t - time.time()
        if left <= 0:
            return
        await asyncio.sleep(min(left, 0.5))
