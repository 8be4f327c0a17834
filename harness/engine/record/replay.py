"""Rebuild a run's report data from its journal, so a crashed run's partial journal still renders.

The output has the shape of result.json (see result.py) plus `drift` and `attacks`
tables. Where the run finished, its result.json is laid over the journal's view: the
runner's own figures win, and the journal adds what result.json does not hold.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from harness.engine.journal import read_journal
from harness.engine.phases import RunTimeline, Span
from harness.engine.record.events import ATTACK_ERROR, ATTACK_RESULT, DRIFT_DELIVERED, windows_from_events
from harness.engine.record.result import scope_slis, times_by_slo, version_rows, window_rows
from harness.engine.record.score import resilience_score

_BOOKKEEPING = {"t", "event"}


class RunDirError(ValueError):
    """A folder that holds no run (no journal.jsonl and no result.json)."""


def _first(events: list[dict[str, Any]], name: str, **match: Any) -> dict[str, Any] | None:
    for e in events:
        if e.get("event") == name and all(e.get(k) == v for k, v in match.items()):
            return e
    return None


def _last(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    found = [e for e in events if e.get("event") == name]
    return found[-1] if found else None


def _rel(t: float | None, origin: float) -> float | None:
    return None if t is None else round(t - origin, 3)


def _fault_spans(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each fault's actual inject..revert instants (Unix seconds), in the order they were injected."""
    faults: dict[str, dict[str, Any]] = {}
    for e in events:
        kind = e.get("event")
        name = e.get("fault")
        if kind == "fault.injected" and name is not None:
            planned = e.get("planned_at")
            start = planned + (e.get("skew_s") or 0.0) if planned is not None else e["t"]
            faults[name] = {
                "name": name,
                "type": e.get("type"),
                "start": start,
                "end": None,
                "planned_at": planned,
                "skew_s": e.get("skew_s"),
                "params": e.get("params") or {},
                "bad_versions": list(e.get("bad_versions") or []),
                "revert_skew_s": None,
                "error": None,
            }
        elif kind == "fault.reverted" and name in faults:
            faults[name]["end"] = e["t"]
            faults[name]["revert_skew_s"] = e.get("skew_s")
        elif kind == "fault.revert_failed" and name in faults:
            faults[name]["error"] = f"revert failed: {e.get('error')}"
    return list(faults.values())


def _extras(events: list[dict[str, Any]], *names: str, origin: float) -> list[dict[str, Any]]:
    rows = []
    for e in events:
        if e.get("event") in names:
            row = {"t_s": _rel(e.get("t"), origin)}
            row.update({k: v for k, v in e.items() if k not in _BOOKKEEPING})
            for key in ("start", "end"):
                if isinstance(row.get(key), (int, float)):
                    row[f"{key}_s"] = _rel(row[key], origin)
            rows.append(row)
    return rows


