"""The pure parts of the load engine: window bucketing, failure kinds, shapes, config."""

from __future__ import annotations

import math

import numpy as np
import pytest
from pydantic import ValidationError

from harness.core.protocols import Decoded
from harness.core.windows import Window, new_latency_histogram
from harness.engine.load.config import LoadConfig
from harness.engine.load.failures import DecodeFailure, failure_kind
from harness.engine.load.recorder import WindowRecorder, record_values
from harness.engine.load.shape_profiles import users_at


def test_samples_go_to_the_window_their_request_started_in() -> None:
    rec = WindowRecorder(0.1)
    rec.record(100.05, 280.0)  # started in window 1000, finished 280 ms later
    rec.record(100.15, 5.0, failure="http_503")
    rec.record(100.12, 10.0, decoded=Decoded(predictions=[1, 2], fallback=True), labels=[1, 0])
    records = {r["index"]: Window.from_record(r) for r in rec.drain()}
    assert set(records) == {1000, 1001, 1003}  # 1003: where the first one ended (100.33 s)
    assert {i: w.activity for i, w in records.items()} == {1000: 0, 1001: 2, 1003: 1}
    assert records[1003].requests == 0
    assert records[1000].requests == 1 and records[1000].latency.get_max_value() == pytest.approx(
        280_000, rel=1e-3
    )
    w = records[1001]
    assert (w.requests, w.failures, w.fallbacks, w.labelled, w.correct) == (
        2,
        {"http_503": 1},
        1,
        2,
        1,
    )
    assert w.latency.total_count == 1 and w.latency_sum_us == 10_000
    assert rec.drain() == [] and rec.requests == 3  # drained records are deltas


def test_only_responses_that_carried_the_fallback_flag_count_for_the_fallback_rate() -> None:
    rec = WindowRecorder(1.0)
    for flag in (None, None, False, True):  # None: the response did not say
        rec.record(7.5, 1.0, decoded=Decoded(predictions=[0], fallback=flag))
    (w,) = [Window.from_record(r) for r in rec.drain()]
    assert (w.succeeded, w.fallback_flagged, w.fallbacks) == (4, 2, 1)


def test_delta_records_merge_exactly() -> None:
    rec = WindowRecorder(1.0)
    merged: dict[int, Window] = {}
    for i in range(100):
        rec.record(50.0 + i / 100, latency_ms=1 + i)
        if i % 7 == 0:
            for r in rec.drain():
                w = Window.from_record(r)
                merged.setdefault(w.index, Window(index=w.index, size=1.0)).merge(w)
    for r in rec.drain():
        w = Window.from_record(r)
        merged.setdefault(w.index, Window(index=w.index, size=1.0)).merge(w)
    assert merged[50].requests == 100 and merged[50].latency.total_count == 100
    # completions by when they happened: start 50 + i/100 s, i + 1 ms later; from i = 91 in window 51
    assert (merged[50].activity, merged[51].activity, merged[51].requests) == (91, 9, 0)
    assert merged[50].latency.get_value_at_percentile(50) == pytest.approx(50_000, rel=2e-3)


def test_batched_recording_gives_the_windows_record_value_gives_sample_by_sample() -> None:
    """The truth: hdrh's own record_value, one sample at a time, as the recorder once did."""
    rng = np.random.default_rng(7)
    n = 20_000
    starts = 100.0 + rng.uniform(0, 0.7, n)  # 0.1 s windows: 7-8 of them, float edges included
    latencies_ms = np.concatenate(
        [
            rng.lognormal(3, 1.5, n - 6),  # 20 ms-ish, up to minutes
            [0.0, 0.0004, 0.0005, 0.0015, 1.0005, 4e6],  # < 1 us, rounding halves, beyond 1 h
        ]
    )
    rec = WindowRecorder(0.1)
    rec.bucket_every = 997  # batches bucketed mid-stream too, not only at the drain
    truth: dict[int, Window] = {}
    for i, (start, ms) in enumerate(zip(starts.tolist(), latencies_ms.tolist())):
        decoded = Decoded(predictions=[i % 3], fallback=bool(i % 2)) if i % 5 == 0 else None
        labels = [0] if i % 10 == 0 else None
        rec.record(start, ms, decoded=decoded, labels=labels)
        w = truth.setdefault(
            math.floor(start / 0.1), Window(index=math.floor(start / 0.1), size=0.1)
        )
        us = max(1, round(ms * 1000))
        ended = math.floor((start + ms / 1000) / 0.1)  # activity: where the request ended
        truth.setdefault(ended, Window(index=ended, size=0.1)).activity += 1
        truth[ended].carried_ok += ended > w.index  # ended in a later window than it started
        w.requests += 1
        w.latency.record_value(us)
        w.latency_sum_us += us
        if decoded is not None:
            w.fallback_flagged += 1
            w.fallbacks += decoded.fallback
            if labels is not None:
                w.labelled += 1
                w.correct += decoded.predictions == labels
        if i == n // 2:
            rec.record(start, ms, failure="timeout")
            w.requests += 1
            w.failures["timeout"] = 1
            ended = math.floor((start + ms / 1000) / 0.1)
            truth[ended].activity += 1
            truth[ended].carried_failed += ended > w.index
    assert rec.requests == n + 1
    got = {r["index"]: r for r in rec.drain()}
    assert got == {i: w.to_record() for i, w in truth.items()}
    for i, w in truth.items():  # the histograms themselves, not only their encoding
        if not w.requests:
            continue  # a window only requests ended in: no histogram to compare
        h = Window.from_record(got[i]).latency
        assert (h.total_count, h.min_value, h.max_value) == (
            w.latency.total_count,
            w.latency.get_min_value(),
            w.latency.get_max_value(),
        )

    values = rng.integers(0, 2**40, 5000)  # every bucket, and beyond the histogram's range
    one_by_one, at_once = new_latency_histogram(), new_latency_histogram()
    for v in values.tolist():
        one_by_one.record_value(v)
    record_values(at_once, values)
    assert list(at_once.counts) == list(one_by_one.counts)
    assert (at_once.total_count, at_once.min_value, at_once.max_value) == (
        one_by_one.total_count,
        one_by_one.min_value,
        one_by_one.max_value,
    )


