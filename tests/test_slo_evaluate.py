"""Evaluating SLOs over windows built from known latencies recorded into real HDR histograms."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable

import pytest

from harness.core.windows import Window, latency_percentile_us, percentile_of
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import (
    SloSettings,
    check_stop,
    evaluate,
    parse_slo,
    parse_stop,
    scope_sli,
    window_sli,
    window_summary,
)

T0 = 1_700_000_000.0  # a whole second on the Unix clock: window k starts at T0 + k * size


def record(
    w: Window, latency_s: float | None, label: bool | None = None, fallback: bool | None = False
) -> None:
    """One request into `w`: a latency for a success, None for a failure (timeout)."""
    w.requests += 1
    if latency_s is None:
        w.failures["timeout"] = w.failures.get("timeout", 0) + 1
        return
    us = round(latency_s * 1e6)
    w.latency.record_value(us)
    w.latency_sum_us += us
    if label is not None:
        w.labelled += 1
        w.correct += int(label)
    if fallback is not None:  # None: the response carried no fallback flag
        w.fallback_flagged += 1
        w.fallbacks += int(fallback)


def simulate(
    start: float,
    end: float,
    latency_at: Callable[[float], float | None],
    size: float = 1.0,
    rate: float = 50.0,
    probes: dict[float, dict[str, float]] | None = None,
) -> list[Window]:
    """Requests start every 1/rate s in [start, end); each goes into the window it started in."""
    windows: dict[int, Window] = {}
    n = round((end - start) * rate)
    for k in range(n):
        t = start + k / rate
        idx = math.floor(t / size + 1e-9)
        w = windows.setdefault(idx, Window(index=idx, size=size))
        record(w, latency_at(t - T0))
    for t, values in (probes or {}).items():
        idx = math.floor((T0 + t) / size + 1e-9)
        windows.setdefault(idx, Window(index=idx, size=size)).probes.update(values)
    return [windows[i] for i in sorted(windows)]


def timeline(end: float, baseline: float, faults: list[tuple[str, float, float]]) -> RunTimeline:
    """Offsets in seconds from T0; recovery runs from the last fault's end to the run's end."""
    spans = [Span(name, "fault", T0 + a, T0 + b, "network.latency") for name, a, b in faults]
    last = max((b for _, _, b in faults), default=baseline)
    return RunTimeline(
        run=Span("run", "run", T0, T0 + end),
        baseline=Span("baseline", "baseline", T0, T0 + baseline),
        faults=spans,
        recovery=Span("recovery", "recovery", T0 + last, T0 + end),
    )


def check(text: str, windows: list[Window], tl: RunTimeline, settings: SloSettings | None = None):
    return evaluate(parse_slo(text), windows, tl, settings)


# --- SLIs ------------------------------------------------------------------------------------


def exact_window() -> Window:
    """100 successes of 10, 20, ..., 1000 µs: values below 2048 µs are exact in the histogram."""
    w = Window(index=int(T0), size=1.0)
    for k in range(1, 101):
        record(w, k * 10e-6, label=(k % 4 != 0), fallback=(k % 10 == 0))
    for _ in range(25):
        record(w, None)
    return w


def test_window_slis_are_exact_where_the_histogram_is_exact() -> None:
    w = exact_window()
    assert window_sli("p50(latency)", w) == pytest.approx(0.5)
    assert window_sli("p95(latency)", w) == pytest.approx(0.95)
    assert window_sli("p99.9(latency)", w) == pytest.approx(1.0)
    assert window_sli("max(latency)", w) == pytest.approx(1.0)
    assert window_sli("min(latency)", w) == pytest.approx(0.01)
    assert window_sli("mean(latency)", w) == pytest.approx(0.505)
    assert window_sli("error_rate", w) == pytest.approx(0.2)
    assert window_sli("availability", w) == pytest.approx(0.8)
    assert window_sli("throughput", w) == pytest.approx(125)
    assert window_sli("requests", w) == 125
    assert window_sli("accuracy", w) == pytest.approx(0.75)
    assert window_sli("fallback_rate", w) == pytest.approx(0.1)
    summary = window_summary(w)
    assert summary["p95_ms"] == pytest.approx(0.95) and summary["error_rate"] == pytest.approx(0.2)


def test_plain_values_and_histograms_share_the_nearest_rank_percentile() -> None:
    """One slow answer in 15 is the p95 (at most 5 % may lie above it), for plain lists (the
    attacks' figures) and histograms alike; linear interpolation would report 264.4 ms."""
    values_ms = [20.0] * 14 + [278.0]
    assert percentile_of(values_ms, 95) == 278.0 and percentile_of(values_ms, 93) == 20.0
    assert percentile_of(reversed(values_ms), 95) == 278.0  # order does not matter
    w = Window(index=int(T0), size=1.0)
    for ms in values_ms:
        record(w, ms / 1000)
    for p in (50, 93, 95, 99):
        assert latency_percentile_us(w.latency, p) / 1000 == pytest.approx(
            percentile_of(values_ms, p), rel=1e-3
        )
    with pytest.raises(ValueError, match="not measured"):
        percentile_of([], 95)


def test_scope_percentiles_merge_histograms_exactly() -> None:
    rng = random.Random(7)
    truth: list[float] = []
    windows = []
    for k in range(10):  # windows with very different latency levels
        w = Window(index=int(T0) + k, size=1.0)
        for _ in range(200):
            lat = rng.lognormvariate(math.log(0.02 * (k + 1)), 0.5)
            truth.append(lat)
            record(w, lat)
        windows.append(w)
    tl = timeline(10, 10, [])
    truth.sort()
    for p in (50, 95, 99, 99.9):
        expected = truth[max(1, int(p / 100 * len(truth) + 0.5)) - 1] * 1000
        assert scope_sli(f"p{p}(latency)", windows, tl) == pytest.approx(expected, rel=2e-3)
    mean_of_window_p95 = sum(window_sli("p95(latency)", w) for w in windows) / len(windows)
    assert abs(scope_sli("p95(latency)", windows, tl) - mean_of_window_p95) > 10  # not an average
    assert scope_sli("mean(latency)", windows, tl) == pytest.approx(sum(truth) / len(truth) * 1000)


# --- plain comparisons in scopes ---------------------------------------------------------------


def slow_store_run() -> tuple[list[Window], RunTimeline]:
    """60 s: 20 ms normally, 300 ms during the fault [15, 35), back to 20 ms at 38.0."""

    def lat(t: float) -> float:
        return 0.3 if 15 <= t < 38 else 0.02

    return simulate(T0, T0 + 60, lat), timeline(60, 15, [("slow-feature-store", 15, 35)])


def test_scoped_latency_verdict_and_detail() -> None:
    windows, tl = slow_store_run()
    v = check("p95(latency) < 250ms during slow-feature-store", windows, tl)
    assert v.passed is False
    assert v.measured == pytest.approx(300, rel=1e-3) and v.threshold == pytest.approx(250)
    assert v.unit == "ms" and v.scope == "slow-feature-store"
    assert v.detail.startswith("p95(latency) during slow-feature-store was 300")
    assert v.detail.endswith("expected < 250 ms")
    assert len(v.per_window) == 20 and all(p.ok is False for p in v.per_window)
    assert check("p95(latency) < 25ms during baseline", windows, tl).passed is True
    assert check("p50(latency) < 25ms", windows, tl).passed is True  # run: 37 of 60 s fast
    assert check("p95(latency) < 25ms", windows, tl).passed is False


def test_relative_form() -> None:
    windows, tl = slow_store_run()
    v = check("p95(latency) during fault < 2 * p95(latency) during baseline", windows, tl)
    assert v.passed is False
    assert v.threshold == pytest.approx(40, rel=1e-3)
    assert "2 * p95(latency) during baseline = 40" in v.detail
    assert check(
        "p95(latency) during fault < 20 * p95(latency) during baseline", windows, tl
    ).passed


def test_rates_accuracy_and_fallbacks() -> None:
    windows, tl = slow_store_run()
    fault_windows = [w for w in windows if T0 + 15 <= w.start < T0 + 35]
    for w in fault_windows[:2]:  # two windows of 50 requests: 10 failures each
        w.failures["http_503"] = 10
    v = check("error_rate <= 1% during fault", windows, tl)
    assert v.measured == pytest.approx(20 / 1000) and v.passed is False and v.unit == "fraction"
    assert "2%" in v.detail
    assert check("availability >= 99.5%", windows, tl).measured == pytest.approx(1 - 20 / 3000)
    assert check("throughput >= 49", windows, tl).measured == pytest.approx(50)
    v = check("accuracy >= 0.9", windows, tl)
    assert (
        v.passed is None and "no labelled response" in v.detail
    )  # no labels: no data, not a failure
    for w in windows:
        w.labelled, w.correct = 10, 9
    assert check("accuracy >= 0.9 during recovery", windows, tl).passed is True
    assert check("fallback_rate < 1%", windows, tl).measured == 0


def test_fallback_rate_without_a_fallback_flag_is_not_measured() -> None:
    """A target that never says whether it answered from a fallback has no fallback rate
    (not 0 %); one that says so in some responses is judged on those."""
    windows, tl = slow_store_run()
    for w in windows:
        w.fallbacks = w.fallback_flagged = 0
    v = check("fallback_rate < 1%", windows, tl)
    assert v.passed is None and v.measured is None, v  # must not pass on a figure of nothing
    assert "no response carried the fallback flag" in v.detail
    assert window_summary(windows[0])["fallback_rate"] is None
    for w in windows[:30]:  # half the run says "fallback: false" in half its responses
        w.fallback_flagged = w.succeeded // 2
    windows[20].fallbacks = windows[20].fallback_flagged
    v = check("fallback_rate < 1%", windows, tl)
    assert v.passed is False and v.measured == pytest.approx(1 / 30), v
    assert check("fallback_rate < 5%", windows, tl).passed is True


def test_exact_threshold_is_inclusive() -> None:
    w = Window(index=int(T0), size=1.0)
    for k in range(1000):
        record(w, 0.001 if k >= 5 else None)
    tl = timeline(1, 1, [])
    assert check("availability >= 99.5%", [w], tl).passed is True
    assert check("availability > 99.5%", [w], tl).passed is False


def test_unknown_scope_and_empty_scope_are_no_data() -> None:
    windows, tl = slow_store_run()
    v = check("p95(latency) < 1s during never-injected", windows, tl)
    assert v.passed is None and "no span named 'never-injected'" in v.detail


def test_all_failed_scope_fails_instead_of_looking_healthy() -> None:
    windows = simulate(T0, T0 + 20, lambda t: None if 5 <= t < 10 else 0.01)
    tl = timeline(20, 5, [("outage", 5, 10)])
    v = check("p95(latency) < 250ms during outage", windows, tl)
    assert v.passed is False and v.measured is None and "no request completed" in v.detail
    assert check("error_rate < 1% during outage", windows, tl).measured == 1.0


def test_stalled_windows_count_as_failures() -> None:
    """Everything hangs in [5, 10): the load started no request there and recorded nothing."""
    windows = [
        w for w in simulate(T0, T0 + 20, lambda t: 0.01) if not (T0 + 5 <= w.start < T0 + 10)
    ]
    tl = timeline(20, 5, [("hang", 5, 10)])
    v = check("availability >= 99% during hang", windows, tl)
    assert v.passed is False and v.measured == 0
    v = check("p95(latency) < 250ms in every window", windows, tl)
    assert v.passed is False and "5 with no completed request" in v.detail
    run = check("availability >= 90%", windows, tl)  # 5 of 20 windows stalled
    assert run.measured == pytest.approx(0.75) and run.passed is False
    assert check("throughput >= 40", windows, tl).measured == pytest.approx(37.5)


def test_windows_after_the_load_stopped_are_no_data() -> None:
    windows = simulate(T0, T0 + 10, lambda t: 0.01)
    windows += [Window(index=int(T0) + k, size=1.0) for k in range(10, 15)]  # load stopped at 10 s
    tl = timeline(15, 5, [])
    assert check("availability >= 99.9%", windows, tl).passed is True
    v = check("p95(latency) < 1s in every window", windows, tl)
    assert v.passed is True and len([p for p in v.per_window if p.ok is not None]) == 10


# --- windowed forms ----------------------------------------------------------------------------


def test_in_every_window_and_share_of_windows() -> None:
    windows, tl = slow_store_run()
    v = check("p95(latency) < 250ms in every window during fault", windows, tl)
    assert v.passed is False and v.measured == pytest.approx(300, rel=1e-3)
    v = check("p95(latency) < 250ms in every window during baseline", windows, tl)
    assert v.passed is True and v.measured == pytest.approx(20, rel=1e-3) and v.threshold == 250
    v = check("p95(latency) < 250ms in 95% of windows", windows, tl)
    assert v.measured == pytest.approx(37 / 60) and v.unit == "fraction" and v.passed is False
    v = check("p95(latency) < 250ms in 60% of windows", windows, tl)
    assert v.passed is True and "37 of 60" in v.detail


def test_for_duration_fails_only_on_a_long_enough_stretch() -> None:
    def lat(t: float) -> float:  # two bad stretches: 4 s at [10, 14) and 6 s at [30, 36)
        return 0.4 if 10 <= t < 14 or 30 <= t < 36 else 0.02

    windows = simulate(T0, T0 + 50, lat)
    tl = timeline(50, 10, [("a", 10, 14), ("b", 30, 36)])
    v = check("p95(latency) < 300ms for 5s", windows, tl)
    assert v.passed is False and v.measured == 6 and v.threshold == 5 and v.unit == "s"
    assert "from +30" in v.detail
    assert check("p95(latency) < 300ms for 7s", windows, tl).passed is True
    assert check("p95(latency) < 300ms for 5s during a", windows, tl).passed is True


def test_windowed_relative_form_against_baseline() -> None:
    windows, tl = slow_store_run()
    v = check(
        "p95(latency) < 1.5 * p95(latency) during baseline in every window during recovery",
        windows,
        tl,
    )
    assert v.passed is False  # recovery starts at 35 but latency drops only at 38
    failed = [p for p in v.per_window if p.ok is False]
    assert [round(p.start - T0) for p in failed] == [35, 36, 37]


# --- degradation -------------------------------------------------------------------------------


def test_degradation_is_worst_fault_window_against_baseline() -> None:
    def lat(t: float) -> float:
        return 0.02 if t < 15 else 0.1 if t < 20 else 0.06 if t < 35 else 0.02

    windows = simulate(T0, T0 + 40, lat)
    tl = timeline(40, 15, [("slow", 15, 35)])
    v = check("degradation(p95(latency)) < 3", windows, tl)
    assert v.measured == pytest.approx(5, rel=2e-3) and v.passed is False and v.unit == "ratio"
    assert check("degradation(p95(latency)) < 6", windows, tl).passed is True
    assert check("degradation(throughput) <= 1", windows, tl).measured == pytest.approx(1)


def test_degradation_of_availability_with_an_outage_is_infinite() -> None:
    windows = simulate(T0, T0 + 20, lambda t: None if 8 <= t < 10 else 0.01)
    tl = timeline(20, 5, [("outage", 5, 10)])
    v = check("degradation(availability) < 2", windows, tl)
    assert v.passed is False and v.measured is None and "infinite" in v.detail


# --- recovery time -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "recover_after,size,fault_end",
    [(3.4, 1.0, 35.0), (0.0, 1.0, 35.0), (6.75, 0.5, 35.25), (2.3, 0.1, 35.05)],
)
def test_recovery_time_within_one_window(
    recover_after: float, size: float, fault_end: float
) -> None:
    recover_at = fault_end + recover_after

    def lat(t: float) -> float:
        return 0.3 if 15 <= t < recover_at else 0.02

    windows = simulate(T0, T0 + 60, lat, size=size, rate=100)
    tl = timeline(60, 15, [("slow-feature-store", 15, fault_end)])
    for text in (
        "recovery_time < 10s",
        "recovery_time(p95(latency) < 250ms) < 10s",
        "recovery_time of slow-feature-store < 10s",
    ):
        v = check(text, windows, tl)
        assert v.passed is True, v.detail
        assert abs(v.measured - recover_after) <= size + 1e-9, (text, v.measured)
        assert v.unit == "s"
    if recover_after > 2 * size:  # a threshold more than a window below the truth fails
        assert (
            check(f"recovery_time < {recover_after - size - 0.05:.2f}s", windows, tl).passed
            is False
        )


