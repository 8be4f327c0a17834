"""SLIs of generative answers (ttft, itl, tokens_per_s, output_tokens, stream_error_rate) in every
SLO form: scopes, window forms, relative forms, recovery, detection, degradation, stop_when.

Windows are built from known per-request figures recorded into real HDR histograms the
way the load recorder does (GENERATION_SCALE units), so every expected value is known.
Every form has a case that passes and one that must fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from harness.core.windows import GENERATION_SCALE, STREAM_FAILURES, Window, percentile_of
from harness.engine.load.generation import GenerationSample
from harness.engine.load.recorder import WindowRecorder
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import (
    Verdict,
    check_stop,
    evaluate,
    parse_slo,
    parse_stop,
    scope_sli,
    window_sli,
)

T0 = 1_700_000_000.0
RUN_S, FAULT = 20, (8.0, 12.0)  # a fault from +8 s to +12 s; the service is back at +14 s
PER_WINDOW = 20


def figures(t: float, k: int) -> tuple[float, float, int, bool]:
    """(ttft s, itl s, output tokens, stream cut?) for request k of the window at +t s."""
    slow = FAULT[0] <= t < FAULT[1] + 2
    ttft = (0.300 if slow else 0.040) + 0.001 * k  # 20 distinct values a window
    itl = 0.050 if slow else 0.010
    cut = slow and k % 4 == 0  # a quarter of the streams cut while slow
    return ttft, itl, 16 if slow else 64, cut


def run_windows() -> list[Window]:
    """Recorded through the load's own WindowRecorder: the figures take the real path into windows."""
    recorder = WindowRecorder(1.0)
    for second in range(RUN_S):
        for k in range(PER_WINDOW):
            start = T0 + second + k / PER_WINDOW
            ttft, itl, tokens, cut = figures(second, k)
            if cut:
                recorder.record(start, 100.0, failure="stream_cut")
                continue
            duration = ttft + itl * (tokens - 1)
            sample = GenerationSample(duration, ttft, [itl] * (tokens - 1), tokens, "stop")
            recorder.record(start, duration * 1000, generation=sample)
    merged: dict[int, Window] = {}
    for rec in recorder.drain():
        w = Window.from_record(rec)  # through the wire format, as the runner reads it
        if w.index in merged:
            merged[w.index].merge(w)
        else:
            merged[w.index] = w
    return [merged[i] for i in sorted(merged)]


def timeline() -> RunTimeline:
    return RunTimeline(run=Span("run", "run", T0, T0 + RUN_S), baseline=Span("baseline", "baseline", T0, T0 + FAULT[0]),
                       faults=[Span("slow", "fault", T0 + FAULT[0], T0 + FAULT[1], "http.stream")],
                       recovery=Span("recovery", "recovery", T0 + FAULT[1], T0 + RUN_S))


WINDOWS = run_windows()


def verdict(text: str) -> Verdict:
    return evaluate(parse_slo(text, known_scopes={"slow"}), WINDOWS, timeline())


def test_windows_hold_exactly_what_was_recorded() -> None:
    total = WINDOWS[0]
    truth = [figures(0, k)[0] for k in range(PER_WINDOW)]
    assert total.generation["ttft"].histogram.total_count == PER_WINDOW
    assert total.generation["itl"].histogram.total_count == PER_WINDOW * 63
    assert total.finish_reasons == {"stop": PER_WINDOW}
    assert window_sli("p50(ttft)", total) == pytest.approx(percentile_of(truth, 50) * 1000, rel=1e-3)  # ms
    assert window_sli("mean(output_tokens)", total) == 64
    expected_tps = 64 / (truth[0] + 0.010 * 63)
    assert window_sli("max(tokens_per_s)", total) == pytest.approx(expected_tps, rel=1e-3)
    assert scope_sli("stream_error_rate", WINDOWS, timeline(), "slow") == pytest.approx(0.25)
    assert scope_sli("stream_error_rate", WINDOWS, timeline(), "baseline") == 0
    assert set(STREAM_FAILURES) >= {"stream_cut"} and GENERATION_SCALE["ttft"] == 1e6


