"""The live state of a run, folded from its journal events: what every exporter shows.

Exporters subscribe to the journal (`Journal.subscribe`) rather than to the runner, so
they see exactly what the report later reads. Window records are partial and additive
(see `harness.engine.record.events`): a window is *settled* — shown — once records for a window
two later arrive, so a request still in flight at its end has had a window's time to
land; the run's end settles every window.

Judging every SLO over the windows so far costs milliseconds per window and SLO, too much
for the journal's writer (the runner's event loop) to wait on. So a thread judges
settled windows — never changed in place once settled: a late record replaces the window
with a merged copy — at most ~10 % of its time, and at least a second apart.
"""

from __future__ import annotations

import copy
import math
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import window_summary
from harness.core.windows import Window

SETTLE_WINDOWS = 2
JUDGE_EVERY_S = 1.0  # at the most often
JUDGE_DUTY = 0.1  # the share of time live judging may take
PHASES = ("starting", "baseline", "fault", "attack", "between faults", "recovery", "load", "teardown", "ended")


@dataclass
class SloState:
    """One SLO as judged so far (live) or at the end (`final`). None: not measured."""

    name: str
    scope: str = "run"
    value: float | None = None
    threshold: float | None = None
    passed: bool | None = None
    unit: str = ""
    final: bool = False


@dataclass
class ActiveSpan:
    """A fault or an attack that is acting now."""

    name: str
    kind: str  # fault | attack
    type: str
    start: float
    params: dict[str, Any] = field(default_factory=dict)