def test_recovery_time_is_the_worst_fault_unless_one_is_named() -> None:
    def lat(t: float) -> float:
        return 0.3 if 10 <= t < 14 or 30 <= t < 38 else 0.02  # a recovers 2 s late, b 5 s late

    windows = simulate(T0, T0 + 60, lat)
    tl = timeline(60, 10, [("a", 10, 12), ("b", 30, 33)])
    v = check("recovery_time(p95(latency) < 100ms) < 10s", windows, tl)
    assert (
        v.measured == pytest.approx(5) and "of b" in v.detail and "other faults: a 2 s" in v.detail
    )
    assert check(
        "recovery_time(p95(latency) < 100ms) of a < 10s", windows, tl
    ).measured == pytest.approx(2)
    assert check(
        "recovery_time(p95(latency) < 100ms) < 10s during a", windows, tl
    ).measured == pytest.approx(2)


def test_recovery_needs_n_consecutive_windows() -> None:
    def lat(
        t: float,
    ) -> float:  # a single good window at 21 inside a slow stretch: not recovered yet
        return 0.02 if t < 10 or 21 <= t < 22 or t >= 26 else 0.3

    windows = simulate(T0, T0 + 40, lat)
    tl = timeline(40, 10, [("slow", 10, 20)])
    assert check("recovery_time < 10s", windows, tl).measured == pytest.approx(6)
    one = SloSettings(recovery_windows=1)
    assert check("recovery_time < 10s", windows, tl, one).measured == pytest.approx(1)


