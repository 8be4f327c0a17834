"""The run as the dashboard shows it, folded from the journal's events.

Both faces of the page read the same stream: a live run hands each event to `RunFeed.on_event`
as the journal writes it (`Journal.subscribe`), and `report --serve` replays a finished run's
journal.jsonl through the same method; `drain()` folds what came. Each change becomes a small message (a window's SLIs,
a fault or attack span, the phase, the SLO standings) that the server streams to the page;
`snapshot()` is everything so far, for a page that connects late.

Window records are additive (see harness.engine.record.events): partial records of one window are
merged here, and the window's message is sent again with the merged figures each time.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.dashboard.slo_status import standing
from harness.engine.phases import RunTimeline, Span
from harness.engine.record.events import WINDOW
from harness.engine.slo import Slo, SloSettings, evaluate, parse_slo, window_summary
from harness.core.windows import Window

Message = dict[str, Any]
Publish = Callable[[Message], None]


@dataclass(frozen=True)
class SloSpec:
    """One SLO of the scenario, for live standings: its name, its text and the parsed form."""

    name: str
    expect: str
    parsed: Slo


class RunFeed:
    """Thread-safe fold of journal events into what the page shows.

    `slos`/`settings` (a live run) let `evaluate_slos()` judge every SLO on the windows so
    far; without them (a replay) the standings come from the journal's `slo.verdict` events.
    `planned_faults`: how many faults the timeline holds, so "recovery" starts after the last.
    """

    def __init__(self, publish: Publish | None = None, slos: list[SloSpec] | None = None,
                 settings: SloSettings | None = None, planned_faults: int | None = None,
                 can_stop: bool = False, notify: Callable[[], None] | None = None) -> None:
        self._publish = publish or (lambda message: None)
        self._notify = notify or (lambda: None)
        self._inbox: deque[dict[str, Any]] = deque()
        self._count_lock = threading.Lock()
        self._received = self._folded = 0
        self._lock = threading.Lock()
        self._slo_specs = slos or []
        self._settings = settings or SloSettings()
        self._planned_faults = planned_faults
        self._windows: dict[int, Window] = {}
        self._window_msgs: dict[int, Message] = {}
        self._copies: dict[int, Window] = {}  # frozen copies for SLO evaluation outside the lock
        self._changed: set[int] = set()
        self._spans: dict[tuple[str, str], Message] = {}
        self._slo_rows: dict[str, Message] = {}
        self._final: set[str] = set()
        self._run: Message = {"scenario": None, "run_id": None, "window_s": None, "start": None,
                              "duration": None, "baseline": 0.0, "now": None}
        self._ended: Message | None = None
        self._aborted: str | None = None
        self._can_stop = can_stop
        self._status: Message = {}

    # --- input ------------------------------------------------------------------

    def on_event(self, record: dict[str, Any]) -> None:
        """A journal listener: queue the event and `notify` whoever calls `drain()`.

        The fold itself runs there, not on the run's loop: a window's percentiles take
        milliseconds, which the runner's fault timing must not wait for."""
        with self._count_lock:
            self._received += 1
        self._inbox.append(record)  # deque.append is atomic: any thread may call this
        self._notify()

    def drain(self) -> None:
        """Fold every queued event and publish what each changed (one caller at a time)."""
        while self._inbox:
            record = self._inbox.popleft()
            out: list[Message] = []
            try:
                with self._lock:
                    try:
                        self._fold(record, out)
                    except (KeyError, TypeError, ValueError):  # a malformed record (another version's journal)
                        out.clear()
                    status = self._status_message()
                    if status != self._status:
                        self._status = status
                        out.append(status)
                for message in out:
                    self._publish(message)
            finally:
                with self._count_lock:
                    self._folded += 1

    def wait_folded(self, timeout: float) -> bool:
        """Wait until every event received so far is folded and published (the run's last
        events reach the page before its server closes); False if that took over `timeout`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._count_lock:
                if self._folded >= self._received:
                    return True
            time.sleep(0.02)
        return False

    def _fold(self, e: dict[str, Any], out: list[Message]) -> None:
        kind = e.get("event")
        t = e.get("t")
        if isinstance(t, (int, float)):
            self._run["now"] = max(self._run["now"] or t, t)
        if kind == WINDOW and isinstance(e.get("record"), dict):
            out.append(self._window(e["record"]))
        elif kind == "run.started":
            self._run.update(scenario=e.get("scenario"), run_id=e.get("run_id"), window_s=e.get("window"))
        elif kind == "phase" and e.get("phase") == "load":
            self._run.update(start=e.get("start"), duration=e.get("duration"), baseline=e.get("baseline") or 0.0)
        elif kind == "fault.injected":
            planned = e.get("planned_at")
            start = planned + (e.get("skew_s") or 0.0) if planned is not None else t
            out.append(self._span("fault", e.get("fault"), e.get("type"), start=start, end=None,
                                  params=e.get("params") or {}))
        elif kind == "fault.reverted":
            out.append(self._span("fault", e.get("fault"), e.get("type"), end=t))
        elif kind == "fault.revert_failed":
            out.append(self._span("fault", e.get("fault"), e.get("type"), error=f"revert failed: {e.get('error')}"))
        elif kind == "attack.started":
            out.append(self._span("attack", e.get("attack"), e.get("type"), start=t, end=None,
                                  params=e.get("params") or {}))
        elif kind in ("attack.result", "attack.error"):
            out.append(self._span("attack", e.get("attack"), e.get("type"), start=e.get("start"), end=e.get("end", t),
                                  error=e.get("error")))
        elif kind == "slo.verdict" and "name" in e:
            self._final.add(e["name"])
            self._slo_rows[e["name"]] = standing(
                e["name"], e.get("expect", ""), e.get("passed"), e.get("measured"), e.get("threshold"),
                _comparator(e.get("expect", "")), e.get("unit") or "", final=True).to_dict()
            out.append(self._slos_message())
        elif kind == "run.aborted":
            self._aborted = str(e.get("reason") or "aborted")
        elif kind == "run.ended":
            self._ended = {"status": e.get("status"), "exit_code": e.get("exit_code"),
                           "message": e.get("message", "")}

    def _window(self, record: dict[str, Any]) -> Message:
        w = Window.from_record(record)
        merged = self._windows.get(w.index)
        if merged is None:
            self._windows[w.index] = merged = w
        else:
            merged.merge(w)
        self._changed.add(w.index)
        self._run["now"] = max(self._run["now"] or merged.end, merged.end)
        sli = window_summary(merged)
        requests = merged.requests
        message = {
            "type": "window", "index": merged.index, "start": merged.start, "end": merged.end,
            "requests": requests, "errors": {k: n / requests for k, n in sorted(merged.failures.items())}
            if requests else {},
            **{k: sli.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "error_rate", "throughput",
                                       "accuracy", "fallback_rate")},
        }
        self._window_msgs[merged.index] = message
        return message

    def _span(self, kind: str, name: Any, what: Any, **fields: Any) -> Message:
        key = (kind, str(name))
        span = self._spans.setdefault(key, {"type": "span", "kind": kind, "name": str(name), "what": what,
                                            "start": None, "end": None, "params": {}, "error": None})
        span.update({k: v for k, v in fields.items() if v is not None})  # None: not known from this event
        return dict(span)

    # --- derived state ----------------------------------------------------------

    def _active(self, kind: str) -> list[str]:
        return [s["name"] for s in self._spans.values() if s["kind"] == kind and s["end"] is None]

    def _phase(self) -> str:
        run, now = self._run, self._run["now"]
        if self._ended is not None:
            return f"ended: {self._ended['status']}"
        if self._aborted is not None:
            return f"aborting: {self._aborted}"
        if run["start"] is None:
            return "starting"
        if run["duration"] is not None and now is not None and now >= run["start"] + run["duration"]:
            return "verdicts"
        faults, attacks = self._active("fault"), self._active("attack")
        if faults:
            return "fault"
        if attacks:
            return "attack"
        if now is not None and now < run["start"] + run["baseline"]:
            return "baseline"
        if self._recovery_start() is not None:
            return "recovery"
        return "load"

    def _recovery_start(self) -> float | None:
        faults = [s for s in self._spans.values() if s["kind"] == "fault"]
        planned = self._planned_faults if self._planned_faults is not None else len(faults)
        if not faults or len(faults) < planned or any(s["end"] is None for s in faults):
            return None
        return max(s["end"] for s in faults)

    def _status_message(self) -> Message:
        phase = self._phase()
        return {
            "type": "status", "scenario": self._run["scenario"], "run_id": self._run["run_id"],
            "phase": phase, "active_faults": self._active("fault"),
            "active_attacks": self._active("attack"), "run_start": self._run["start"],
            "duration": self._run["duration"], "ended": self._ended,
            # after the load the verdicts are being made: there is nothing left to stop
            "can_stop": self._can_stop and phase not in ("verdicts",) and not phase.startswith(("ended", "aborting")),
        }

    def _slos_message(self) -> Message:
        return {"type": "slos", "rows": list(self._slo_rows.values())}

    def snapshot(self) -> list[Message]:
        """Every message a page needs to show the run so far, in order."""
        with self._lock:
            return [self._status_message(), *[dict(s) for s in self._spans.values()],
                    *[self._window_msgs[i] for i in sorted(self._window_msgs)], self._slos_message()]

    @property
    def can_stop(self) -> bool:
        """Whether Stop still means something (a live run, not yet past its load)."""
        with self._lock:
            return bool(self._status_message()["can_stop"])

    # --- live SLO standings -------------------------------------------------------

    def evaluate_slos(self) -> None:
        """Judge every SLO on the windows so far and publish the standings (a live run only).

        Judged on copies outside the lock, so the journal's writer never waits for it."""
        with self._lock:
            if not self._slo_specs or not self._changed or self._run["start"] is None:
                return
            for i in self._changed:
                self._copies[i] = Window.from_record(self._windows[i].to_record())
            self._changed.clear()
            timeline = self._timeline()
            windows = [self._copies[i] for i in sorted(self._copies)]
            pending = [s for s in self._slo_specs if s.name not in self._final]
        windows = [w for w in windows if timeline.run.contains((w.start + w.end) / 2)]
        rows = {}
        for spec in pending:
            v = evaluate(spec.parsed, windows, timeline, self._settings)
            rows[spec.name] = standing(spec.name, spec.expect, v.passed, v.measured, v.threshold,
                                       v.comparator, v.unit, final=False).to_dict()
        with self._lock:
            for name, row in rows.items():
                if name not in self._final:  # the run's verdict came meanwhile: it wins
                    self._slo_rows[name] = row
            self._slo_rows = {s.name: self._slo_rows[s.name] for s in self._slo_specs if s.name in self._slo_rows}
            message = self._slos_message()
        self._publish(message)

    def _timeline(self) -> RunTimeline:
        from harness.engine.runner import settle_baseline

        start, now = self._run["start"], self._run["now"] or time.time()
        end = min(now, start + self._run["duration"]) if self._run["duration"] else now
        timeline = RunTimeline(run=Span("run", "run", start, end))
        if self._run["baseline"]:
            timeline.baseline = Span("baseline", "baseline", start, start + self._run["baseline"])
        for s in self._spans.values():
            if s["start"] is not None:
                span = Span(s["name"], s["kind"], s["start"], s["end"], fault_type=s["what"])
                (timeline.faults if s["kind"] == "fault" else timeline.attacks).append(span)
        settle_baseline(timeline, self._run["window_s"] or 1.0)
        recovery = self._recovery_start()
        if recovery is not None:
            timeline.recovery = Span("recovery", "recovery", recovery, end)
        return timeline


def _comparator(expect: str) -> str:
    try:
        return parse_slo(expect).comparison.op
    except Exception:  # noqa: BLE001 (a journal from another version: no margin, still shown)
        return ""
