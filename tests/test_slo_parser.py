"""The SLO language: what parses, into what, and how bad input is reported."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.engine.slo.ast import BinOp, Degradation, DetectionTime, RecoveryTime, SliRef
from harness.engine.slo.parser import SloSyntaxError, parse_condition, parse_slo, parse_stop
from harness.engine.slo.settings import SloSettings

GOOD = [
    "p95(latency) < 250ms during slow-feature-store",
    "availability >= 99.5%",
    "error_rate <= 1% during fault",
    "accuracy >= 0.9 during recovery",
    "p95(latency) < 300ms for 5s",
    "p95(latency) < 250ms in every window during fault",
    "p95(latency) < 250ms in 95% of windows",
    "p95(latency) during fault < 2 * p95(latency) during baseline",
    "recovery_time < 10s",
    "recovery_time(p95(latency) < 250ms) < 10s",
    "recovery_time of slow-feature-store < 10s",
    "recovery_time(p95(latency) < 250ms and error_rate <= 1%) of slow-feature-store < 10s",
    "detection_time < 20s",
    "detection_time(probe.drift_alert >= 1) < 20s",
    "degradation(p95(latency)) < 3",
    "degradation(availability) during slow-feature-store <= 1.5",
    "p99.9(latency) <= 1s",
    "mean(latency) < 120ms",
    "max(latency) < 2m",
    "throughput >= 50",
    "fallback_rate < 10% during fault",
    "requests > 100 during baseline",
    "probe.queue_depth < 100",
    "max(probe.queue_depth) < 100 during fault",
    "p95(latency) <= 1.5 * p95(latency) during baseline + 5ms",
    "p50(latency) - p50(latency) during baseline < 10ms",
    "p95(latency) / p95(latency) during baseline < 2",
    "(p95(latency) + 5ms) * 2 < 1s",
    "probe.status == 200",
]


@pytest.mark.parametrize("text", GOOD)
def test_good_expressions_parse_and_render_back(text: str) -> None:
    slo = parse_slo(text, known_scopes={"slow-feature-store"})
    assert parse_slo(str(slo), known_scopes={"slow-feature-store"}) == parse_slo(str(slo))
    assert str(parse_slo(str(slo))) == str(slo)


def test_units_are_held_in_base_units() -> None:
    slo = parse_slo("p95(latency) < 250ms during slow-feature-store")
    assert slo.comparison.right.value == pytest.approx(0.25)
    assert slo.scope == "slow-feature-store" and slo.comparison.left.scope is None
    assert parse_slo("availability >= 99.5%").comparison.right.value == pytest.approx(0.995)
    assert parse_slo("max(latency) < 2m").comparison.right.value == 120
    assert parse_slo("mean(latency) < 500us").comparison.right.value == pytest.approx(5e-4)
    assert parse_slo("p95(latency) < 250 ms").comparison.right.value == pytest.approx(0.25)


def test_scope_binds_to_the_operand_it_follows() -> None:
    cmp = parse_slo("p95(latency) during fault < 2 * p95(latency) during baseline").comparison
    assert cmp.left == SliRef("latency_pct", 1, percentile=95, scope="fault")
    assert isinstance(cmp.right, BinOp) and cmp.right.right.scope == "baseline"
    steady = parse_condition("p95(latency) <= 1.5 * p95(latency) during baseline + 5ms")
    assert steady.left.scope is None
    assert isinstance(steady.right, BinOp) and steady.right.op == "+"


def test_quantifiers() -> None:
    q = parse_slo("p95(latency) < 300ms for 5s").quantifier
    assert q.kind == "for" and q.seconds == 5
    assert parse_slo("p95(latency) < 300ms for 500ms").quantifier.seconds == pytest.approx(0.5)
    slo = parse_slo("p95(latency) < 250ms in every window during fault")
    assert slo.quantifier.kind == "every" and slo.scope == "fault"
    slo = parse_slo("p95(latency) < 250ms during fault in 95% of windows")
    assert slo.quantifier.share == pytest.approx(0.95) and slo.scope == "fault"


def test_percentiles_and_probes() -> None:
    assert parse_slo("p99.9(latency) < 1s").comparison.left.percentile == pytest.approx(99.9)
    assert parse_slo("probe.drift_alert >= 1").comparison.left == SliRef(
        "probe", 1, probe="drift_alert"
    )
    assert parse_slo("robust_accuracy >= 0.7").comparison.left.probe == "robust_accuracy"
    assert parse_slo("mean(probe.gpu_util) < 90").comparison.left.agg == "mean"


def test_measures_and_flipped_comparison() -> None:
    r = parse_slo("recovery_time(p95(latency) < 250ms) of slow < 10s").comparison.left
    assert isinstance(r, RecoveryTime) and r.fault == "slow" and len(r.conditions) == 1
    d = parse_slo("detection_time(probe.alert >= 1) < 20s").comparison.left
    assert isinstance(d, DetectionTime) and d.conditions[0].left.probe == "alert"
    assert isinstance(parse_slo("degradation(p95(latency)) < 3").comparison.left, Degradation)
    flipped = parse_slo("250ms > p95(latency)").comparison
    assert flipped.op == "<" and isinstance(flipped.left, SliRef)


BAD = [
    # text, column, a piece of the message
    ("p95(latency) 250ms", 14, "expected one of: a comparison"),
    ("p95(latency) < 250", 16, "write the threshold with a unit"),
    ("error_rte < 1%", 1, "did you mean 'error_rate'"),
    ("p95(latency) < 250ms during slow-featur-store", 29, "did you mean 'slow-feature-store'"),
    ("p95(latency) < 250ms during", 28, "expected a scope"),
    ("latency < 3s", 1, "latency needs a statistic"),
    ("p95 < 3s", 5, "'(' (p95 takes an argument"),
    ("p95(latncy) < 3s", 5, "p95() applies to latency, ttft, itl, tokens_per_s, output_tokens only"),
    ("p101(latency) < 3s", 1, "outside 0..100"),
    ("p95(latency) < 250ms for", 25, "a duration"),
    ("p95(latency) < 250ms for 5%", 26, "a duration"),
    ("p95(latency) < 250ms in 95 of windows", 25, "a percentage"),
    ("p95(latency) < 250ms in every windows", 31, "'window'"),
    ("p95(latency) < 250ms during fault during baseline", 35, "unexpected 'during'"),
    ("recovery_time < 10s in every window", 1, "does not apply"),
    ("recovery_time during baseline < 10s", 1, "takes `of <fault name>`"),
    ("recovery_time < 10", 17, "write the threshold with a unit"),
    ("2 * recovery_time < 10s", 5, "must stand alone"),
    ("recovery_time of baseline < 10s", 18, "is not a fault"),
    ("recovery_time(recovery_time < 1s) < 10s", 15, "cannot appear inside a condition"),
    ("degradation(p95(latency) during baseline) < 3", 13, "plain SLI"),
    ("1 < 2", 1, "compares two numbers"),
    ("p95(latency) < 250ms + 3", 22, "cannot add"),
    ("p95(latency) * p95(latency) < 1s", 14, "multiply a time by a time"),
    ("p95(latency) << 3ms", 15, "unexpected '<'"),
    ("p95(latency) < 3ms $", 20, "unexpected character '$'"),
    ("", 1, "empty SLO expression"),
    ("   ", 1, "empty SLO expression"),
    ("(((p95(latency) < 3ms", 17, "expected ')'"),
    ("p95(latency) < (3ms", 20, "expected ')'"),
    ("error_rate > 50% for 0s", 22, "must be positive"),
    ("p95(latency) during fault < 1s in every window", 1, "needs an SLI without its own `during`"),
]


@pytest.mark.parametrize("text,column,message", BAD)
def test_bad_expressions_point_at_the_column(text: str, column: int, message: str) -> None:
    with pytest.raises(SloSyntaxError) as info:
        parse_slo(text, known_scopes={"slow-feature-store", "slow"})
    err = info.value
    assert message in str(err), str(err)
    assert err.column == column, str(err)
    lines = str(err).splitlines()
    assert f"at column {column}" in lines[0]
    assert lines[2].index("^") - 2 == column - 1  # the caret sits under the column


def test_error_lists_what_was_expected() -> None:
    with pytest.raises(SloSyntaxError) as info:
        parse_slo("p95(latency) < 250ms banana")
    assert "'during <scope>'" in info.value.expected
    assert "'in every window'" in info.value.expected
    assert "the end of the expression" in info.value.expected


def test_known_probes_check() -> None:
    parse_slo("probe.drift_alert >= 1", known_probes={"drift_alert"})
    with pytest.raises(SloSyntaxError, match="did you mean 'probe.drift_alert'"):
        parse_slo("probe.drift_alrt >= 1", known_probes={"drift_alert"})
    with pytest.raises(SloSyntaxError, match="unknown SLI or probe 'queue'"):
        parse_slo("queue >= 1", known_probes={"drift_alert"})


def test_unknown_scope_allowed_without_known_scopes() -> None:
    assert parse_slo("p95(latency) < 1s during some-fault").scope == "some-fault"


def test_stop_conditions() -> None:
    stop = parse_stop("error_rate > 50% for 5s")
    assert stop.seconds == 5 and stop.scope is None
    assert parse_stop("p95(latency) > 2s during fault").seconds is None
    with pytest.raises(SloSyntaxError, match="expected one of: 'during <scope>', 'for <duration>'"):
        parse_stop("error_rate > 50% in every window")
    with pytest.raises(SloSyntaxError, match="cannot appear inside a condition"):
        parse_stop("recovery_time > 5s")


def test_settings_validate_their_conditions() -> None:
    assert len(SloSettings().steady_state_conditions()) == 2
    with pytest.raises(ValueError, match="did you mean 'error_rate'"):
        SloSettings(steady_state=["error_rat < 1%"])
    with pytest.raises(ValueError):
        SloSettings(recovery_windows=0)


def test_slo_syntax_error_is_a_value_error_for_pydantic() -> None:
    assert issubclass(SloSyntaxError, ValueError)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=60))
def test_random_text_raises_only_slo_syntax_errors(text: str) -> None:
    try:
        parse_slo(text)
    except SloSyntaxError:
        pass


_ALPHABET = list("()<>=!*/+-%., ") + [
    "p95(latency)",
    "250ms",
    "during",
    "fault",
    "for",
    "5s",
    "in",
    "every",
    "window",
    "of",
    "windows",
    "95%",
    "recovery_time",
    "degradation",
    "and",
    "probe.x",
    "error_rate",
    "detection_time",
    "2",
]


@settings(max_examples=400, deadline=None)
@given(st.lists(st.sampled_from(_ALPHABET), max_size=14))
def test_random_token_soup_raises_only_slo_syntax_errors(parts: list[str]) -> None:
    text = " ".join(parts)
    for parse in (parse_slo, parse_stop, parse_condition):
        try:
            parse(text)
        except SloSyntaxError:
            pass


# --- expressions that can never pass --------------------------------------------------------


@pytest.mark.parametrize(
    "text,col,message",
    [
        ("availability >= 999%", 17, "availability lies in 0%..100%, so it is never >= 999%"),
        ("availability > 100%", 16, "never > 100%"),
        ("error_rate < 0", 14, "error_rate lies in 0%..100%, so it is never < 0%"),
        ("accuracy == 2", 13, "never == 200%"),
        ("p95(latency) < 0ms", 16, "p95(latency) lies in 0 s..infinity"),
        ("throughput < -5", 14, "never < -5"),
        ("recovery_time < 0s", 17, "recovery_time lies in 0 s..infinity"),
        ("degradation(p95(latency)) < 0", 29, "never < 0"),
        ("100% < error_rate", 1, "`error_rate > 100%` can never hold"),
        ("error_rate during fault < error_rate during baseline - 100%", 54, "never < -100%..0%"),
        ("recovery_time(error_rate > 2) < 10s", 28, "`error_rate > 2` can never hold"),
        ("p95(latency) < 250ms / 0", 22, "division by zero: `250ms / 0`"),
        ("error_rate < 1% / (2 - 2)", 17, "division by zero"),
        ("p95(latency) < 1" + "0" * 400 + "ms", 16, "is too large"),
    ],
)
def test_expressions_that_can_never_pass_are_refused(text: str, col: int, message: str) -> None:
    with pytest.raises(SloSyntaxError) as err:
        parse_slo(text)
    assert err.value.column == col and message in str(err.value), str(err.value)


@pytest.mark.parametrize(
    "text",
    [
        "availability >= 100%",
        "error_rate <= 0",
        "accuracy >= 1",
        "recovery_time <= 0s",
        "probe.temperature < -5",  # a probe can be anything
        "p95(latency) < 2 * p95(latency) during baseline",
        "error_rate < error_rate during fault / error_rate during baseline",  # zero only at run time
    ],
)
def test_edge_expressions_that_can_pass_are_accepted(text: str) -> None:
    parse_slo(text)


def test_impossible_slo_and_stop_and_steady_state_are_refused_at_file_line_col() -> None:
    from harness.engine.scenario.loader import ScenarioError, parse_scenario

    text = """name: impossible
target: {url: "http://127.0.0.1:9"}
load: {users: 1, duration: 10s}
timeline: {baseline: 5s}
slos:
  - name: more than everything
    expect: availability >= 999%
stop_when:
  - error_rate > 150% for 5s
"""
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "s.yaml")
    shown = str(err.value)
    assert "s.yaml:7:29: slos[0].expect:" in shown and "can never hold" in shown, shown
    assert "s.yaml:9:18: stop_when[0]:" in shown, shown
    with pytest.raises(ValueError, match="can never hold"):
        SloSettings(steady_state=["accuracy > 100%"])