def test_never_recovering_fails_with_a_clear_detail() -> None:
    windows = simulate(T0, T0 + 30, lambda t: 0.02 if t < 10 else 0.3)
    tl = timeline(30, 10, [("slow", 10, 20)])
    v = check("recovery_time < 10s", windows, tl)
    assert v.passed is False and v.measured is None
    assert v.detail.startswith("slow not recovered within 10 s") and "(the run ended)" in v.detail


def test_recovery_with_custom_steady_state_and_no_baseline() -> None:
    windows = simulate(T0, T0 + 30, lambda t: 0.3 if 10 <= t < 22 else 0.02)
    tl = timeline(30, 10, [("slow", 10, 20)])
    custom = SloSettings(steady_state=["p99(latency) < 50ms"])
    assert check("recovery_time < 10s", windows, tl, custom).measured == pytest.approx(2)
    tl.baseline = None
    v = check("recovery_time < 10s", windows, tl)
    assert v.passed is None and "not measured: recovery from slow" in v.detail


def test_recovery_without_any_fault_is_no_data() -> None:
    windows = simulate(T0, T0 + 10, lambda t: 0.02)
    v = check("recovery_time < 10s", windows, timeline(10, 5, []))
    assert v.passed is None and "no fault" in v.detail


def simulate_answers(
    end: float,
    answer_at: Callable[[float], tuple[float | None, bool | None, bool | None]],
    rate: float = 100.0,
    size: float = 1.0,
) -> list[Window]:
    """Like `simulate`, each request answered by `answer_at(t)`: (latency or None, correct or
    None for no label, served by the fallback)."""
    windows: dict[int, Window] = {}
    for k in range(round(end * rate)):
        t = k / rate
        idx = math.floor((T0 + t) / size + 1e-9)
        latency, correct, fallback = answer_at(t)
        record(windows.setdefault(idx, Window(index=idx, size=size)), latency, correct, fallback)
    return [windows[i] for i in sorted(windows)]