@pytest.mark.parametrize(("holds", "fails"), [
    # scopes: run (default), baseline, fault, a fault's name, recovery
    ("p95(ttft) < 100ms during baseline", "p95(ttft) < 100ms"),
    ("p99(itl) <= 51ms during slow", "p99(itl) < 49ms during fault"),
    ("p50(tokens_per_s) > 50 during baseline", "p50(tokens_per_s) > 50 during slow"),
    ("min(output_tokens) >= 64 during baseline", "min(output_tokens) >= 64 during recovery"),
    ("mean(ttft) < 55ms during baseline", "max(ttft) < 55ms during baseline"),
    ("stream_error_rate <= 0% during baseline", "stream_error_rate < 10% during slow"),
    # window forms
    ("p95(ttft) < 100ms in every window during baseline", "p95(ttft) < 100ms in every window"),
    ("p95(itl) < 20ms in 70% of windows", "p95(itl) < 20ms in 80% of windows"),
    ("p95(ttft) < 100ms for 7s", "p95(ttft) < 100ms for 5s"),
    ("stream_error_rate < 5% for 7s", "stream_error_rate < 5% for 5s"),
    # relative forms
    ("p95(ttft) during slow < 8 * p95(ttft) during baseline",
     "p95(ttft) during slow < 2 * p95(ttft) during baseline"),
    ("p50(tokens_per_s) during slow > 0.1 * p50(tokens_per_s) during baseline",
     "p50(tokens_per_s) during slow > 0.5 * p50(tokens_per_s) during baseline"),
    # recovery and detection on the new SLIs
    ("recovery_time(p95(ttft) < 100ms) < 3s", "recovery_time(p95(ttft) < 100ms) < 1s"),
    ("recovery_time(stream_error_rate < 1%) < 3s", "recovery_time(stream_error_rate < 1%) < 1s"),
    ("detection_time(p95(ttft) > 200ms) < 2s", "detection_time(p95(ttft) > 1s) < 2s"),
    # degradation: ttft worse up; tokens/s worse down
    ("degradation(p95(ttft)) < 10", "degradation(p95(ttft)) < 4"),
    ("degradation(p50(tokens_per_s)) < 10", "degradation(p50(tokens_per_s)) < 4"),
])
def test_each_form_holds_and_fails(holds: str, fails: str) -> None:
    good, bad = verdict(holds), verdict(fails)
    assert good.passed is True, good.detail
    assert bad.passed is False, bad.detail


def test_units_in_verdicts() -> None:
    assert verdict("p95(ttft) < 100ms during baseline").unit == "ms"
    assert verdict("p50(tokens_per_s) > 50 during baseline").unit == "tokens/s"
    assert verdict("max(output_tokens) <= 64").unit == "tokens"
    assert verdict("stream_error_rate < 1%").unit == "fraction"


def test_stop_when_on_stream_errors() -> None:
    live = RunTimeline(run=Span("run", "run", T0, None))
    assert check_stop(parse_stop("stream_error_rate > 20% for 3s"), WINDOWS, live) is not None
    assert check_stop(parse_stop("stream_error_rate > 30% for 3s"), WINDOWS, live) is None
    assert check_stop(parse_stop("p95(ttft) > 250ms for 3s"), WINDOWS, live) is not None


def test_not_measured_without_streamed_answers() -> None:
    w = Window(index=int(T0), size=1.0, requests=5)
    w.latency.record_value(1000)  # answered, but not streamed: no ttft
    v = evaluate(parse_slo("p95(ttft) < 1s"), [w], RunTimeline(run=Span("run", "run", T0, T0 + 1)))
    assert v.passed is None and v.measured is None and "not measured" in v.detail and "no ttft" in v.detail


@pytest.mark.parametrize(("text", "message"), [
    ("p95(ttft) < 250", "time"),  # a time needs a unit
    ("ttft < 1s", "ttft needs a statistic"),
    ("p95(tokens_per_s) < 5ms", "cannot compare"),
    ("p95(ttfb) < 1s", "did you mean 'ttft'"),
    ("stream_error_rate > 200%", "never"),
])
def test_mistakes_are_refused(text: str, message: str) -> None:
    with pytest.raises(Exception, match=message):
        parse_slo(text)


def test_recorder_keeps_per_request_cost_in_bulk() -> None:
    """One sample of many tokens buckets into one histogram step, counts exact."""
    recorder = WindowRecorder(1.0)
    gaps = list(np.linspace(0.001, 0.002, 999))
    recorder.record(T0, 1500.0, generation=GenerationSample(1.5, 0.2, gaps, 1000, "length"))
    first, later = (Window.from_record(r) for r in sorted(recorder.drain(), key=lambda r: r["index"]))
    w = first  # the window the request started in holds its figures
    assert w.generation["itl"].histogram.total_count == 999 and w.finish_reasons == {"length": 1}
    assert w.generation["output_tokens"].total == 1000
    # activity where it happened: tokens at 0.2 s + the gaps (1.7 s in all), the end at 1.5 s
    arrivals = T0 + 0.2 + np.concatenate([[0.0], np.cumsum(gaps)])
    assert later.requests == 0 and later.activity == int((arrivals >= T0 + 1).sum()) + 1
    assert first.activity + later.activity == 1000 + 1
