"""Attack pieces that need no server: rates, the attack space, metrics, the registry."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from art.attacks.evasion import FastGradientMethod
from art.estimators.classification import PyTorchClassifier
from art.metrics import adversarial_accuracy
from torch import nn

from attacks.space import FeatureSpace
from harness.core.attack import attack_types, make_attack, parse_rate
from harness.core.attack_metrics import evasion_metrics, gradient_masking
from harness.core.fault import UserError


def test_parse_rate():
    assert parse_rate("50/s") == 50.0
    assert parse_rate("600/m") == 10.0
    assert parse_rate(20) == 20.0
    assert parse_rate(None) is None
    with pytest.raises(ValueError, match="50/s"):
        parse_rate("fast")


def test_feature_space_round_trip_and_fixed_columns():
    x = np.array([[0.0, 10.0, 5.0], [4.0, 20.0, 5.0], [2.0, 15.0, 5.0]], dtype=np.float32)
    space = FeatureSpace.from_data("f", x, mutable=[0, 1])
    z = space.encode(x)
    assert z.shape == (3, 2) and z.min() == 0.0 and z.max() == 1.0
    back = space.decode(z[2:3], x[2])
    np.testing.assert_allclose(back, x[2:3])
    moved = space.decode(np.array([[1.0, 0.0]]), x[2])
    assert moved.tolist() == [[4.0, 10.0, 5.0]]  # column 2 is not mutable: copied from the row
    assert space.decode(np.array([[np.nan, 2.0]]), x[2]).tolist() == [[2.0, 20.0, 5.0]]


def test_feature_space_keeps_constant_columns_in_place():
    x = np.array([[0.0, 10.0, 5.0], [4.0, 20.0, 5.0]], dtype=np.float32)  # column 2 never varies
    assert FeatureSpace.from_data("f", x).mutable.tolist() == [0, 1]  # not attacked by default
    named = FeatureSpace.from_data("f", x, mutable=[0, 1, 2])
    assert named.span.tolist() == [4.0, 10.0, 0.0]
    assert named.decode(np.array([[1.0, 1.0, 1.0]]), x[0]).tolist() == [[4.0, 20.0, 5.0]]  # never 6.0
    with pytest.raises(UserError, match="constant"):
        FeatureSpace.from_data("f", np.ones((3, 2), np.float32))


def test_evasion_metrics_by_hand():
    y = np.array([1, 1, 0, 0])
    clean = np.array([1, 1, 0, 1])  # the last is wrong to begin with
    adv = np.array([0, 1, 1, 1])
    z = np.zeros((4, 2))
    z_adv = np.array([[0.1, 0.0], [0.0, 0.0], [0.0, 0.5], [0.0, 0.0]])
    m = evasion_metrics(y, clean, adv, z, z_adv, queries=30)
    assert m["clean_accuracy"] == 0.75
    assert m["robust_accuracy"] == 0.25
    assert m["attack_success_rate"] == pytest.approx(2 / 3)
    assert m["perturbation_l2"] == pytest.approx(0.3)
    assert m["queries_per_success"] == 15
    bounded = evasion_metrics(y, clean, adv, z, z_adv, eps=0.2, norm=np.inf)
    assert bounded["attack_success_rate"] == pytest.approx(1 / 3)  # the 0.5 step is out of bounds
    # every sample wrong to begin with: none was attacked, so the success rate is not
    # measured (an SLO `attack_success_rate <= 10%` fails on it), never 0 %
    none_right = evasion_metrics(y, 1 - y, 1 - y, z, z)
    assert "attack_success_rate" not in none_right and none_right["robust_accuracy"] == 0


def test_gradient_masking_flag():
    assert gradient_masking(0.2, 0.5, samples=20)
    assert not gradient_masking(0.5, 0.2, samples=20)
    assert not gradient_masking(0.45, 0.5, samples=20)  # one sample: noise, not masking


def test_metrics_agree_with_art_adversarial_accuracy():
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(200, 4)).astype(np.float32)
    y = (x[:, 0] + x[:, 1] > 1.0).astype(np.int64)
    net = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 2))
    opt = torch.optim.Adam(net.parameters(), lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        nn.functional.cross_entropy(net(torch.as_tensor(x)), torch.as_tensor(y)).backward()
        opt.step()
    clf = PyTorchClassifier(
        net, loss=nn.CrossEntropyLoss(), input_shape=(4,), nb_classes=2, clip_values=(0, 1)
    )
    fgsm = FastGradientMethod(clf, eps=0.1)
    x_adv = fgsm.generate(x)
    ours = evasion_metrics(y, clf.predict(x).argmax(1), clf.predict(x_adv).argmax(1), x, x_adv)
    art = adversarial_accuracy(clf, x, np.eye(2)[y], attack_crafter=fgsm)
    assert 1.0 - ours["attack_success_rate"] == pytest.approx(art)
    assert ours["robust_accuracy"] == pytest.approx(art * ours["clean_accuracy"])
    assert 0 < ours["attack_success_rate"] < 1


def test_registry_knows_every_family():
    types = attack_types()
    for name in (
        "evasion.hopskipjump",
        "evasion.square",
        "evasion.simba",
        "evasion.boundary",
        "whitebox.fgsm",
        "whitebox.pgd",
        "whitebox.autoattack",
        "poison.label_flip",
        "poison.backdoor",
        "poison.clean_label",
        "abuse.fuzz",
        "abuse.flood",
        "abuse.extraction",
    ):
        assert name in types


def test_registry_errors_are_user_errors():
    with pytest.raises(UserError, match="numpy 2"):
        make_attack("g", "evasion.geoda", {})
    with pytest.raises(UserError, match="did you mean 'evasion.hopskipjump'"):
        make_attack("h", "evasion.hopskipjmp", {})
    with pytest.raises(UserError, match="max_queries"):
        make_attack("h", "evasion.hopskipjump", {"max_queries": 0})
    with pytest.raises(UserError, match="rate_limit"):
        make_attack("h", "evasion.hopskipjump", {"rate_limit": "lots"})
    with pytest.raises(UserError, match="norm: inf only"):
        make_attack("s", "evasion.square", {"norm": 2})
    with pytest.raises(UserError, match="trigger"):
        make_attack("b", "poison.backdoor", {})