def spread(share: float, t: float, rate: float = 100.0) -> bool:
    """True for exactly `share` of the requests, evenly spread (no sampling noise)."""
    k = round(t * rate)
    return math.floor((k + 1) * share) > math.floor(k * share)


def fallback_run(fallback_until: float, labels: bool = True, flag: bool = True) -> list[Window]:
    """The flagship's story: the store is slow in [15, 35); the service answers fast from the
    fallback model (74 % right against 93 %) until `fallback_until`, primary path after."""

    def answer(t: float) -> tuple[float, bool | None, bool | None]:
        on_fallback = 15 <= t < fallback_until
        correct = spread(0.74 if on_fallback else 0.93, t)
        return (
            (0.008 if on_fallback else 0.012),
            (correct if labels else None),
            (on_fallback if flag else None),
        )

    return simulate_answers(60, answer)


def test_default_steady_state_waits_for_the_primary_path_and_its_accuracy() -> None:
    tl = timeline(60, 15, [("slow-feature-store", 15, 35)])
    windows = fallback_run(fallback_until=39.0)  # latency never looks bad: only quality tells
    v = check("recovery_time < 10s", windows, tl)
    assert v.passed is True and abs(v.measured - 4.0) <= 1.0 + 1e-9, v.detail
    assert "fallback_rate <= 1.5 * fallback_rate during baseline + 5%" in v.detail
    assert "accuracy >= 0.95 * accuracy during baseline - 5%" in v.detail
    assert check("recovery_time < 2.5s", windows, tl).passed is False  # must fail
    # an explicit steady state is taken as written: latency alone sees no fault at all
    latency_only = SloSettings(
        steady_state=["p95(latency) <= 1.5 * p95(latency) during baseline + 5ms"]
    )
    assert check("recovery_time < 10s", windows, tl, latency_only).measured == 0


