"""stop_when judged incrementally: a StopTrigger fed window by window agrees with judging
every window from scratch, and keeps scope-wide values right as spans change."""

from __future__ import annotations

import random

import pytest

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import StopTrigger, check_stop, evaluate, parse_slo, parse_stop
from tests.test_slo_evaluate import T0, record, simulate

CONDITIONS = [
    "error_rate > 50% for 2s",
    "error_rate > 50%",
    "p95(latency) > 250ms for 3s",
    "p95(latency) > 3 * p95(latency) during baseline for 2s",
    "availability < availability during run - 20% for 2s",
    "probe.queue > 50 for 2s",
    "probe.queue > max(probe.queue) during baseline + 10",
    "p95(latency) > 250ms for 2s during f",
    "throughput < 0.5 * throughput during baseline",
]


def live_timeline() -> RunTimeline:
    return RunTimeline(
        run=Span("run", "run", T0, None),
        baseline=Span("baseline", "baseline", T0, T0 + 10),
        faults=[Span("f", "fault", T0 + 20, None)],
    )


def noisy_run(seed: int) -> list[Window]:
    """60 s of random trouble: slow and failing stretches, hangs (windows with no record,
    empty windows), a probe that wanders."""
    rng = random.Random(seed)
    bad = sorted(rng.sample(range(12, 60), 12))
    hang = set(rng.sample(range(12, 60), 4))

    def lat(t: float) -> float | None:
        s = int(t)
        if s in bad:
            return None if rng.random() < 0.7 else rng.uniform(0.2, 0.6)
        return rng.uniform(0.005, 0.03)

    probes = {t + 0.5: {"queue": rng.uniform(0, 100)} for t in range(0, 60, 3)}
    windows = simulate(T0, T0 + 60, lat, rate=40, probes=probes)
    out = []
    for w in windows:
        k = w.index - int(T0)
        if k in hang and k % 2:
            continue  # no record at all
        out.append(Window(index=w.index, size=w.size, probes=w.probes) if k in hang else w)
    return out


NEGATED = {">": "<=", ">=": "<", "<": ">=", "<=": ">", "==": "!=", "!=": "=="}


def violated_for(text: str, windows: list[Window]) -> bool:
    """The reference, judged from scratch by `evaluate()`: the stop condition `C for D` has
    tripped once the SLO `not C for D` fails (a window of its scope where nothing completed
    counting as C, in both)."""
    stop = parse_stop(text)
    cmp = stop.comparison
    slo = f"{cmp.left} {NEGATED[cmp.op]} {cmp.right} for {stop.seconds or 1:g}s"
    slo += f" during {stop.scope}" if stop.scope else ""
    return evaluate(parse_slo(slo), windows, live_timeline()).passed is False


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("text", CONDITIONS)
def test_fed_window_by_window_it_trips_where_judging_from_scratch_does(
    text: str, seed: int
) -> None:
    windows = noisy_run(seed)
    trigger = StopTrigger(parse_stop(text))
    tripped_at = None
    for k in range(1, len(windows) + 1):
        if trigger.feed(windows[k - 1 : k], live_timeline()):
            tripped_at = k
            break
    if tripped_at is None:
        assert not violated_for(text, windows), (text, seed)
    else:  # from scratch: tripped with this window, not before it
        assert violated_for(text, windows[:tripped_at]), (text, seed, tripped_at)
        assert not violated_for(text, windows[: tripped_at - 1]), (text, seed, tripped_at)
    assert check_stop(parse_stop(text), windows, live_timeline()) == trigger.tripped


def test_a_tick_may_bring_several_windows_and_repeats_are_ignored() -> None:
    cond = parse_stop("error_rate > 50% for 5s")
    windows = simulate(T0, T0 + 30, lambda t: None if t >= 12 else 0.01)
    trigger = StopTrigger(cond)
    tl = live_timeline()
    assert trigger.feed(windows[:10], tl) is None
    assert trigger.feed(windows[:14], tl) is None  # the first 10 again: skipped
    assert trigger.next_index == windows[13].index + 1
    reason = trigger.feed(windows[14:20], tl)
    assert reason is not None and "for 5 s (from +12.0 s)" in reason
    assert trigger.feed(windows[20:], tl) == reason  # stays tripped


def test_a_scope_wide_value_follows_its_span_when_the_span_changes() -> None:
    """The baseline's p95 is taken once the baseline closed -- and again if its end moves."""
    windows = simulate(T0, T0 + 30, lambda t: 0.01 if t < 5 else 0.05)
    cond = parse_stop("p95(latency) > 3 * p95(latency) during baseline for 2s")
    tl = RunTimeline(
        run=Span("run", "run", T0, None), baseline=Span("baseline", "baseline", T0, T0 + 10)
    )
    trigger = StopTrigger(cond)
    assert trigger.feed(windows[:15], tl) is None  # baseline p95 50 ms: 50 ms is no trouble
    tl.baseline.end = T0 + 5  # the baseline really ended at 5 s: p95 10 ms
    reason = trigger.feed(windows[15:18], tl)
    assert reason is not None and "tripped for 2 s (from +15.0 s)" in reason


def test_a_hang_with_no_records_between_two_windows_trips() -> None:
    windows = simulate(T0, T0 + 10, lambda t: 0.01)
    later = Window(index=int(T0) + 16, size=1.0)
    record(later, 0.01)
    trigger = StopTrigger(parse_stop("p95(latency) > 1s for 5s"))
    assert trigger.feed(windows, live_timeline()) is None
    reason = trigger.feed([later], live_timeline())  # windows 10..15 never reported: stalled
    assert reason is not None and "no request completed" in reason and "from +10.0 s" in reason
