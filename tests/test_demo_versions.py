"""The demo's model versions: deliberate degradation, the canary split, promotion and
rollback, and the canary analysis's verdicts, against figures the test sets."""

from __future__ import annotations

import numpy as np
import pytest

from harness.demo.canary import LiveCounts, Thresholds, judge
from harness.demo.model import Models
from harness.demo.protocol import InvalidRequest
from harness.demo.versions import Degradation, ServedVersion, VersionCrashed, VersionRouter

MODELS = Models(main=None, fallback=None)  # type: ignore[arg-type]  # routing never touches the nets


def version(label: str, **degrade: float) -> ServedVersion:
    return ServedVersion(label, MODELS, Degradation(**degrade))


def test_degradation_is_validated_like_any_request_field() -> None:
    assert Degradation.from_json({"label_noise": 0.3, "seed": 2}) == Degradation(label_noise=0.3, seed=2)
    for bad, says in (({"noise": 1}, "unknown keys"), ({"label_noise": 2}, "0..1"),
                      ({"slow": "1s"}, "must be a number"), ([1], "must be an object")):
        with pytest.raises(InvalidRequest, match=says):
            Degradation.from_json(bad)


def test_label_noise_threshold_shift_and_crashes_act_as_asked() -> None:
    p = np.tile(np.array([[0.8, 0.2]], dtype=np.float32), (10_000, 1))
    flipped = version("n", label_noise=0.3, seed=1).degraded(p).argmax(axis=1).mean()
    assert 0.28 < flipped < 0.32
    again = version("n", label_noise=0.3, seed=1).degraded(p)
    assert np.array_equal(again, version("n", label_noise=0.3, seed=1).degraded(p))  # seeded
    assert version("t", threshold_shift=-0.35).degraded(p).argmax(axis=1).all()  # fraud from 0.15 up
    crashy = version("c", crash_share=0.2)
    share = crashy.crashes(np.arange(1000)).mean()
    assert 0.15 < share < 0.25
    with pytest.raises(VersionCrashed):
        crashy.check_input(np.arange(1000))
    assert version("ok").degraded(p) is p


def test_the_router_splits_by_share_promotes_and_rolls_back() -> None:
    base, router = version("1"), VersionRouter(seed=3)
    router.deploy(version("2"), 0.2)
    picks = [router.pick(base).label for _ in range(5000)]
    assert 0.18 < picks.count("2") / len(picks) < 0.22
    router.promote()
    assert router.stable(base).label == "2" and router.canary is None
    router.deploy(version("3"), 0.5)
    assert router.rollback() == "3" and router.stable(base).label == "2"
    assert router.rollback() == "2" and router.stable(base).label == "1"
    assert router.rollback() is None
    router.deploy(version("4"), 1.0)  # in full: stable at once
    assert {router.pick(base).label for _ in range(50)} == {"4"}


def test_the_canary_analysis_names_what_is_worse() -> None:
    healthy = LiveCounts(requests=20, errors=0, latencies=[0.01] * 20)
    t = Thresholds()
    assert judge(healthy, healthy, 0.93, 0.94, t) == []
    assert "shadow accuracy" in judge(healthy, healthy, 0.60, 0.94, t)[0]
    failing = LiveCounts(requests=20, errors=5, latencies=[0.01] * 15)
    assert "error rate" in judge(failing, healthy, 0.94, 0.94, t)[0]
    slow = LiveCounts(requests=20, errors=0, latencies=[0.2] * 20)
    assert "p95 latency" in judge(slow, healthy, 0.94, 0.94, t)[0]
    few = LiveCounts(requests=2, errors=2)
    assert judge(few, healthy, 0.94, 0.94, t) == []  # too few live requests to judge them