def test_default_steady_state_uses_accuracy_alone_without_a_fallback_flag() -> None:
    tl = timeline(60, 15, [("slow-feature-store", 15, 35)])
    windows = fallback_run(fallback_until=40.0, flag=False)
    v = check("recovery_time < 10s", windows, tl)
    assert abs(v.measured - 5.0) <= 1.0 + 1e-9 and "fallback_rate" not in v.detail, v.detail
    assert check("recovery_time < 3.5s", windows, tl).passed is False
    unlabelled = fallback_run(fallback_until=40.0, labels=False)  # the flag alone still tells
    v = check("recovery_time < 10s", unlabelled, tl)
    assert abs(v.measured - 5.0) <= 1.0 + 1e-9 and "accuracy" not in v.detail, v.detail
    blind = fallback_run(fallback_until=40.0, labels=False, flag=False)  # nothing to tell by
    assert check("recovery_time < 1s", blind, tl).measured == 0


def test_default_error_rate_is_judged_against_the_baselines() -> None:
    """A service failing 10 % of requests in its baseline is back at 14 %, not at 30 %."""

    def run(after: float) -> list[Window]:
        def answer(t: float) -> tuple[float | None, bool | None, bool]:
            share = 0.10 if t < 15 else 1.0 if t < 20 else after
            return (None if spread(share, t) else 0.01), None, False

        return simulate_answers(40, answer)

    tl = timeline(40, 15, [("errors", 15, 20)])
    assert check("recovery_time < 1s", run(0.14), tl).passed is True
    v = check("recovery_time < 10s", run(0.30), tl)
    assert v.passed is False and "not recovered within 20 s" in v.detail


