"""Runs the scenario's attacks at their offsets, beside the load, and keeps their figures.

Each attack runs in a worker thread with a deadline at the end of its window; its
metrics (robust_accuracy, attack_success_rate, ...) become values SLOs read by name,
scoped to the attack's span (`robust_accuracy >= 0.7 during hsj`). Attacks send their
own traffic and leave nothing to revert.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any

from harness.engine.journal import Journal
from harness.engine.phases import RunTimeline, Span
from harness.engine.probe_sampler import ProbeSampler
from harness.engine.scenario.model import FaultEntry
from harness.engine.timeline import sleep_until

# an attack step (one ART iteration, a retrain poll) may overrun its deadline a little
OVERRUN_GRACE_S = 15.0


@dataclass
class ScheduledAttack:
    entry: FaultEntry
    attack: Any  # harness.core.attack.Attack
    span: Span | None = None
    metrics: dict[str, float] | None = None
    error: str | None = None


class AttackTimeline:
    def __init__(self, entries: list[tuple[FaultEntry, Any]], context: Any, journal: Journal,
                 timeline: RunTimeline, sampler: ProbeSampler, request_timeout: float) -> None:
        self.attacks = [ScheduledAttack(entry, attack) for entry, attack in entries]
        self.context = context  # harness.core.attack.AttackContext
        self.journal = journal
        self.timeline = timeline
        self.sampler = sampler
        self.request_timeout = request_timeout

    async def prepare(self) -> None:
        """Each attack's one-time set-up (Attack.prepare), before the run's clock starts."""
        for a in self.attacks:
            await asyncio.to_thread(a.attack.prepare, self.context)

    async def run(self, start: float) -> None:
        await asyncio.gather(*(self._one(a, start) for a in self.attacks))

    def _add_figures(self, a: ScheduledAttack, metrics: dict[str, float]) -> None:
        """The attack's figures, as measured inside its span (so `... during <attack>` reads
        them). Figures are held forward window to window, so every attack figure is first
        marked NaN ("not measured") at the span's start: an earlier attack's value is never
        held over into this attack's windows, and what this one did not report stays unset."""
        from harness.core.attack_metrics import ATTACK_METRIC_NAMES

        assert a.span is not None and a.span.end is not None
        self.sampler.add_values(dict.fromkeys(ATTACK_METRIC_NAMES, math.nan), at=a.span.start)
        if metrics:
            self.sampler.add_values(metrics, at=(a.span.start + a.span.end) / 2)

    async def _one(self, a: ScheduledAttack, start: float) -> None:
        await sleep_until(start + a.entry.at)
        a.span = Span(a.entry.name, "attack", time.time(), fault_type=a.attack.type)
        self.timeline.attacks.append(a.span)
        self.journal.write("attack.started", attack=a.entry.name, type=a.attack.type,
                           params=a.attack.params.model_dump(mode="json"))
        deadline = time.monotonic() + a.entry.duration
        limit = a.entry.duration + self.request_timeout + OVERRUN_GRACE_S
        try:
            result = await asyncio.wait_for(asyncio.to_thread(a.attack.run, self.context, deadline), limit)
        except Exception as exc:  # noqa: BLE001 - an attack that breaks is reported, it does not end the run
            a.span.end = time.time()
            a.error = f"{type(exc).__name__}: {exc}"
            self.journal.write("attack.error", attack=a.entry.name, type=a.attack.type, error=a.error,
                               start=a.span.start, end=a.span.end)
            self._add_figures(a, {})
            return
        a.span.end = time.time()
        a.metrics = dict(result.metrics)
        self._add_figures(a, a.metrics)
        self.journal.write("attack.result", attack=a.entry.name, type=a.attack.type, start=a.span.start,
                           end=a.span.end, metrics=a.metrics, details=result.details)
