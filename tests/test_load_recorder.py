"""The pure parts of the load engine: window bucketing, failure kinds, shapes, config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from harness.core.protocols import Decoded
from harness.core.windows import Window
from harness.engine.load.config import LoadConfig
from harness.engine.load.failures import DecodeFailure, failure_kind
from harness.engine.load.recorder import WindowRecorder
from harness.engine.load.shape_profiles import users_at


def test_samples_go_to_the_window_their_request_started_in() -> None:
    rec = WindowRecorder(0.1)
    rec.record(100.05, 250.0)  # started in window 1000, finished 250 ms later
    rec.record(100.15, 5.0, failure="http_503")
    rec.record(100.12, 10.0, decoded=Decoded(predictions=[1, 2], fallback=True), labels=[1, 0])
    records = {r["index"]: Window.from_record(r) for r in rec.drain()}
    assert set(records) == {1000, 1001}
    assert records[1000].requests == 1 and records[1000].latency.get_max_value() == pytest.approx(
        250_000, rel=1e-3
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
        merged[50].merge(Window.from_record(r))
    assert merged[50].requests == 100 and merged[50].latency.total_count == 100
    assert merged[50].latency.get_value_at_percentile(50) == pytest.approx(50_000, rel=2e-3)


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