def test_recovery_window_does_not_absorb_the_next_fault() -> None:
    def lat(t: float) -> float:  # a [10, 14) stays slow until b starts at 20; b recovers at 33
        return 0.3 if 10 <= t < 33 else 0.02

    windows = simulate(T0, T0 + 50, lat)
    tl = timeline(50, 10, [("a", 10, 14), ("b", 20, 30)])
    v = check("recovery_time < 10s", windows, tl)
    assert v.passed is False and v.measured is None
    assert v.detail.startswith("a not recovered within 6 s") and "(b started)" in v.detail
    assert check("recovery_time of b < 10s", windows, tl).measured == pytest.approx(3)

    def healed(t: float) -> float:  # the must-pass twin: a is back at 16, before b starts
        return 0.3 if 10 <= t < 16 or 20 <= t < 33 else 0.02

    v = check("recovery_time < 10s", simulate(T0, T0 + 50, healed), tl)
    assert v.passed is True and v.measured == pytest.approx(3) and "other faults: a 2 s" in v.detail


def test_a_fault_ending_with_the_run_fails_instead_of_hiding_the_other() -> None:
    def lat(t: float) -> float:  # a never recovers; b ends with the run, nothing to judge after
        return 0.3 if t >= 10 else 0.02

    windows = simulate(T0, T0 + 30, lat)
    tl = timeline(30, 10, [("a", 10, 14), ("b", 20, 30)])
    v = check("recovery_time < 10s", windows, tl)
    assert v.passed is False and "a not recovered within 6 s" in v.detail and "b" in v.detail


def test_recovery_skips_windows_inside_another_fault() -> None:
    def lat(t: float) -> float:  # b overlaps a's end; latency is fine, but b holds [12, 20)
        return 0.3 if 10 <= t < 12 else 0.02

    windows = simulate(T0, T0 + 40, lat)
    tl = timeline(40, 10, [("a", 10, 14), ("b", 12, 20)])
    assert check("recovery_time of a < 10s", windows, tl).measured == pytest.approx(6)
    assert check("recovery_time of a < 5s", windows, tl).passed is False


# --- detection time ----------------------------------------------------------------------------


def test_detection_time_from_a_probe() -> None:
    # the drift probe is sampled every 2 s at x.5; the alert first shows at 28.5 s (fault at 20 s)
    probes = {t + 0.5: {"drift_alert": 1.0 if t >= 27 else 0.0} for t in range(0, 40, 2)}
    windows = simulate(T0, T0 + 40, lambda t: 0.02, probes=probes)
    tl = timeline(40, 20, [("drift", 20, 35)])
    v = check("detection_time(probe.drift_alert >= 1) < 20s", windows, tl)
    assert v.passed is True and 8.5 - 1 <= v.measured <= 8.5 + 1, v.measured
    assert check("detection_time(probe.drift_alert >= 1) < 5s", windows, tl).passed is False
    settings = SloSettings(detection=["probe.drift_alert >= 1"])
    assert check("detection_time < 20s", windows, tl, settings).measured == v.measured
    none = check("detection_time(probe.drift_alert >= 2) < 20s", windows, tl)
    assert (
        none.passed is False and none.measured is None and "not detected within 20 s" in none.detail
    )


def alert_run(*on: tuple[float, float]) -> list[Window]:
    """An alert probe sampled every second at x.5: 1 inside the `on` intervals, 0 outside."""
    probes = {t + 0.5: {"alert": float(any(a <= t + 0.5 < b for a, b in on))} for t in range(40)}
    return simulate(T0, T0 + 40, lambda t: 0.02, probes=probes)


def test_an_alert_already_on_at_the_fault_start_is_a_false_alarm() -> None:
    tl = timeline(40, 10, [("drift", 20, 30)])
    v = check("detection_time(probe.alert >= 1) < 20s", alert_run((15, 40)), tl)
    assert v.passed is False and v.measured is None
    assert v.detail.startswith("false alarm: `probe.alert >= 1` already held") and "+19" in v.detail
    # the must-pass twin: off when the fault starts, on 3 s later
    v = check("detection_time(probe.alert >= 1) < 20s", alert_run((23, 40)), tl)
    assert v.passed is True and 3 - 1 <= v.measured <= 3 + 1
    # on earlier but off again before the start, then on: a false-to-true change after the start
    v = check("detection_time(probe.alert >= 1) < 20s", alert_run((5, 19), (24, 40)), tl)
    assert v.passed is True and 4 - 1 <= v.measured <= 4 + 1
    v = check("detection_time(probe.alert >= 1) < 20s", alert_run((5, 19)), tl)
    assert v.passed is False and "drift not detected within 20 s" in v.detail


