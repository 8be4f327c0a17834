"""result.json: the run's verdicts, figures and metadata (the input of `aftershock compare`)."""

from __future__ import annotations

import json
import math
import platform
import sys
import time
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.windows import Window, merge_windows
from harness.engine.phases import RunTimeline, Span
from harness.engine.record.score import resilience_score
from harness.engine.redaction import Redactor
from harness.engine.slo import scope_sli, window_sli, window_summary
from harness.engine.slo.series import Series

if TYPE_CHECKING:
    from harness.engine.runner import Runner
    from harness.engine.timeline import FaultTimeline

RESULT_SCHEMA = 1


def _iso(t: float | None) -> str | None:
    return None if t is None else datetime.fromtimestamp(t, UTC).isoformat()


def _span(s: Span | None, origin: float) -> dict[str, Any] | None:
    if s is None:
        return None
    return {
        "start_s": round(s.start - origin, 3),
        "end_s": None if s.end is None else round(s.end - origin, 3),
    }


def _pkg_version(name: str) -> str | None:
    try:
        return version(name)
    except PackageNotFoundError:
        return None


SLI_NAMES = (
    "p50(latency)",
    "p95(latency)",
    "p99(latency)",
    "error_rate",
    "availability",
    "throughput",
    "accuracy",
    "fallback_rate",
)
# generative loads only (a window with streamed answers): shown where the latency figures are
GENERATION_SLI_NAMES = ("p50(ttft)", "p95(ttft)", "p95(itl)", "p50(tokens_per_s)", "mean(output_tokens)",
                        "stream_error_rate")
SLI_UNITS = {
    "p50(ttft)": "ms",
    "p95(ttft)": "ms",
    "p95(itl)": "ms",
    "p50(tokens_per_s)": "tokens/s",
    "mean(output_tokens)": "tokens",
    "stream_error_rate": "fraction",
    "p50(latency)": "ms",
    "p95(latency)": "ms",
    "p99(latency)": "ms",
    "error_rate": "fraction",
    "availability": "fraction",
    "throughput": "req/s",
    "accuracy": "fraction",
    "fallback_rate": "fraction",
}


def environment() -> dict[str, Any]:
    """Versions worth knowing when comparing two runs (also journaled in run.started)."""
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "aftershock": _pkg_version("aftershock"),
        "locust": _pkg_version("locust"),
        "torch": _pkg_version("torch"),
        "numpy": _pkg_version("numpy"),
        "hdrhistogram": _pkg_version("hdrhistogram"),
    }


def window_row(w: Window, origin: float) -> dict[str, Any]:
    """One window's SLIs as plain numbers (latency in ms, rates as fractions), for plots and readers."""
    s = window_summary(w)
    return {
        "t_s": round(w.start - origin, 3),
        "size_s": w.size,
        "requests": w.requests,
        "failures": w.failed,
        "error_rate": s["error_rate"],
        "throughput": w.requests / w.size,
        "p50_ms": s["p50_ms"],
        "p95_ms": s["p95_ms"],
        "p99_ms": s["p99_ms"],
        "accuracy": s["accuracy"],
        "fallback_rate": s["fallback_rate"],
        "failure_kinds": dict(w.failures),
        "probes": {k: v for k, v in w.probes.items() if not math.isnan(v)},  # NaN: not measured
        **_generation_row(w),
    }


def _generation_row(w: Window) -> dict[str, Any]:
    """A generative window's token figures (ms, tokens/s, tokens); nothing for a classifier's."""
    if not w.generation:
        return {}
    row = {"ttft_p50_ms": window_sli("p50(ttft)", w), "ttft_p95_ms": window_sli("p95(ttft)", w),
           "itl_p95_ms": window_sli("p95(itl)", w), "tokens_per_s_p50": window_sli("p50(tokens_per_s)", w),
           "output_tokens_mean": window_sli("mean(output_tokens)", w)}
    return {**row, "finish_reasons": dict(w.finish_reasons)}


def window_scopes(w: Window, timeline: RunTimeline) -> list[str]:
    """The scopes a window belongs to (by its midpoint, as SLO scopes select windows)."""
    mid = (w.start + w.end) / 2
    return [name for name in dict.fromkeys(timeline.scope_names())
            if any(s.contains(mid) for s in timeline.scope(name))]


def version_rows(windows: list[Window], timeline: RunTimeline) -> list[dict[str, Any]]:
    """Requests, errors, accuracy and p95 latency by the model version that answered, over the
    run; `bad`: a fault named it bad. Empty when no response named a version."""
    total = merge_windows([w for w in windows if w.versions])
    if total is None:
        return []
    bad = {v for span in timeline.faults for v in span.bad_versions}
    rows = []
    for name, counts in sorted(total.versions.items()):
        s = window_summary(counts)
        rows.append({"version": name, "bad": name in bad, "requests": counts.requests,
                     "failed": counts.failed, "error_rate": s["error_rate"],
                     "accuracy": s["accuracy"], "p95_ms": s["p95_ms"]})
    return rows