def result_from_journal(events: list[dict[str, Any]]) -> dict[str, Any]:
    """Everything the journal says about a run, in result.json's shape (status `incomplete`
    when the journal stops before `run.ended`)."""
    started = _first(events, "run.started") or {}
    windows = windows_from_events(events)
    phase = _first(events, "phase", phase="load")
    if phase is not None:
        origin = float(phase["start"])
    elif windows:
        origin = windows[0].start
    else:
        origin = float(started.get("t") or (events[0]["t"] if events else 0.0))
    windows = [w for w in windows if (w.start + w.end) / 2 >= origin]
    ended = _last(events, "run.ended")
    aborted = _last(events, "run.aborted")
    end = origin + float(phase["duration"]) if phase and phase.get("duration") else None
    if windows:
        end = min(end, windows[-1].end) if end is not None else windows[-1].end
        windows = [w for w in windows if (w.start + w.end) / 2 < end]
    if end is None:
        end = float(events[-1]["t"]) if events else origin

    timeline = RunTimeline(run=Span("run", "run", origin, end))
    if phase and phase.get("baseline"):
        timeline.baseline = Span("baseline", "baseline", origin, origin + float(phase["baseline"]))
    faults = _fault_spans(events)
    for f in faults:
        timeline.faults.append(Span(f["name"], "fault", f["start"], f["end"], fault_type=f["type"],
                                    bad_versions=tuple(f.get("bad_versions") or ())))
    if timeline.faults:
        timeline.recovery = Span(
            "recovery", "recovery", max(s.end or end for s in timeline.faults), end
        )

    verdicts: dict[str, dict[str, Any]] = {}
    for e in events:
        if e.get("event") == "slo.verdict" and "name" in e:
            verdicts[e["name"]] = {k: v for k, v in e.items() if k not in _BOOKKEEPING}
    slos = list(verdicts.values())

    if ended:
        status, code, message = (
            ended.get("status", "error"),
            ended.get("exit_code"),
            ended.get("message", ""),
        )
    elif aborted:
        status, code, message = (
            "aborted",
            3,
            # a stop from the dashboard has no condition: its reason says it all
            f"stop condition `{aborted['condition']}` tripped: {aborted.get('reason')}"
            if aborted.get("condition") else str(aborted.get("reason")),
        )
    else:
        status, code = "incomplete", None
        message = (
            "the journal ends without run.ended: the run crashed, was killed, or is still going"
        )
    error = _last(events, "run.error")
    if error and not message:
        message = f"internal error: {error.get('error')}"

    return {
        "schema": 1,
        "scenario": started.get("scenario", "unknown scenario"),
        "description": "",
        "file": started.get("file"),
        "run_id": started.get("run_id"),
        "status": status,
        "exit_code": code,
        "message": message,
        "quick": started.get("quick", False),
        "started_at": started.get("t"),
        "window_s": started.get("window"),
        "timeline": {
            "run": {"start_s": 0.0, "end_s": round(end - origin, 3)},
            "baseline": None
            if timeline.baseline is None
            else {"start_s": 0.0, "end_s": _rel(timeline.baseline.end, origin)},
            "recovery": None
            if timeline.recovery is None
            else {"start_s": _rel(timeline.recovery.start, origin), "end_s": _rel(end, origin)},
            "faults": [
                {
                    "name": f["name"],
                    "type": f["type"],
                    "planned_at_s": _rel(f["planned_at"], origin),
                    "planned_duration_s": None,
                    "injected_at_s": _rel(f["start"], origin),
                    "reverted_at_s": _rel(f["end"], origin),
                    "inject_skew_s": f["skew_s"],
                    "revert_skew_s": f["revert_skew_s"],
                    "params": f["params"],
                    "bad_versions": f["bad_versions"],
                    "error": f["error"],
                }
                for f in faults
            ],
        },
        "slos": slos,
        "recovery_time_s": times_by_slo(slos, "recovery_time"),
        "detection_time_s": times_by_slo(slos, "detection_time"),
        "score": resilience_score(slos).to_dict(),
        "slis": scope_slis(windows, timeline),
        "versions": version_rows(windows, timeline),
        "windows": window_rows(windows, origin, timeline),
        "environment": started.get("environment") or {},
        "drift": _extras(events, DRIFT_DELIVERED, origin=origin),
        "attacks": _extras(events, ATTACK_RESULT, ATTACK_ERROR, origin=origin),
    }


def report_data(
    events: list[dict[str, Any]], result: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The journal's view with result.json (when the run got that far) laid over it."""
    data = result_from_journal(events) if events else {}
    if result:
        journal_windows = data.get("windows") or []
        data.update(result)
        if not data.get("windows") and journal_windows:
            data["windows"] = journal_windows
    data.setdefault("drift", [])
    data.setdefault("attacks", [])
    data.setdefault("detection_time_s", times_by_slo(data.get("slos", []), "detection_time"))
    data.setdefault("environment", {})
    data["score"] = resilience_score(data.get("slos", [])).to_dict()
    return data


def load_run(run_dir: Path) -> dict[str, Any]:
    """Report data for a run folder, from journal.jsonl and result.json (either may be missing)."""
    journal = run_dir / "journal.jsonl"
    result_path = run_dir / "result.json"
    if not journal.is_file() and not result_path.is_file():
        raise RunDirError(
            f"{run_dir}: no journal.jsonl or result.json here; "
            "pass a run folder such as reports/<scenario>/<timestamp>"
        )
    events = read_journal(journal) if journal.is_file() else []
    result = None
    if result_path.is_file():
        try:
            result = json.loads(result_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError:
            result = None  # torn by a crash: the journal still tells the story
    if not events and result is None:
        raise RunDirError(
            f"{run_dir}: the journal is empty and result.json unreadable; nothing to report"
        )
    return report_data(events, result)
