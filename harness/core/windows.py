"""Per-window load measurements: the unit every SLI and SLO is computed from.

A window is a fixed slice of wall-clock time (1 s by default). The Locust child
records each request into the window its request *started* in (and, apart, counts
`activity` by when it happened: completions and streamed tokens), and streams partial
window records to the runner; records for the same window merge exactly (counts add,
HDR histograms merge), so late arrivals and several workers need no special case.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

# Latency is recorded in microseconds, 1 µs .. 1 h, 3 significant digits (≤ 0.1 % error).
LATENCY_LOWEST_US = 1
LATENCY_HIGHEST_US = 3_600_000_000
LATENCY_DIGITS = 3


def new_latency_histogram() -> HdrHistogram:
    return HdrHistogram(LATENCY_LOWEST_US, LATENCY_HIGHEST_US, LATENCY_DIGITS)


# Per-request figures of generative (LLM) answers, each an HDR histogram of integers like
# latency: name -> integer units per base unit (times in µs, throughput in milli-tokens/s,
# token counts as they are). Values up to LATENCY_HIGHEST_US fit; 3 digits, exact < 2048.
GENERATION_SCALE = {"ttft": 1e6, "itl": 1e6, "tokens_per_s": 1e3, "output_tokens": 1.0}
# failure kinds of a streamed answer that began but did not finish (stream_error_rate)
STREAM_FAILURES = ("stream_cut", "stream_stalled", "stream_malformed", "stream_aborted")


@dataclass
class Distribution:
    """One generation figure's values in a window: their histogram and their sum (the mean)."""

    histogram: HdrHistogram = field(default_factory=new_latency_histogram)
    total: float = 0.0  # the sum of the recorded integers

    def add(self, other: Distribution) -> None:
        self.histogram.add(other.histogram)
        self.total += other.total


def nearest_rank(n: int, percentile: float) -> int:
    """The 1-based rank of the p-th percentile of n samples by nearest rank: ceil(p/100 * n),
    the smallest value with at least p % of the samples at or below it, so at most
    (100 - p) % lie above it."""
    if n == 0:
        raise ValueError("no samples: a percentile of nothing is not measured")
    # the 1e-9 keeps float noise (0.95 * 20 = 19.000000000000004) from adding a rank
    return min(n, max(1, math.ceil(percentile / 100 * n - 1e-9)))


def percentile_of(values: Iterable[float], percentile: float) -> float:
    """The p-th percentile of plain values by nearest rank (see `nearest_rank`): one of the
    values, never an interpolation between two."""
    ordered = sorted(values)
    return ordered[nearest_rank(len(ordered), percentile) - 1]


def latency_percentile_us(histogram: HdrHistogram, percentile: float) -> int:
    """The p-th percentile of a latency histogram by nearest rank (see `nearest_rank`).

    HDR's own get_value_at_percentile rounds the rank to nearest: with 15 samples its
    "p95" is the 14th value (93 %), and a 1-in-15 slow request never shows. Every latency
    percentile aftershock reports comes from here or from `percentile_of`."""
    rank = nearest_rank(histogram.total_count, percentile)
    seen = 0
    for index in range(histogram.counts_len):
        seen += histogram.get_count_at_index(index)
        if seen >= rank:
            return histogram.get_highest_equivalent_value(histogram.get_value_from_index(index))
    raise AssertionError("histogram counts do not add up to its total")


