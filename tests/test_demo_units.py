"""The demo's building blocks on their own: patterns, drift, models, data export."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.demo.data import TRANSACTION_FEATURES, sample
from harness.demo.drift import DriftMonitor
from harness.demo.model import accuracy, train_models
from harness.demo.protocol import InvalidRequest, decode_v2, validate_training_row
from harness.demo.resilience import BreakerState, CircuitBreaker, TTLCache, backoff_delay


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_breaker_cycle() -> None:
    clock = Clock()
    changes: list[BreakerState] = []
    breaker = CircuitBreaker(
        failure_threshold=2, reset_timeout=1.0, clock=clock, on_change=changes.append
    )
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state == BreakerState.OPEN and not breaker.allow()
    clock.now = 1.5
    assert breaker.allow()  # the one half-open trial
    assert breaker.state == BreakerState.HALF_OPEN and not breaker.allow()
    breaker.record_failure()  # the trial failed: open again, for another reset_timeout
    assert breaker.state == BreakerState.OPEN and not breaker.allow()
    clock.now = 3.0
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == BreakerState.CLOSED and breaker.allow()
    assert changes == [
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.OPEN,
        BreakerState.HALF_OPEN,
        BreakerState.CLOSED,
    ]
    breaker.record_failure()
    breaker.record_failure()
    clock.now = 4.5
    assert breaker.allow() and not breaker.allow()
    breaker.abandon()  # the trial was cancelled: another call may be the trial
    assert breaker.allow()


def test_ttl_cache_expires_and_is_bounded() -> None:
    clock = Clock()
    cache: TTLCache[int, str] = TTLCache(ttl=5.0, max_entries=2, clock=clock)
    cache.put(1, "a")
    cache.put(2, "b")
    cache.put(3, "c")
    assert cache.get(1) is None and cache.get(2) == "b"
    clock.now = 5.0
    assert cache.get(2) is None and cache.get(3) is None


def test_backoff_is_exponential_with_full_jitter() -> None:
    rng = random.Random(0)
    for attempt in range(6):
        delays = [backoff_delay(attempt, 0.02, 0.2, rng) for _ in range(200)]
        ceiling = min(0.2, 0.02 * 2**attempt)
        assert 0 <= min(delays) and max(delays) <= ceiling
        assert max(delays) > 0.8 * ceiling  # jitter spreads over the whole range


def test_models_are_deterministic_and_main_beats_fallback() -> None:
    train, test = sample(6000, 0, 0), sample(2000, 0, 1)
    main_acc, fallback_acc = accuracy(train_models(train, steps=250), test)
    again = accuracy(train_models(train, steps=250), test)
    assert (main_acc, fallback_acc) == again
    assert main_acc >= 0.9
    assert 0.7 <= fallback_acc <= main_acc - 0.1
    assert 0.4 < test.label.mean() < 0.6  # accuracy is meaningful: no majority class


def test_drift_monitor_alerts_on_shift_only() -> None:
    monitor = DriftMonitor(
        sample(6000, 0, 0).features, TRANSACTION_FEATURES, window=300, min_rows=100
    )
    monitor.observe(sample(300, 0, 7).features)
    assert not monitor.state().alert
    shifted = sample(300, 0, 8).features
    shifted[:, 2] *= 10  # distance
    monitor.observe(shifted)
    state = monitor.state()
    assert state.alert and max(state.per_feature, key=state.per_feature.get) == "distance_km"
    monitor.observe(shifted[:50])
    assert monitor.state().rows == 300


def test_decode_v2_accepts_nested_data_and_rejects_bools() -> None:
    body = {
        "inputs": [
            {
                "name": "features",
                "shape": [1, 6],
                "datatype": "FP32",
                "data": [[1, 2, 3, 0.5, 1, 1]],
            },
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [4]},
        ]
    }
    features, entity_id, _, outputs = decode_v2(body)
    assert features.dtype == np.float32 and features.shape == (1, 6)
    assert entity_id.tolist() == [4] and outputs == ["label", "probabilities"]
    body["inputs"][1]["data"] = [True]
    with pytest.raises(InvalidRequest, match="integers"):
        decode_v2(body)


def test_training_row_validation() -> None:
    good = {"features": [10.0, 1.0, 3.0, 0.2, 1, 1], "entity_id": 0, "label": 0}
    assert validate_training_row(good) is None
    assert "hour" in validate_training_row({**good, "features": [10.0, 25, 3.0, 0.2, 1, 1]})
    assert "finite" in validate_training_row({**good, "features": [float("nan")] + [1] * 5})
    assert "entity_id" in validate_training_row({**good, "entity_id": -1})
    assert "exactly" in validate_training_row({**good, "extra": 1})


def test_export_data_writes_oip_tensors_and_labels(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    subprocess.run(
        [sys.executable, "-m", "harness.demo", "export-data", "--out", str(out), "--n", "50"],
        check=True,
        timeout=60,
    )
    with np.load(out) as data:
        assert sorted(data.files) == ["entity_id", "features", "label"]
        assert data["features"].dtype == np.float32 and data["features"].shape == (50, 6)
        assert data["entity_id"].dtype == np.int64 and data["label"].dtype == np.int64
        again = sample(50, 0, 1)
        assert np.array_equal(data["features"], again.features)


def test_demo_imports_nothing_else_from_aftershock() -> None:
    """The demo stands for a user's service: it must not lean on the harness."""
    code = (
        "import sys, harness.demo.cli, harness.demo.server, harness.demo.launcher, "
        "harness.demo.train_job; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('harness', 'faults', 'attacks') "
        "and m != 'harness' and not m.startswith('harness.demo')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_query_guard_refuses_boundary_probing_not_real_traffic() -> None:
    from harness.demo.query_guard import QueryGuard, QueryRefused

    train = sample(6000, 0, 0).features
    guard = QueryGuard.from_training(train)
    traffic = sample(2000, 0, 1).features
    for _ in range(2):  # real rows, each sent twice: exact repeats are not probes
        for i in range(0, len(traffic), 4):
            guard.check(traffic[i : i + 4])
    assert guard.refused == 0

    # a binary search towards the boundary: each step halves the distance to the point
    x, far = traffic[0].copy(), traffic[1].copy()
    span = train.max(axis=0) - train.min(axis=0)
    steps = 0
    with pytest.raises(QueryRefused, match="boundary probing"):
        for k in range(1, 40):
            guard.check((x + (far - x) * 0.5**k + span * 1e-4 * k)[None])
            steps += 1
    assert 5 <= steps <= 20

    # a gradient-estimation batch (many tiny offsets around one point) in one request
    rng = np.random.default_rng(0)
    batch = traffic[2] + rng.normal(0, 0.002, (20, len(span))).astype(np.float32) * span
    with pytest.raises(QueryRefused):
        QueryGuard.from_training(train).check(batch)