def window_rows(windows: list[Window], origin: float, timeline: RunTimeline | None = None) -> list[dict[str, Any]]:
    """Per-window SLIs; with the timeline, each row also names its scopes (compare's samples),
    and the stalled windows no record came for get a row too (`stalled`, the error rate the
    SLIs give them), so that a chart shows a hang where the verdicts count one."""
    if timeline is None:
        return [window_row(w, origin) for w in windows]
    recorded = {w.index for w in windows}
    series = Series.build(windows, timeline)
    rows = []
    for i, w in enumerate(series.windows):
        stalled = series.status[i] == "stalled"
        if w.index not in recorded and not stalled:
            continue
        row = window_row(w, origin)
        if stalled:
            row.update(stalled=True, error_rate=series.failed_share(i))
        row["scopes"] = window_scopes(w, timeline)
        rows.append(row)
    return rows


def scope_slis(windows: list[Window], timeline: RunTimeline) -> dict[str, dict[str, float | None]]:
    """The common SLIs over each scope (run, baseline, fault, recovery, each fault): compare's input."""
    out: dict[str, dict[str, float | None]] = {}
    if not windows:
        return out
    generative = any(w.generation for w in windows)
    names = SLI_NAMES + GENERATION_SLI_NAMES if generative else SLI_NAMES
    for scope in dict.fromkeys(timeline.scope_names()):
        if not timeline.scope(scope):
            continue
        out[scope] = {name: scope_sli(name, windows, timeline, scope) for name in names}
    return out


def times_by_slo(verdicts: list[dict[str, Any]], measure: str) -> dict[str, float | None]:
    """`recovery_time` / `detection_time` SLOs' measured seconds, by SLO name."""
    return {
        v["name"]: v.get("measured") for v in verdicts if v["expect"].strip().startswith(measure)
    }


def build_result(
    runner: Runner,
    timeline: RunTimeline,
    verdicts: list[dict[str, Any]],
    status: str,
    code: int,
    message: str,
    started: float,
    faults: FaultTimeline | None,
) -> dict[str, Any]:
    s = runner.scenario
    origin = timeline.run.start
    windows = [
        runner.windows[i]
        for i in sorted(runner.windows)
        if timeline.run.contains((runner.windows[i].start + runner.windows[i].end) / 2)
    ]
    fault_rows = []
    for f in faults.faults if faults else []:
        fault_rows.append(
            {
                "name": f.entry.name,
                "type": f.fault.type,
                "planned_at_s": f.entry.at,
                "planned_duration_s": f.entry.duration,
                "injected_at_s": None if f.span is None else round(f.span.start - origin, 3),
                "reverted_at_s": None
                if f.span is None or f.span.end is None
                else round(f.span.end - origin, 3),
                "inject_skew_s": f.inject_skew,
                "revert_skew_s": f.revert_skew,
                "params": f.fault.params.model_dump(mode="json"),
                "bad_versions": [] if f.span is None else list(f.span.bad_versions),
                "error": f.error,
            }
        )
    return {
        "schema": RESULT_SCHEMA,
        "scenario": s.name,
        "description": s.description,
        "file": str(runner.loaded.path),
        "run_id": runner.run_id,
        "status": status,
        "exit_code": code,
        "message": message,
        "quick": runner.options.quick,
        "started_at": _iso(started),
        "ended_at": _iso(time.time()),
        "load_started_at": _iso(origin),
        "window_s": s.load.window,
        "timeline": {
            "run": _span(timeline.run, origin),
            "baseline": _span(timeline.baseline, origin),
            "recovery": _span(timeline.recovery, origin),
            "faults": fault_rows,
        },
        "slos": verdicts,
        "recovery_time_s": times_by_slo(verdicts, "recovery_time"),
        "detection_time_s": times_by_slo(verdicts, "detection_time"),
        "score": resilience_score(verdicts).to_dict(),
        "slis": scope_slis(windows, timeline),
        "versions": version_rows(windows, timeline),
        "windows": window_rows(windows, origin, timeline),
        "environment": environment(),
    }


def write_result(run_dir: Path, result: dict[str, Any], redactor: Redactor) -> None:
    """result.json: the verdicts, figures and metadata, secrets masked (the input of `compare`)."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "result.json").write_text(json.dumps(redactor.value(result), indent=2, default=str) + "\n",
                                        encoding="utf-8")