@dataclass
class Window:
    """What the load saw in one window. Latency covers successful requests only."""

    index: int  # floor(start / size) on the Unix clock: the merge key
    size: float  # seconds
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # failure kind -> count
    latency: HdrHistogram = field(default_factory=new_latency_histogram)  # µs, successes
    latency_sum_us: float = 0.0
    labelled: int = 0  # successful responses to payloads that carried a label
    correct: int = 0  # ... of which the prediction matched the label
    fallbacks: int = 0  # successful responses the target marked as served by a fallback
    # successful responses that carried the fallback flag at all (true or false): without
    # one, the fallback rate is not measured rather than 0
    fallback_flagged: int = 0
    probes: dict[str, float] = field(default_factory=dict)  # probe name -> last value
    # model version -> what the responses that named it saw (requests, failures, latency,
    # labelled/correct): the same counts, kept apart so accuracy and latency show per version
    versions: dict[str, Window] = field(default_factory=dict)
    # generative answers (GENERATION_SCALE names): successful requests that reported them;
    # a classifier's windows leave both empty
    generation: dict[str, Distribution] = field(default_factory=dict)
    finish_reasons: dict[str, int] = field(default_factory=dict)  # finish_reason -> answers
    # progress that happened in this window, whenever its request started: completions
    # (success or failure) and streamed tokens. A window no request started in but with
    # activity was not stalled: a long stream was still flowing (harness.engine.slo.series)
    activity: int = 0
    # requests that ended in this window but started in an earlier one, by outcome: how the
    # requests stuck across a stall fared (one they came through was a pause, not an outage)
    carried_ok: int = 0
    carried_failed: int = 0

    def distribution(self, name: str) -> Distribution:
        """The window's `name` figure (ttft, itl, tokens_per_s, output_tokens), made on first use."""
        d = self.generation.get(name)
        if d is None:
            d = self.generation[name] = Distribution()
        return d

    @property
    def start(self) -> float:
        return self.index * self.size

    @property
    def end(self) -> float:
        return (self.index + 1) * self.size

    @property
    def failed(self) -> int:
        return sum(self.failures.values())

    @property
    def succeeded(self) -> int:
        return self.requests - self.failed

    def merge(self, other: Window) -> None:
        if other.index != self.index or not math.isclose(other.size, self.size):
            raise ValueError(f"cannot merge window {other.index} into {self.index}")
        self.requests += other.requests
        for kind, n in other.failures.items():
            self.failures[kind] = self.failures.get(kind, 0) + n
        self.latency.add(other.latency)
        self.latency_sum_us += other.latency_sum_us
        self.labelled += other.labelled
        self.correct += other.correct
        self.fallbacks += other.fallbacks
        self.fallback_flagged += other.fallback_flagged
        self.probes.update(other.probes)
        for version, counts in other.versions.items():
            mine = self.version(version)
            mine.index = counts.index  # merge_windows re-keys a scope total the same way
            mine.merge(counts)
            mine.index = self.index
        for name, d in other.generation.items():
            self.distribution(name).add(d)
        for reason, n in other.finish_reasons.items():
            self.finish_reasons[reason] = self.finish_reasons.get(reason, 0) + n
        self.activity += other.activity
        self.carried_ok += other.carried_ok
        self.carried_failed += other.carried_failed

    def version(self, name: str) -> Window:
        """The counts of responses served by model version `name` in this window."""
        counts = self.versions.get(name)
        if counts is None:
            counts = self.versions[name] = Window(index=self.index, size=self.size)
        return counts

    # --- wire format: one JSON object per partial window record -------------------

    def to_record(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "size": self.size,
            "requests": self.requests,
            "failures": dict(self.failures),
            "latency": self.latency.encode().decode("ascii") if self.latency.total_count else "",
            "latency_sum_us": self.latency_sum_us,
            "labelled": self.labelled,
            "correct": self.correct,
            "fallbacks": self.fallbacks,
            "fallback_flagged": self.fallback_flagged,
            "probes": {k: v for k, v in self.probes.items() if not math.isnan(v)},  # NaN: not measured
            "activity": self.activity,
            **({"carried": [self.carried_ok, self.carried_failed]} if self.carried_ok or self.carried_failed else {}),
            **({"versions": {k: v.to_record() for k, v in self.versions.items()}} if self.versions else {}),
            **self._generation_record(),
        }

    def _generation_record(self) -> dict[str, Any]:
        if not self.generation and not self.finish_reasons:
            return {}  # a classifier's record stays as it was
        return {
            "generation": {
                name: {"hdr": d.histogram.encode().decode("ascii") if d.histogram.total_count else "", "sum": d.total}
                for name, d in self.generation.items()
            },
            "finish_reasons": dict(self.finish_reasons),
        }

    @classmethod
    def from_record(cls, rec: dict[str, Any]) -> Window:
        hist = new_latency_histogram()
        if rec.get("latency"):
            hist.add(HdrHistogram.decode(rec["latency"]))
        return cls(
            index=int(rec["index"]),
            size=float(rec["size"]),
            requests=int(rec.get("requests", 0)),
            failures={str(k): int(v) for k, v in rec.get("failures", {}).items()},
            latency=hist,
            latency_sum_us=float(rec.get("latency_sum_us", 0.0)),
            labelled=int(rec.get("labelled", 0)),
            correct=int(rec.get("correct", 0)),
            fallbacks=int(rec.get("fallbacks", 0)),
            fallback_flagged=int(rec.get("fallback_flagged", 0)),
            probes={str(k): float(v) for k, v in rec.get("probes", {}).items()},
            versions={str(k): cls.from_record(v) for k, v in rec.get("versions", {}).items()},
            generation={str(k): _distribution(v) for k, v in rec.get("generation", {}).items()},
            finish_reasons={str(k): int(v) for k, v in rec.get("finish_reasons", {}).items()},
            activity=int(rec.get("activity", 0)),  # absent in records older than the field
            carried_ok=int(rec.get("carried", (0, 0))[0]),
            carried_failed=int(rec.get("carried", (0, 0))[1]),
        )


def _distribution(rec: dict[str, Any]) -> Distribution:
    d = Distribution(total=float(rec.get("sum", 0.0)))
    if rec.get("hdr"):
        d.histogram.add(HdrHistogram.decode(rec["hdr"]))
    return d


def merge_windows(windows: list[Window]) -> Window | None:
    """One window holding everything in `windows` (for run- or scope-wide SLIs)."""
    if not windows:
        return None
    total = Window(index=windows[0].index, size=windows[0].size)
    for w in windows:
        total.index = w.index  # merge() checks the key; a scope total has no single key
        total.merge(w)
    total.index = windows[0].index
    return total