class _Response:
    def __init__(self, status_code: int) -> None:
        self.status_code = status_code


def test_failure_kinds() -> None:
    assert failure_kind(Exception("x"), _Response(503)) == "http_503"
    assert failure_kind(TimeoutError()) == "timeout"
    assert failure_kind(ConnectionRefusedError()) == "connection"
    assert failure_kind(DecodeFailure("bad")) == "decode"

    class RetriesExceeded(Exception):
        original = TimeoutError("timed out")

    assert failure_kind(RetriesExceeded()) == "timeout"
    assert failure_kind(ValueError(), _Response(0)) == "valueerror"


def _cfg(**kw: object) -> LoadConfig:
    return LoadConfig(target_url="http://127.0.0.1:1", dataset="d.npz", **kw)  # type: ignore[arg-type]  # the test passes arbitrary field overrides


def test_shape_profiles() -> None:
    ramp = _cfg(
        users=10, duration="10s", shape={"kind": "ramp", "start_users": 0, "ramp_time": "5s"}
    )
    assert [users_at(ramp, t) for t in (0, 2.5, 5, 9)] == [0, 5, 10, 10] and users_at(
        ramp, 10
    ) is None
    step = _cfg(users=6, duration=10, shape={"kind": "step", "step_users": 2, "step_time": "2s"})
    assert [users_at(step, t) for t in (0, 2, 4, 8)] == [2, 4, 6, 6]
    spike = _cfg(
        duration=10,
        shape={"kind": "spike", "base_users": 1, "spike_users": 9, "at": 3, "spike_duration": 2},
    )
    assert [users_at(spike, t) for t in (2.9, 3, 4.9, 5)] == [1, 9, 9, 1]


def test_config_errors() -> None:
    with pytest.raises(ValidationError, match="dataset"):
        LoadConfig(target_url="http://127.0.0.1:1", duration=1)
    with pytest.raises(ValidationError, match="not both"):
        _cfg(duration=1, processes=2, expect_workers=2)
    with pytest.raises(ValidationError, match="window"):
        _cfg(duration=1, window="50ms")
    with pytest.raises(ValidationError, match="class_path"):
        _cfg(duration=1, shape={"kind": "custom", "class_path": "no-colon"})
    assert _cfg(duration="2m", window="100ms", request_timeout="250ms").window == 0.1


def test_response_decoder_remembers_bodies_and_still_rejects_garbage() -> None:
    from harness.core.protocols import DecodeError, make_adapter
    from harness.engine.load import response_decoder
    from harness.engine.load.response_decoder import ResponseDecoder

    calls = []
    adapter = make_adapter("oip-v2")
    real = adapter.decode
    adapter.decode = lambda body: calls.append(body) or real(body)  # counts the real decoding
    decoder = ResponseDecoder(adapter)
    body = b'{"model_name":"m","model_version":"3","outputs":[{"name":"y","shape":[1],"datatype":"INT64","data":[1]}]}'
    first = decoder.decode(body)
    assert decoder.decode(bytes(body)) == first == Decoded(predictions=[1], model_version="3")
    assert len(calls) == 1, "the same bytes are decoded once"
    with pytest.raises(ValueError):
        decoder.decode(b"not json")
    with pytest.raises(DecodeError):
        decoder.decode(b'{"no": "outputs"}')
    with pytest.raises(ValueError):
        decoder.decode(b"not json")  # errors are never remembered as answers
    for i in range(response_decoder.MAX_ENTRIES + 5):  # a full memory is dropped, not grown
        decoder.decode(body.replace(b'"3"', f'"{i}"'.encode()))
    assert len(decoder._known) <= response_decoder.MAX_ENTRIES


def test_activity_counts_tokens_of_a_stream_that_failed_where_they_arrived() -> None:
    """A stream stalled after 3 tokens: its tokens and its end are progress in their windows."""
    from harness.engine.load.generation import GenerationSample

    rec = WindowRecorder(0.5)
    partial = GenerationSample(duration_s=0.7, ttft_s=0.3, itl_s=[0.2, 0.2], output_tokens=3)
    rec.record(100.0, 2200.0, failure="stream_stalled", generation=partial)  # tokens at +0.3, +0.5, +0.7
    records = {r["index"]: Window.from_record(r) for r in rec.drain()}
    assert {i: (w.requests, w.activity) for i, w in records.items()} == {200: (1, 1), 201: (0, 2), 204: (0, 1)}