def test_detection_window_does_not_absorb_the_next_fault() -> None:
    tl = timeline(40, 10, [("a", 10, 15), ("b", 20, 25)])
    windows = alert_run((22, 40))  # only b is ever noticed
    v = check("detection_time(probe.alert >= 1) < 20s", windows, tl)
    assert (
        v.passed is False
        and v.detail.startswith("a not detected within 10 s")
        and "(b started)" in v.detail
    )
    assert (
        2 - 1 <= check("detection_time(probe.alert >= 1) of b < 20s", windows, tl).measured <= 2 + 1
    )


def test_bare_detection_time_without_a_condition_is_a_user_error() -> None:
    from harness.core.fault import UserError

    windows = simulate(T0, T0 + 10, lambda t: 0.02)
    with pytest.raises(UserError, match="detection_time needs a condition"):
        check("detection_time < 20s", windows, timeline(10, 5, [("f", 5, 8)]))


def test_probe_values_hold_between_samples() -> None:
    probes = {0.5: {"queue": 10.0}, 5.5: {"queue": 90.0}}
    windows = simulate(T0, T0 + 10, lambda t: 0.02, probes=probes)
    tl = timeline(10, 5, [("f", 5, 10)])
    v = check("probe.queue < 50 in every window", windows, tl)
    assert [p.value for p in v.per_window] == [10.0] * 5 + [90.0] * 5
    assert check("probe.queue < 50 during baseline", windows, tl).passed is True
    assert check("max(probe.queue) < 50", windows, tl).measured == 90
    assert check("mean(probe.queue) <= 50", windows, tl).measured == pytest.approx(50)
    assert check("probe.missing > 1", windows, tl).passed is None


# --- stop conditions ---------------------------------------------------------------------------


def test_stop_condition_trips_after_five_consecutive_seconds() -> None:
    stop = parse_stop("error_rate > 50% for 5s")
    windows = simulate(T0, T0 + 30, lambda t: None if t >= 12 else 0.01)
    live = RunTimeline(run=Span("run", "run", T0, None))
    seen = []
    for k in range(1, len(windows) + 1):
        reason = check_stop(stop, windows[:k], live)
        if reason:
            seen.append((k, reason))
            break
    k, reason = seen[0]
    assert k == 17  # windows 12..16 are the first five bad ones
    assert "error_rate was 100% in the last window" in reason and "for 5 s (from +12" in reason


def test_stop_condition_streak_is_broken_by_a_good_window() -> None:
    windows = simulate(T0, T0 + 30, lambda t: None if 5 <= t < 9 or 10 <= t < 14 else 0.01)
    live = RunTimeline(run=Span("run", "run", T0, None))
    assert check_stop(parse_stop("error_rate > 50% for 5s"), windows, live) is None
    assert check_stop(parse_stop("error_rate > 50% for 4s"), windows, live) is not None
    assert check_stop(parse_stop("error_rate > 50%"), windows[:6], live) is not None


def test_stop_condition_trips_on_a_hang_with_no_records() -> None:
    windows = simulate(T0, T0 + 10, lambda t: 0.01)
    windows += [
        Window(index=int(T0) + k, size=1.0) for k in range(10, 16)
    ]  # load running, nothing back
    live = RunTimeline(run=Span("run", "run", T0, None))
    reason = check_stop(parse_stop("p95(latency) > 1s for 5s"), windows, live)
    assert reason is not None and "no request completed" in reason


def test_stop_condition_scoped_to_a_fault() -> None:
    windows = simulate(T0, T0 + 20, lambda t: 0.5 if t < 6 else 0.01)
    tl = RunTimeline(run=Span("run", "run", T0, None), faults=[Span("f", "fault", T0 + 8, None)])
    stop = parse_stop("p95(latency) > 250ms for 3s during f")
    assert check_stop(stop, windows, tl) is None
    assert check_stop(parse_stop("p95(latency) > 250ms for 3s"), windows, tl) is not None


