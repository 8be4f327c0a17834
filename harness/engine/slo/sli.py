"""Service-level indicators computed over one window or over a scope's windows.

Values are in base units here: seconds for latency, 0..1 for rates, requests/s for
throughput.  Over several windows the HDR latency histograms merge exactly, so a
scope's p95 is the p95 of every request in it, not an average of window p95s.

An SLI that cannot be computed is `Missing`.  It is *failing* when the load sent
requests (or a window stalled) and none succeeded — a service that answers nothing
must not look healthy — and merely *no data* otherwise (e.g. no labelled payloads).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hdrh.histogram import HdrHistogram

from harness.core.windows import (
    GENERATION_SCALE,
    STREAM_FAILURES,
    Window,
    latency_percentile_us,
    merge_windows,
)
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo.ast import SliRef
from harness.engine.slo.parser import parse_sli
from harness.engine.slo.series import Series
from harness.engine.slo.tampered import tampered_served
from harness.engine.slo.versions import bad_version_share

SLI_HELP = {
    "pNN(latency)": "latency percentile of successful requests, any NN in 0..100 (p50, p95, p99.9)",
    "mean(latency)": "mean latency of successful requests",
    "max(latency)": "slowest successful request",
    "min(latency)": "fastest successful request",
    "error_rate": "failed requests / requests",
    "client_error_rate": "requests answered 4xx / requests (e.g. rejected bad input)",
    "server_error_rate": "requests answered 5xx / requests",
    "availability": "1 - error_rate",
    "throughput": "requests per second",
    "accuracy": "correct / labelled successful responses",
    "fallback_rate": "responses flagged as served by a fallback / responses that carried the flag",
    "requests": "number of requests",
    "bad_version_share": "requests served by a model version a fault named bad / requests that named a version",
    "tampered_served": "requests answered by a model version a model.tamper fault named",
    "pNN(ttft)": "time to first token of streamed answers (also mean/max/min(ttft))",
    "pNN(itl)": "inter-token latency: each gap between two tokens of a streamed answer (also mean/max/min)",
    "pNN(tokens_per_s)": "output tokens / end-to-end time per answer (also mean/max/min)",
    "pNN(output_tokens)": "tokens per answer: usage.completion_tokens, else content deltas (also mean/max/min)",
    "stream_error_rate": "streams cut, stalled, malformed or aborted by the server / requests",
    "probe.<name>": "the probe's last value (min/max/mean/last(probe.<name>) over a scope)",
}


@dataclass(frozen=True)
class Missing:
    """Why an SLI has no value, and whether that counts as a violation."""

    reason: str
    failing: bool


Value = float | Missing


@dataclass(frozen=True)
class MergedWindows:
    """The busy windows of a selection merged into one, and how many windows count."""

    window: Window | None  # None: no window with requests
    stalled: int  # windows where nothing answered
    counted: int  # windows with data or stalls
    stalled_failed: float  # the stalled windows' failed shares, summed (Series.failed_share)


def merge_selected(series: Series, idx: list[int]) -> MergedWindows:
    busy = [series.windows[i] for i in idx if series.status[i] == "data"]
    stalled = [i for i in idx if series.status[i] == "stalled"]
    merged = busy[0] if len(busy) == 1 else merge_windows(busy)
    failed = sum(series.failed_share(i) for i in stalled)
    return MergedWindows(merged, len(stalled), len(busy) + len(stalled), failed)


def compute(sli: SliRef, series: Series, idx: list[int], where: str) -> Value:
    """The value of `sli` over the windows `idx` of `series`; `where` names them for messages."""
    if sli.kind == "probe":
        return _probe(sli, series, idx, where)
    merged = merge_selected(series, idx)
    w, stalled, counted = merged.window, merged.stalled, merged.counted
    if counted == 0:
        return Missing(f"no load data {where}", failing=False)
    requests = w.requests if w else 0
    failed = w.failed if w else 0
    # the requests the stalled windows stand for, and those of them that failed (series.py)
    phantom = stalled * max(series.stall_weight, 1.0)
    phantom_failed = merged.stalled_failed * max(series.stall_weight, 1.0)
    nothing_completed = Missing(f"no request completed {where}", failing=True)
    if sli.kind in ("error_rate", "availability"):
        rate = (failed + phantom_failed) / (requests + phantom)
        return rate if sli.kind == "error_rate" else 1.0 - rate
    if sli.kind == "stream_error_rate":  # a stalled window's failed requests were streams too
        hits = sum(n for kind, n in (w.failures if w else {}).items() if kind in STREAM_FAILURES)
        return (hits + phantom_failed) / (requests + phantom)
    if sli.kind in ("client_error_rate", "server_error_rate"):
        first = "4" if sli.kind == "client_error_rate" else "5"
        hits = sum(n for kind, n in (w.failures if w else {}).items() if _http_class(kind) == first)
        return (hits + (phantom_failed if first == "5" else 0.0)) / (requests + phantom)
    if sli.kind == "throughput":
        return requests / (counted * series.windows[idx[0]].size)
    if sli.kind == "requests":
        return float(requests)
    if sli.kind == "bad_version_share":
        share = bad_version_share(w, series.timeline)
        return share if isinstance(share, float) else Missing(f"{share} {where}", failing=False)
    if sli.kind == "tampered_served":
        served = tampered_served(w, series.timeline)
        return served if isinstance(served, float) else Missing(f"{served} {where}", failing=False)
    if sli.distribution == "latency":
        if w is None or w.latency.total_count == 0:
            return nothing_completed
        return _statistic(sli, w.latency, w.latency_sum_us) / 1e6
    if sli.distribution is not None:  # a generative answer's figure (GENERATION_SCALE units)
        if w is None or w.succeeded == 0:
            return nothing_completed
        d = w.generation.get(sli.distribution)
        if d is None or d.histogram.total_count == 0:
            return Missing(f"no {sli.distribution} recorded {where} (not a streamed generative load?)", failing=False)
        return _statistic(sli, d.histogram, d.total) / GENERATION_SCALE[sli.distribution]
    if sli.kind in ("accuracy", "fallback_rate"):
        # a share of the responses that carried what it needs: a label, a fallback flag
        if w is None or w.succeeded == 0:
            return nothing_completed
        hits, of, lacking = (
            (w.correct, w.labelled, "no labelled response")
            if sli.kind == "accuracy"
            else (w.fallbacks, w.fallback_flagged, "no response carried the fallback flag")
        )
        return hits / of if of else Missing(f"{lacking} {where}", failing=False)
    raise ValueError(f"unknown SLI kind {sli.kind!r}")


def _statistic(sli: SliRef, h: HdrHistogram, total: float) -> float:
    """pNN (nearest rank), mean, max or min of a histogram, in its integer units."""
    stat = sli.kind.removeprefix(f"{sli.distribution}_")
    if stat == "pct":
        assert sli.percentile is not None  # the parser sets it for pNN(...)
        return latency_percentile_us(h, sli.percentile)
    if stat == "mean":
        return total / h.total_count
    return h.get_max_value() if stat == "max" else h.get_min_value()


def _http_class(failure_kind: str) -> str | None:
    """'4' for http_4xx failure kinds, '5' for http_5xx, else None."""
    if failure_kind.startswith("http_") and len(failure_kind) == 8 and failure_kind[5:].isdigit():
        return failure_kind[5]
    return None


def _probe(sli: SliRef, series: Series, idx: list[int], where: str) -> Value:
    # NaN: a figure marked "not measured" here (an attack that did not report it)
    values = [v for i in idx if not math.isnan(v := series.probes[i].get(sli.probe, math.nan))]
    if not values:
        return Missing(f"probe {sli.probe!r} has no value {where}", failing=False)
    if sli.agg == "min":
        return min(values)
    if sli.agg == "max":
        return max(values)
    if sli.agg == "mean":
        return sum(values) / len(values)
    return values[-1]


def window_summary(window: Window) -> dict[str, float | None]:
    """The common SLIs of one window in display units (latency in ms), for journals and plots."""

    series = Series.build([window], RunTimeline(run=Span("run", "run", window.start, None)))
    out: dict[str, float | None] = {}
    refs = {
        "p50_ms": SliRef("latency_pct", 0, percentile=50), "p95_ms": SliRef("latency_pct", 0, percentile=95),
        "p99_ms": SliRef("latency_pct", 0, percentile=99), "mean_ms": SliRef("latency_mean", 0),
        "max_ms": SliRef("latency_max", 0), "error_rate": SliRef("error_rate", 0),
        "throughput": SliRef("throughput", 0), "accuracy": SliRef("accuracy", 0),
        "fallback_rate": SliRef("fallback_rate", 0),
    }  # fmt: skip
    for key, ref in refs.items():
        v = compute(ref, series, [0], "in this window")
        out[key] = None if isinstance(v, Missing) else v * 1000 if key.endswith("_ms") else v
    out["requests"] = float(window.requests)
    return out


def scope_sli(
    name: str, windows: list[Window], timeline: RunTimeline, scope: str = "run"
) -> float | None:
    """An SLI by name (`p99.9(latency)`, `error_rate`, `probe.queue`) over a scope, display units."""
    ref = parse_sli(name)
    series = Series.build(windows, timeline)
    v = compute(ref, series, series.in_scope(ref.scope or scope), f"during {scope}")
    return None if isinstance(v, Missing) else v * 1000 if ref.is_latency else v


def window_sli(name: str, window: Window) -> float | None:
    """An SLI by name in one window, display units (latency in ms)."""
    return scope_sli(name, [window], RunTimeline(run=Span("run", "run", window.start, None)))
