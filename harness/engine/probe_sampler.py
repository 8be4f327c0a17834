"""Samples the scenario's probes on their schedules and puts the values into windows.

Modes (as in LitmusChaos): `start` once before the load, `end` once after it,
`continuous` every `interval`, `on_fault` every `interval` while a fault is active.
Samples are kept with their time and attached to the window they fall in, so SLOs
read them as `probe.<name>` (detection_time, thresholds) like any other SLI.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any

from harness.core.windows import Window
from harness.engine.phases import RunTimeline
from harness.engine.probes import Probe


class ProbeSampler:
    def __init__(self, probes: list[Probe], timeline: RunTimeline, journal: Callable[..., None]) -> None:
        self.probes = probes
        self.timeline = timeline
        self.journal = journal
        self.samples: dict[str, list[tuple[float, float]]] = {p.config.name: [] for p in probes}

    async def _sample(self, probe: Probe) -> None:
        value = await asyncio.to_thread(probe.sample)
        now = time.time()
        if value is None:
            self.journal("probe.failed", probe=probe.config.name, error=probe.last_error)
            return
        self.samples[probe.config.name].append((now, value))
        self.journal("probe.sample", probe=probe.config.name, value=value)

    def add_values(self, values: dict[str, float], at: float | None = None) -> None:
        """Figures measured by something other than a probe (a fault, an attack), as samples."""
        t = time.time() if at is None else at
        for name, value in values.items():
            self.samples.setdefault(name, []).append((t, float(value)))
            self.samples[name].sort(key=lambda s: s[0])

    async def sample_once(self, mode: str) -> None:
        await asyncio.gather(*(self._sample(p) for p in self.probes if p.config.mode == mode))

    async def run(self) -> None:
        """Sample continuous and on_fault probes until cancelled."""
        await asyncio.gather(*(self._loop(p) for p in self.probes if p.config.mode in ("continuous", "on_fault")))

    async def _loop(self, probe: Probe) -> None:
        while True:
            started = time.monotonic()
            if probe.config.mode == "continuous" or any(s.end is None for s in self.timeline.faults):
                await self._sample(probe)
            await asyncio.sleep(max(0.0, probe.config.interval - (time.monotonic() - started)))

    def attach(self, windows: dict[int, Window]) -> None:
        """Put each probe's latest sample per window into `Window.probes` (idempotent)."""
        if not windows:
            return
        first, last = min(windows), max(windows)
        size = windows[first].size
        for name, samples in self.samples.items():
            for t, value in samples:  # in time order: a later sample in a window wins
                idx = min(max(math.floor(t / size), first), last)
                while idx not in windows and idx > first:
                    idx -= 1
                windows[idx].probes[name] = value

    def close(self) -> None:
        for p in self.probes:
            try:
                p.close()
            except Exception:  # closing a probe's client must not break teardown
                pass


def build_probes(configs: list[dict[str, Any]], target: str, deps: dict[str, str],
                 allowed_hosts: list[str] | tuple[str, ...] = ()) -> list[Probe]:
    """The run's probes with placeholders filled; every address they contact passes the safety check."""
    from harness.core.safety import check_host_allowed
    from harness.engine.probes import build_probe
    from harness.engine.probes.placeholders import fill_probe_placeholders

    probes = [build_probe(fill_probe_placeholders(c, target=target, deps=deps)) for c in configs]
    for probe in probes:
        for address in probe.hosts():
            check_host_allowed(address, allowed_hosts, f"probe {probe.config.name}")
    return probes