def test_an_attack_that_measured_nothing_does_not_inherit_the_earlier_attacks_figures() -> None:
    import asyncio

    from harness.engine.attack_schedule import AttackTimeline
    from harness.engine.journal import Journal
    from harness.engine.probe_sampler import ProbeSampler
    from harness.engine.scenario.model import FaultEntry

    class Params:  # the timeline only journals an attack's params
        def model_dump(self, mode: str) -> dict:
            return {}

    class Evasion:  # what harness.core.attack.Attack offers the timeline: type, params, run()
        type, params = "evasion.test", Params()

        def __init__(self, robust: float | None) -> None:
            self.robust = robust

        def run(self, ctx: object, deadline: float):
            time.sleep(1.2)  # long enough that its span holds whole 0.5 s windows
            if self.robust is None:
                raise RuntimeError("the endpoint went away")
            return type(
                "Result", (), {"metrics": {"robust_accuracy": self.robust}, "details": {}}
            )()

    import tempfile
    from pathlib import Path

    tl = RunTimeline(run=Span("run", "run", T0, None))
    sampler = ProbeSampler([], tl, lambda *a, **k: None)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "journal.jsonl")
        entries = [
            (FaultEntry(name="first", type="evasion.test", at=0.0, duration=1.0), Evasion(0.9)),
            (FaultEntry(name="second", type="evasion.test", at=2.0, duration=1.0), Evasion(None)),
        ]
        attacks = AttackTimeline(entries, None, journal, tl, sampler, request_timeout=1.0)
        asyncio.run(attacks.run(time.time()))
        journal.close()
    start = min(s.start for s in tl.attacks)
    tl.run.start, tl.run.end = math.floor(start), math.floor(start) + 5
    windows = {
        i: Window(index=i, size=0.5) for i in range(int(tl.run.start * 2), int(tl.run.end * 2))
    }
    for w in windows.values():
        record(w, 0.01)
    sampler.attach(windows)
    ordered = [windows[i] for i in sorted(windows)]
    assert check("robust_accuracy >= 0.8 during first", ordered, tl).measured == pytest.approx(0.9)
    second = check("robust_accuracy >= 0.8 during second", ordered, tl)
    assert second.passed is None and second.measured is None  # no data, not the first's 0.9
    assert check("robust_accuracy >= 0.8", ordered, tl).measured == pytest.approx(0.9)


# --- figures made of nothing -----------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "p95(latency) < 1s during ghost",
        "mean(latency) < 1s during ghost",
        "availability >= 99% during ghost",
        "error_rate <= 1% during ghost",
        "server_error_rate <= 1% during ghost",
        "throughput >= 1 during ghost",
        "requests >= 1 during ghost",
        "fallback_rate <= 10% during ghost",
        "accuracy >= 0.9",  # no labelled payloads in the run
        "probe.queue < 10",  # a probe never sampled
        "max(probe.queue) < 10 during fault",
        "p95(latency) during ghost < 2 * p95(latency) during baseline",
        "p95(latency) < 2 * p95(latency) during ghost",  # left side: p95 of the run
        "error_rate < error_rate during fault / error_rate during baseline",  # of the run; 0 / 0
        "p95(latency) < 1s in every window during ghost",
        "p95(latency) < 1s in 90% of windows during ghost",
        "p95(latency) < 1s for 5s during ghost",
        "degradation(p95(latency)) < 3 during ghost",
        "recovery_time of ghost < 10s",
        "detection_time(probe.queue > 1) of ghost < 10s",
    ],
)
def test_no_form_passes_on_a_figure_made_of_nothing(text: str) -> None:
    """Every SLI form and scope: no data gives `passed = None` (a run counts it as failed),
    measured None and a detail saying "not measured" -- never a pass on 0."""
    windows = simulate(T0, T0 + 20, lambda t: 0.01)
    tl = timeline(20, 5, [("f", 5, 10)])
    v = check(text, windows, tl)
    assert v.passed is None and "not measured" in v.detail, v
    if not text.startswith(("p95(latency) < 2 *", "error_rate < error_rate")):
        assert v.measured is None, v  # the left side has no data either (else: the run's figure)


def test_an_attack_shorter_than_a_window_is_judged_on_the_windows_it_overlaps() -> None:
    """Four quick queries end inside one window, between two midpoints: the figure the
    attack reported in that window is its value, not "not measured" (a real case: a
    0.3 s prompt.leak against a 1 s window)."""
    from harness.core.windows import Window
    from harness.engine.phases import RunTimeline, Span
    from harness.engine.slo.sli import scope_sli

    windows = [Window(index=i, size=1.0, requests=4) for i in range(10, 16)]
    windows[3].probes["leak_rate"] = 0.25  # reported at 13.3 s
    timeline = RunTimeline(run=Span("run", "run", 10.0, 16.0), attacks=[Span("leak", "attack", 13.0, 13.3)])
    assert scope_sli("leak_rate", windows, timeline, "leak") == 0.25
    # a span holding midpoints keeps to them: a 2 s attack is judged on its two windows
    timeline.attacks = [Span("leak", "attack", 12.0, 14.0)]
    windows[1].probes["leak_rate"] = 0.0
    windows[3].probes = {}
    assert scope_sli("max(leak_rate)", windows, timeline, "leak") == 0.0
