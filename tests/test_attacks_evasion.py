"""Black-box and white-box evasion against a live demo, cross-checked with ART's own
evaluation of a local torch copy of the served model on the same inputs."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod
from art.estimators.classification import PyTorchClassifier
from art.metrics import adversarial_accuracy
from torch import nn

from attacks.space import FeatureSpace
from attacks.whitebox import RawInputModel
from harness.core.attack import make_attack
from tests.attacks_support import OneEntityModel, demo_rows, live_demo, one_entity_rows

ENTITY = 17


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    # the cross-checks with ART need the search unimpeded; the query guard has its own test
    with live_demo(tmp_path_factory.mktemp("evasion"), "--no-query-guard") as d:
        yield d


@pytest.fixture(scope="module")
def local_copy(demo):
    return OneEntityModel(demo.state_dir, ENTITY).eval()


def art_classifier(model: nn.Module, input_shape: tuple[int, ...]) -> PyTorchClassifier:
    return PyTorchClassifier(
        model, loss=nn.CrossEntropyLoss(), input_shape=input_shape, nb_classes=2
    )


def test_local_copy_matches_the_endpoint(demo, local_copy):
    """Precondition of the cross-checks: the copy answers like the server."""
    dataset, labels = one_entity_rows(ENTITY, 40)
    ctx = demo.context(dataset, labels)
    from attacks.endpoint import EndpointClient

    with EndpointClient(ctx, max_queries=100, deadline=time.monotonic() + 30) as client:
        served, scores = client.predict(dataset)
    local = art_classifier(local_copy, (6,)).predict(dataset["features"]).argmax(1)
    assert scores is not None and scores.shape == (40, 2)
    assert np.mean(served == local) >= 0.97


def test_hopskipjump_robust_accuracy_agrees_with_art(demo, local_copy):
    dataset, labels = one_entity_rows(ENTITY, 40)
    attack = make_attack(
        "hsj",
        "evasion.hopskipjump",
        {
            "samples": 6,
            "max_queries": 3000,
            "max_iter": 5,
            "max_eval": 50,
            "init_eval": 10,
        },
    )
    result = attack.run(demo.context(dataset, labels, seed=2), time.monotonic() + 60)
    m = result.metrics
    assert m["samples"] >= 3
    assert m["queries"] <= 3000
    assert m["attack_success_rate"] > 0  # an undefended MLP falls to HSJ without an eps bound
    rows = np.array(result.details["rows"])
    x_adv = np.array(result.details["adversarial"], dtype=np.float32)
    # ART's evaluation of the same adversarial rows on the local copy of the served model
    art_pred = art_classifier(local_copy, (6,)).predict(x_adv).argmax(1)
    art_robust = float(np.mean(art_pred == labels[rows]))
    # HSJ's points sit just across the boundary: allow one float-rounding disagreement
    assert abs(art_robust - m["robust_accuracy"]) <= 1 / len(rows) + 1e-9


def test_square_uses_scores_and_respects_budget_and_rate(demo):
    dataset, labels = demo_rows(400)
    attack = make_attack(
        "sq",
        "evasion.square",
        {
            "samples": 5,
            "max_queries": 150,
            "eps": 0.1,
            "max_iter": 40,
            "rate_limit": "200/s",
        },
    )
    started = time.monotonic()
    m = attack.run(demo.context(dataset, labels, seed=1), time.monotonic() + 60).metrics
    elapsed = time.monotonic() - started
    assert m["queries"] <= 150
    assert m["requests"] <= 200 * elapsed + 1  # the limiter only ever slows requests down
    assert m["server_errors"] == 0
    if m.get("successes"):
        assert m["perturbation_linf"] <= 0.1 + 1e-6


def test_attack_stops_at_its_deadline(demo):
    dataset, labels = demo_rows(400)
    attack = make_attack("b", "evasion.boundary", {"samples": 50, "max_queries": 10**6})
    started = time.monotonic()
    result = attack.run(demo.context(dataset, labels), time.monotonic() + 2.0)
    assert time.monotonic() - started < 15  # generous: a busy 2-core box
    assert "window" in result.details["stopped"]


def test_fgsm_whitebox_matches_art_adversarial_accuracy(demo, local_copy, tmp_path):
    dataset, labels = one_entity_rows(ENTITY, 30)
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.trace(local_copy, torch.as_tensor(dataset["features"][:2])), str(path))
    eps = 0.1
    attack = make_attack(
        "fgsm",
        "whitebox.fgsm",
        {
            "samples": 30,
            "max_queries": 1000,
            "eps": eps,
            "model": str(path),
        },
    )
    m = attack.run(demo.context(dataset, labels), time.monotonic() + 60).metrics
    # ART's own figure for the same attack on the same model and inputs
    space = FeatureSpace.from_data("features", dataset["features"])
    model = RawInputModel(local_copy, space).eval()
    classifier = PyTorchClassifier(
        model, loss=nn.CrossEntropyLoss(), input_shape=(6,), nb_classes=2, clip_values=(0.0, 1.0)
    )
    z = space.encode(dataset["features"])
    fgsm = FastGradientMethod(classifier, norm=np.inf, eps=eps, eps_step=eps)
    art_acc = adversarial_accuracy(classifier, z, np.eye(2)[labels], attack_crafter=fgsm)
    # ART: unchanged-and-correct / correct; ours: correct-and-unchanged / all
    assert m["whitebox_robust_accuracy"] == pytest.approx(
        art_acc * m["clean_accuracy"], abs=1 / 30 + 1e-9
    )
    assert m["transfer_rate"] >= 0.8  # same model: white-box successes carry over to the endpoint
    assert m["robust_accuracy"] < m["clean_accuracy"]


def test_surrogate_autoattack_reports_the_masking_flag(demo):
    dataset, labels = demo_rows(600)
    attack = make_attack(
        "aa",
        "whitebox.autoattack",
        {
            "samples": 8,
            "max_queries": 2500,
            "eps": 0.05,
            "max_iter": 5,
            "surrogate_queries": 300,
        },
    )
    m = attack.run(demo.context(dataset, labels), time.monotonic() + 90).metrics
    assert m["gradient_masking"] in (0.0, 1.0)
    assert m["blackbox_robust_accuracy"] <= m["clean_accuracy"]
    assert (
        m["robust_accuracy"]
        <= min(m[f"robust_accuracy_{k}"] for k in ("fgsm", "pgd", "apgd")) + 1e-9
    )
