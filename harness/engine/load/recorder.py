"""WindowRecorder: buckets request samples into windows and hands out partial records.

Each sample goes to the window its request started in (index = floor(start / size)).
`drain()` returns a record for each window that got samples since the last drain and
forgets them: records are deltas, and the runner adds records with the same index, so
late completions and several processes need no special case. No Locust import here.

Apart from that, each window counts its `activity` by when it happened: every request's
completion (start + latency, success or failure) and every streamed token's arrival
(start + TTFT + the gaps). A long stream keeps the windows it spans active although no
request started in them, so they are not taken for a stall (harness.engine.slo.series).
A request that ended in a later window than it started in is also counted there by outcome
(`carried_ok`/`carried_failed`): after a stall, these are the requests that were stuck in it.

Recording is on every request's path, so a success only appends its start and latency
to two lists; `drain()` (once per window tick) buckets the batch with numpy and adds it
to the HDR histograms in one step (`record_values`): the same counts `record_value`
would give, for a fraction of its per-request cost (benchmarks/README-load.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from hdrh.histogram import HdrHistogram

from harness.core.protocols import Decoded, same_prediction
from harness.core.windows import GENERATION_SCALE, Window
from harness.engine.load.generation import GenerationSample


def record_values(histogram: HdrHistogram, values: np.ndarray) -> None:
    """`histogram.record_value(v)` for every v in `values` (integers >= 0), in one step.

    The counts index is hdrh's own arithmetic (`_counts_index_for`), vectorised: the
    bit length of `v | sub_bucket_mask` picks the bucket. Values beyond the histogram's
    range are dropped, as `record_value` drops them."""
    if not len(values):
        return
    h = histogram
    v = values.astype(np.int64)
    # the bit length of a positive integer below 2**53 is frexp's exponent, exactly
    bit_length = np.frexp((v | h.sub_bucket_mask).astype(np.float64))[1].astype(np.int64)
    bucket = bit_length - h.unit_magnitude - (h.sub_bucket_half_count_magnitude + 1)
    sub_bucket = v >> (bucket + h.unit_magnitude)
    index = (
        ((bucket + 1) << h.sub_bucket_half_count_magnitude) + sub_bucket - h.sub_bucket_half_count
    )
    kept = (index >= 0) & (index < h.counts_len)
    if not kept.all():
        v, index = v[kept], index[kept]
        if not len(v):
            return
    counts = np.ctypeslib.as_array(h.counts)  # a view: hdrh's counters, encoded as they are
    counts += np.bincount(index, minlength=h.counts_len).astype(counts.dtype)
    h.total_count += len(v)
    h.min_value = min(h.min_value, int(v.min()))
    h.max_value = max(h.max_value, int(v.max()))


def _by_window(index: np.ndarray, us: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """The latencies `us` split by their window `index`: (index, latencies) per window."""
    if not len(index):
        return []
    if index[0] == index[-1] and (index == index[0]).all():  # the usual: one window
        return [(int(index[0]), us)]
    order = np.argsort(index, kind="stable")
    keys, firsts = np.unique(index[order], return_index=True)
    return list(zip(keys.tolist(), np.split(us[order], firsts[1:])))


def _counts_by_key(keys: np.ndarray) -> list[tuple[int, int]]:
    """(window index, how many) for each index in `keys` (none for an empty array)."""
    if not len(keys):
        return []
    first = int(keys.min())
    counts = np.bincount(keys - first)
    return [(first + offset, int(counts[offset])) for offset in np.flatnonzero(counts).tolist()]


def _token_arrivals(start: float, g: GenerationSample) -> np.ndarray:
    """When each streamed token of `g` arrived (Unix s): the start, + TTFT, + each gap."""
    return start + np.cumsum([g.ttft_s, *g.itl_s])


def _count_successes(w: Window, latencies_us: np.ndarray) -> None:
    w.requests += len(latencies_us)
    record_values(w.latency, latencies_us)
    w.latency_sum_us += int(latencies_us.sum())


def _count_failure(w: Window, kind: str) -> None:
    w.requests += 1
    w.failures[kind] = w.failures.get(kind, 0) + 1


class WindowRecorder:
    bucket_every = 65_536  # pending successes bucketed before drain() at the latest

    def __init__(self, size: float) -> None:
        self.size = size
        self._open: dict[int, Window] = {}
        self._bucketed = 0  # requests already in a window
        # successes not yet in a window: start times (Unix s), latencies (ms), and for the
        # few that carry a fallback flag or labels, (position, decoded, labels)
        self._starts: list[float] = []
        self._latencies_ms: list[float] = []
        self._outcomes: list[tuple[int, Decoded, Sequence[Any] | None]] = []
        self._versions: list[str | None] = []  # the model version each success named, if any
        self._generations: list[tuple[int, GenerationSample]] = []  # (position, figures)

    @property
    def requests(self) -> int:
        """Everything recorded, drained or not (a process's own total)."""
        return self._bucketed + len(self._starts)

    def window_for(self, start_time: float) -> Window:
        return self._window(math.floor(start_time / self.size))

    def _window(self, index: int) -> Window:
        w = self._open.get(index)
        if w is None:
            w = self._open[index] = Window(index=index, size=self.size)
        return w

    def record(
        self,
        start_time: float,
        latency_ms: float,
        failure: str | None = None,
        decoded: Decoded | None = None,
        labels: Sequence[Any] | None = None,
        generation: GenerationSample | None = None,
    ) -> None:
        if failure is not None:  # rare: straight into its window
            w = self.window_for(start_time)
            self._bucketed += 1
            ended = self.window_for(start_time + latency_ms / 1000)
            ended.activity += 1  # it ended then
            if ended.index > w.index:
                ended.carried_failed += 1
            if generation is not None and generation.ttft_s is not None:  # a stream that failed midway:
                for t in _token_arrivals(start_time, generation):  # its tokens came all the same
                    self.window_for(float(t)).activity += 1
            _count_failure(w, failure)
            if decoded is not None and decoded.model_version is not None:
                _count_failure(w.version(decoded.model_version), failure)
            return
        if decoded is not None and (decoded.fallback is not None or labels is not None):
            self._outcomes.append((len(self._starts), decoded, labels))
        if generation is not None:
            self._generations.append((len(self._starts), generation))
        self._starts.append(start_time)
        self._latencies_ms.append(latency_ms)
        self._versions.append(decoded.model_version if decoded is not None else None)
        if len(self._starts) >= self.bucket_every:  # long windows: keep the batch bounded
            self._bucket_successes()

    def drain(self) -> list[dict[str, Any]]:
        self._bucket_successes()
        records = [w.to_record() for w in self._open.values()]
        self._open = {}
        return records

    def _bucket_successes(self) -> None:
        """Put the pending successes into their windows: counts, HDR latency, outcomes."""
        if not self._starts:
            return
        starts, latencies_ms, outcomes = self._starts, self._latencies_ms, self._outcomes
        versions, generations = self._versions, self._generations
        self._starts, self._latencies_ms, self._outcomes = [], [], []
        self._versions, self._generations = [], []
        self._bucketed += len(starts)
        # the same float arithmetic as math.floor(start / size) and round(ms * 1000)
        start_s = np.array(starts)
        index = np.floor(start_s / self.size).astype(np.int64)
        us = np.maximum(1, np.rint(np.array(latencies_ms) * 1000)).astype(np.int64)
        for key, part in _by_window(index, us):
            _count_successes(self._window(key), part)
        ends = start_s + np.array(latencies_ms) / 1000
        self._count_activity(ends)  # completions
        end_index = np.floor(ends / self.size).astype(np.int64)
        for key, n in _counts_by_key(end_index[end_index > index]):
            self._window(key).carried_ok += n
        named = set(versions) - {None}
        if named:  # the same again per model version, for the responses that named one
            tags = np.array(versions, dtype=object)
            for version in named:
                mine = tags == version
                for key, part in _by_window(index[mine], us[mine]):
                    _count_successes(self._window(key).version(version), part)
        for position, decoded, labels in outcomes:
            w = self._window(int(index[position]))
            self._count_outcome(w, decoded, labels)
            if decoded.model_version is not None:
                self._count_outcome(w.version(decoded.model_version), decoded, labels)
        if generations:
            self._bucket_generations(index, generations)
            self._count_token_arrivals(start_s, generations)

    def _count_activity(self, times: np.ndarray) -> None:
        """One unit of activity in the window of each Unix time in `times`."""
        for key, n in _counts_by_key(np.floor(times / self.size).astype(np.int64)):
            self._window(key).activity += n

    def _count_token_arrivals(self, start_s: np.ndarray, generations: list[tuple[int, GenerationSample]]) -> None:
        """Each streamed token where it arrived: the request's start + TTFT + the gaps before it.

        One cumulative sum over the whole batch (times from the batch's first start, so the
        sum stays small and exact to well under a µs), less each answer's offset."""
        starts = start_s.tolist()
        origin = starts[0]
        steps: list[float] = []
        lengths: list[int] = []
        for position, g in generations:
            if g.ttft_s is not None:
                steps.append(starts[position] - origin + g.ttft_s)
                steps.extend(g.itl_s)
                lengths.append(1 + len(g.itl_s))
        if not steps:
            return
        summed = np.array(steps, dtype=np.float64).cumsum()
        ends = np.array(lengths, dtype=np.int64).cumsum()
        before = np.concatenate([[0.0], summed[ends[:-1] - 1]])  # the sums of the answers before each
        self._count_activity(origin + summed - np.repeat(before, lengths))

    def _bucket_generations(self, index: np.ndarray, generations: list[tuple[int, GenerationSample]]) -> None:
        """Generative answers' figures into their requests' windows (GENERATION_SCALE units)."""
        by_window: dict[int, dict[str, list[float]]] = {}
        for position, g in generations:
            key = int(index[position])
            values = by_window.get(key)
            if values is None:
                values = by_window[key] = {name: [] for name in GENERATION_SCALE}
            if g.ttft_s is not None:
                values["ttft"].append(g.ttft_s)
            values["itl"].extend(g.itl_s)
            if g.output_tokens is not None:
                values["output_tokens"].append(g.output_tokens)
                if g.duration_s > 0:
                    values["tokens_per_s"].append(g.output_tokens / g.duration_s)
            if g.finish_reason is not None:
                reasons = self._window(key).finish_reasons
                reasons[g.finish_reason] = reasons.get(g.finish_reason, 0) + 1
        for key, values in by_window.items():
            w = self._window(key)
            for name, raw in values.items():
                if not raw:
                    continue
                scaled = np.rint(np.array(raw, dtype=np.float64) * GENERATION_SCALE[name]).astype(np.int64)
                if name in ("ttft", "itl"):
                    scaled = np.maximum(scaled, 1)  # as latency: 1 µs at least
                d = w.distribution(name)
                record_values(d.histogram, scaled)
                d.total += float(scaled.sum())

    @staticmethod
    def _count_outcome(w: Window, decoded: Decoded, labels: Sequence[Any] | None) -> None:
        if decoded.fallback is not None:  # None: the response did not say
            w.fallback_flagged += 1
            w.fallbacks += decoded.fallback
        if (
            labels is not None
            and decoded.predictions is not None
            and len(labels) == len(decoded.predictions)
        ):
            w.labelled += len(labels)
            w.correct += sum(same_prediction(p, y) for p, y in zip(decoded.predictions, labels))
