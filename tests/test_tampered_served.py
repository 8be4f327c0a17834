"""The SLI tampered_served against windows whose truth the test writes: it counts the
answers of versions a model.tamper fault named, and no other fault's."""

from __future__ import annotations

from test_model_versions import T0, merged, served

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import evaluate, parse_slo


def timeline(*faults: tuple[str, str]) -> RunTimeline:
    t = RunTimeline(run=Span("run", "run", T0, T0 + 30))
    for fault_type, version in faults:
        t.faults.append(Span(fault_type, "fault", T0 + 5, T0 + 20, fault_type=fault_type, bad_versions=(version,)))
    return t


def test_it_counts_the_answers_of_the_tampered_version_only() -> None:
    windows = merged(served(range(30), "1"), served(range(8, 11), "v2", n=3), served(range(12, 14), "v3", n=4))
    both = timeline(("model.tamper", "v2"), ("model.rollout", "v3"))
    verdict = evaluate(parse_slo("tampered_served == 0"), windows, both)
    assert verdict.passed is False and verdict.measured == 9.0, verdict.detail
    assert evaluate(parse_slo("tampered_served <= 9"), windows, both).passed is True
    refused = merged(served(range(30), "1"), served(range(12, 14), "v3", n=4))  # v2 never answered
    assert evaluate(parse_slo("tampered_served == 0"), refused, both).measured == 0.0


def test_without_a_tamper_fault_or_versions_it_is_not_measured() -> None:
    windows = merged(served(range(30), "1"), served(range(8, 11), "v2", n=3))
    rollout_only = evaluate(parse_slo("tampered_served == 0"), windows, timeline(("model.rollout", "v2")))
    assert rollout_only.passed is None and "no model.tamper fault" in rollout_only.detail
    plain = [Window(index=int(T0) + k, size=1.0, requests=5) for k in range(30)]
    unnamed = evaluate(parse_slo("tampered_served == 0"), plain, timeline(("model.tamper", "v2")))
    assert unnamed.passed is None and "model_version" in unnamed.detail
