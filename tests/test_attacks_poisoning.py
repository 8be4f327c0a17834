"""Poisoning through the demo's ingestion endpoint and retrain, against a live demo."""

from __future__ import annotations

import time

import httpx
import pytest

from harness.core.attack import make_attack
from tests.attacks_support import demo_rows, live_demo


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    with live_demo(tmp_path_factory.mktemp("poison"), "--mode", "fragile") as d:  # the undefended pipeline
        yield d


def test_out_of_range_poison_is_counted_as_rejected(demo):
    """The demo's schema/range checks refuse these rows: every one is rejected, no retrain harm."""
    dataset, labels = demo_rows(600)
    attack = make_attack(
        "bad",
        "poison.backdoor",
        {
            "samples": 100,
            "rows": 50,
            "trigger": {0: -5.0},
            "target_class": 0,
            "retrain_path": None,
        },
    )
    m = attack.run(demo.context(dataset, labels), time.monotonic() + 60).metrics
    assert m["poison_rows"] == 50
    assert m["poison_rejected"] == 50 and m["poison_rejection_rate"] == 1.0
    assert "retrained" not in m  # no retrain path: no retrain was tried, not measured
    status = httpx.get(demo.base_url + "/status").json()
    assert status["ingested_rows"] == 0


def test_label_flip_degrades_the_retrained_model(demo):
    dataset, labels = demo_rows(2000)
    attack = make_attack(
        "flip",
        "poison.label_flip",
        {
            "samples": 300,
            "rows": 3000,
            "source_class": 1,
            "target_class": 0,
        },
    )
    m = attack.run(demo.context(dataset, labels, seed=4), time.monotonic() + 90).metrics
    assert m["retrained"] == 1
    assert m["poison_accepted"] == 3000 and m["poison_rejection_rate"] == 0.0
    assert m["clean_accuracy_before"] > 0.85
    assert m["clean_accuracy_drop"] > 0.02  # the undefended pipeline learns the flipped labels
    retrain = httpx.get(demo.base_url + "/v2/models/fraud/retrain").json()
    assert retrain["state"] == "done" and retrain["ingested_rows"] == 3000