class RunState:
    """Journal listener: call it with every event; read the fields from any thread under `lock`."""

    def __init__(self, scenario: Any, slos: list[Any]) -> None:
        """`scenario`: the (scaled) `harness.engine.scenario.Scenario` being run; `slos`: its parsed SLOs."""
        self.scenario = scenario
        self.name: str = scenario.name
        self._parsed = list(zip(scenario.slos, slos))
        self.lock = threading.Lock()
        self.windows: dict[int, Window] = {}
        self.requests = 0
        self.failures: dict[str, int] = {}
        self.settled: Window | None = None  # the newest settled window
        self._frozen: set[int] = set()  # settled windows: replaced, never merged into
        self._judged = threading.Event()  # set when there is something new to judge
        self._stop = threading.Event()
        self._judge_thread: threading.Thread | None = None
        self.settled_slis: dict[str, float | None] = {}
        self.timeline: RunTimeline | None = None  # from the `phase` event on
        self.load_end: float | None = None
        self.active: dict[tuple[str, str], ActiveSpan] = {}
        self.slos = {s.name: SloState(s.name) for s in scenario.slos}
        self.status: str | None = None  # the run's final status (run.ended)
        self.exit_code: int | None = None
        self.ended = False

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        with self.lock:
            if kind == "window" and isinstance(event.get("record"), dict):
                self._window(Window.from_record(event["record"]))
            elif kind == "phase" and event.get("phase") == "load":
                start = float(event["start"])
                self.timeline = RunTimeline(run=Span("run", "run", start))
                self.load_end = start + float(event.get("duration") or 0)
                if event.get("baseline"):
                    self.timeline.baseline = Span("baseline", "baseline", start, start + float(event["baseline"]))
                self._drop_warmup(start)
            elif kind == "fault.injected":
                start = float(event.get("planned_at", event["t"])) + float(event.get("skew_s") or 0)
                self._open(ActiveSpan(event["fault"], "fault", event.get("type", ""), start, event.get("params") or {}))
            elif kind == "fault.reverted":
                self._close("fault", event["fault"], float(event["t"]))
            elif kind == "attack.started":
                self._open(ActiveSpan(event["attack"], "attack", event.get("type", ""), float(event["t"]),
                                      event.get("params") or {}))
            elif kind in ("attack.result", "attack.error"):
                self._close("attack", event["attack"], float(event.get("end") or event["t"]))
            elif kind == "slo.verdict" and event.get("name") in self.slos:
                self.slos[event["name"]] = SloState(
                    event["name"], event.get("scope") or "run", _number(event.get("measured")),
                    _number(event.get("threshold")), event.get("passed"), event.get("unit") or "", final=True)
            elif kind == "run.ended":
                self.status, self.exit_code, self.ended = event.get("status"), event.get("exit_code"), True
                self._settle(everything=True)

    # --- what the exporters read -------------------------------------------------

    def phase(self, now: float | None = None) -> str:
        """The run's phase now, named as the terminal view names it."""
        now = time.time() if now is None else now
        if self.ended:
            return "ended"
        tl = self.timeline
        if tl is None:
            return "starting"
        if self.load_end is not None and now >= self.load_end:
            return "teardown"
        kinds = {a.kind for a in self.active.values()}
        if kinds:  # a fault outranks an attack: it is what the SLO scopes "fault" select
            return "fault" if "fault" in kinds else "attack"
        if tl.baseline is not None and tl.baseline.contains(now):
            return "baseline"
        planned = self.scenario.timeline.faults
        if any(now < tl.run.start + f.at for f in planned):
            return "between faults"
        return "recovery" if planned else "load"

    def active_spans(self) -> list[ActiveSpan]:
        return list(self.active.values())

    # --- folding ---------------------------------------------------------------------

    def _window(self, record: Window) -> None:
        if self.timeline is not None and record.start < self.timeline.run.start:
            return  # warm-up: sent, never measured (as the runner does)
        self.requests += record.requests
        for kind, n in record.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + n
        if record.index in self._frozen:  # a late record: the judge thread may be reading the old one
            merged = Window.from_record(self.windows[record.index].to_record())
            merged.merge(record)
            self.windows[record.index] = merged
            if self.settled is not None and self.settled.index == record.index:
                self.settled, self.settled_slis = merged, window_summary(merged)
        elif record.index in self.windows:
            self.windows[record.index].merge(record)
        else:
            self.windows[record.index] = record
        self._settle()

    def _drop_warmup(self, run_start: float) -> None:
        """Forget the windows before the run's clock started: the runner does not measure them."""
        for i in [i for i, w in self.windows.items() if w.start < run_start]:
            w = self.windows.pop(i)
            self.requests -= w.requests
            for kind, n in w.failures.items():
                self.failures[kind] -= n
        self.failures = {k: n for k, n in self.failures.items() if n}
        self.settled, self.settled_slis = None, {}
        self._frozen.clear()

    def _settle(self, everything: bool = False) -> None:
        """Show the newest settled window; the judge thread takes the SLOs from there."""
        if not self.windows:
            return
        newest = max(self.windows)
        end = self.load_end if self.load_end is not None else math.inf  # later windows: teardown, not measured
        ready = [i for i, w in self.windows.items()
                 if (everything or i <= newest - SETTLE_WINDOWS) and (w.start + w.end) / 2 < end]
        if not ready or (self.settled is not None and max(ready) == self.settled.index and not everything):
            return
        self._frozen.update(ready)
        self.settled = self.windows[max(ready)]
        self.settled_slis = window_summary(self.settled)
        self._judged.set()

    # --- live SLO judging ----------------------------------------------------------

    def start_judging(self) -> None:
        """Judge the SLOs live in a thread of their own until `close()` or the run's verdicts."""
        self._judge_thread = threading.Thread(target=self._judge_loop, name="aftershock-live-slos", daemon=True)
        self._judge_thread.start()

    def close(self) -> None:
        self._stop.set()
        self._judged.set()
        if self._judge_thread is not None:
            self._judge_thread.join(timeout=30)

    def _judge_loop(self) -> None:
        while not self._stop.is_set():
            self._judged.wait()
            self._judged.clear()
            if self._stop.is_set() or self.ended:
                return
            began = time.monotonic()
            self.judge_now()
            cost = time.monotonic() - began
            self._stop.wait(max(JUDGE_EVERY_S, cost / JUDGE_DUTY - cost))

    def judge_now(self) -> None:
        """Each SLO over the settled windows so far: its value now and whether it holds so far."""
        from harness.engine.slo import evaluate

        with self.lock:
            if self.timeline is None:
                return
            timeline = copy.deepcopy(self.timeline)  # small; the listener goes on changing the original
            run = timeline.run
            settled = [self.windows[i] for i in sorted(self._frozen)]
        windows = [w for w in settled if run.contains((w.start + w.end) / 2)]
        judged = {}
        for slo, parsed in self._parsed:
            try:
                v = evaluate(parsed, windows, timeline, self.scenario.settings)
            except Exception:  # noqa: BLE001 - a live guess that cannot be made yet is not measured
                judged[slo.name] = SloState(slo.name)
                continue
            judged[slo.name] = SloState(slo.name, v.scope, _number(v.measured), _number(v.threshold), v.passed, v.unit)
        with self.lock:
            for name, state in judged.items():
                if not self.slos[name].final:  # the run's own verdict may have come meanwhile
                    self.slos[name] = state

    def _open(self, span: ActiveSpan) -> None:
        self.active[(span.kind, span.name)] = span
        if self.timeline is not None:
            spans = self.timeline.faults if span.kind == "fault" else self.timeline.attacks
            spans.append(Span(span.name, span.kind, span.start, fault_type=span.type))

    def _close(self, kind: str, name: str, end: float) -> None:
        self.active.pop((kind, name), None)
        if self.timeline is not None:
            spans = self.timeline.faults if kind == "fault" else self.timeline.attacks
            for s in spans:
                if s.name == name and s.end is None:
                    s.end = end


def _number(value: Any) -> float | None:
    """A finite float, or None (not measured)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None
