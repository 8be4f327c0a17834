"""The two classifiers: the full fraud model and its request-only fallback.

The full model (``FraudNet``, a small MLP) sees the transaction *and* the
entity's features from the feature store. The fallback (``FallbackNet``, a
logistic regression) sees the transaction alone, so it keeps answering when the
feature store or the full model is gone, at lower accuracy.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import torch
from torch import nn

from harness.demo.data import N_CLASSES, Samples, entity_table

T = TypeVar("T")

TX_INPUTS = 7  # after preprocess_transactions
ENTITY_INPUTS = 4  # after preprocess_entities


def preprocess_transactions(features: np.ndarray) -> np.ndarray:
    """Raw request features → model inputs (logs of skewed values, cyclic hour)."""
    f = features.astype(np.float64)
    hour = f[:, 1] / 24.0 * 2.0 * np.pi
    return np.column_stack(
        [
            np.log1p(np.maximum(f[:, 0], 0.0)),
            np.sin(hour),
            np.cos(hour),
            np.log1p(np.maximum(f[:, 2], 0.0)),
            f[:, 3],
            np.log1p(np.maximum(f[:, 4], 0.0)),
            f[:, 5],
        ]
    ).astype(np.float32)


def preprocess_transactions_torch(x: torch.Tensor) -> torch.Tensor:
    """``preprocess_transactions`` in torch, differentiable (for adversarial training)."""
    hour = x[:, 1] / 24.0 * 2.0 * torch.pi
    return torch.stack(
        [
            torch.log1p(x[:, 0].clamp_min(0.0)),
            torch.sin(hour),
            torch.cos(hour),
            torch.log1p(x[:, 2].clamp_min(0.0)),
            x[:, 3],
            torch.log1p(x[:, 4].clamp_min(0.0)),
            x[:, 5],
        ],
        dim=1,
    )


def preprocess_entities(entity_features: np.ndarray) -> np.ndarray:
    """Raw entity features → model inputs."""
    e = entity_features.astype(np.float64)
    eps = 1e-6
    return np.column_stack(
        [
            np.log1p(np.maximum(e[:, 0], 0.0)),
            np.clip(e[:, 1], 0.0, 1.0),
            np.log1p(np.maximum(e[:, 2], 0.0)),
            np.log(np.clip(e[:, 3], eps, 1 - eps) / np.clip(1 - e[:, 3], eps, 1.0)),
        ]
    ).astype(np.float32)


class Standardize(nn.Module):
    """Fixed per-column standardisation, stored with the model's weights."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("std", torch.ones(width))

    def fit(self, x: torch.Tensor) -> None:
        self.mean.copy_(x.mean(0))
        self.std.copy_(x.std(0).clamp_min(1e-6))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class FraudNet(nn.Module):
    """Full model: transaction + entity features → class logits."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.norm = Standardize(TX_INPUTS + ENTITY_INPUTS)
        self.mlp = nn.Sequential(
            nn.Linear(TX_INPUTS + ENTITY_INPUTS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, N_CLASSES),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(self.norm(x))


class FallbackNet(nn.Module):
    """Fallback: logistic regression on the transaction features only."""

    def __init__(self) -> None:
        super().__init__()
        self.norm = Standardize(TX_INPUTS)
        self.linear = nn.Linear(TX_INPUTS, N_CLASSES)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.norm(x))


@dataclass
class Models:
    """A trained pair, and what it was trained on."""

    main: FraudNet
    fallback: FallbackNet
    meta: dict = field(default_factory=dict)
    # a plainly trained twin of an adversarially trained main model: adversarial
    # training flattens confidence, and the ingest guard needs a confident model
    screen: FraudNet | None = None

    def predict_screen(self, features: np.ndarray, entity_features: np.ndarray) -> np.ndarray:
        """Class probabilities of the screening model (the main model if there is none)."""
        net = self.screen if self.screen is not None else self.main
        x = np.hstack([preprocess_transactions(features), preprocess_entities(entity_features)])
        with torch.inference_mode():
            return torch.softmax(net(torch.from_numpy(x)), dim=1).numpy()

    def predict_main(self, features: np.ndarray, entity_features: np.ndarray) -> np.ndarray:
        """Class probabilities, float32 [n, N_CLASSES]."""
        x = np.hstack([preprocess_transactions(features), preprocess_entities(entity_features)])
        with torch.inference_mode():
            return torch.softmax(self.main(torch.from_numpy(x)), dim=1).numpy()

    def predict_fallback(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities from the request features alone."""
        x = preprocess_transactions(features)
        with torch.inference_mode():
            return torch.softmax(self.fallback(torch.from_numpy(x)), dim=1).numpy()


def fit(model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float) -> float:
    """Full-batch Adam; returns the final loss. The data is small, so this is quick."""
    model.norm.fit(x)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def fit_adversarial(
    model: FraudNet,
    x: torch.Tensor,
    ent: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    eps: float,
    pgd_steps: int = 3,
    lr: float = 0.01,
) -> float:
    """Adversarial training (Madry et al.), half clean and half adversarial loss.

    The perturbations are L2 PGD in the space where each raw request feature spans
    [0, 1] over the training range, which is where evasion attackers bound theirs.
    """
    low, high = x.min(0).values, x.max(0).values
    span = (high - low).clamp_min(1e-6)
    z = (x - low) / span

    def logits(point: torch.Tensor) -> torch.Tensor:
        raw = low + point.clamp(0.0, 1.0) * span
        return model(torch.hstack([preprocess_transactions_torch(raw), ent]))

    model.norm.fit(torch.hstack([preprocess_transactions_torch(x), ent]))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    loss = torch.tensor(0.0)
    for _ in range(steps):
        delta = torch.randn_like(z)
        delta = delta / delta.norm(dim=1, keepdim=True).clamp_min(1e-12) * (eps / 2)
        for _ in range(pgd_steps):
            delta.requires_grad_(True)
            (grad,) = torch.autograd.grad(loss_fn(logits(z + delta), y), delta)
            delta = delta.detach() + 1.5 * eps / pgd_steps * grad / (
                grad.norm(dim=1, keepdim=True) + 1e-12
            )
            delta = delta * (eps / delta.norm(dim=1, keepdim=True).clamp_min(1e-12)).clamp(max=1.0)
        optimizer.zero_grad()
        loss = 0.5 * loss_fn(logits(z), y) + 0.5 * loss_fn(logits(z + delta.detach()), y)
        loss.backward()
        optimizer.step()
    return float(loss.detach())


def train_models(
    samples: Samples,
    world_seed: int = 0,
    seed: int = 0,
    steps: int = 600,
    extra: Samples | None = None,
    robust_eps: float = 0.0,
) -> Models:
    """Train both models on ``samples`` (plus optional ingested rows ``extra``).

    Entity features come from the offline snapshot of the world (the same table
    the feature store serves online). ``robust_eps`` > 0 trains the main model
    adversarially with perturbations up to that L2 norm (features scaled to [0, 1]).
    """
    if extra is not None and len(extra.label):
        samples = Samples(
            features=np.vstack([samples.features, extra.features]),
            entity_id=np.concatenate([samples.entity_id, extra.entity_id]),
            label=np.concatenate([samples.label, extra.label]),
        )
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: more threads only contend (6x slower on 2 cores)
    try:
        return _train(samples, world_seed, seed, steps, robust_eps)
    finally:
        torch.set_num_threads(threads)


def in_child_process(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` in a spawned child process: a retrain beside the serving.

    On a thread of the serving process every torch op waits for the GIL again behind the
    event loop: a 4.6 s retrain took 490 s beside one busy Python thread, so under load it
    never finished inside an attack's window.
    """
    spawn = multiprocessing.get_context("spawn")  # no fork of a threaded server
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        return pool.submit(fn, *args, **kwargs).result()


def _train(samples: Samples, world_seed: int, seed: int, steps: int, robust_eps: float) -> Models:
    table = entity_table(world_seed)
    tx = torch.from_numpy(preprocess_transactions(samples.features))
    ent = torch.from_numpy(preprocess_entities(table[samples.entity_id]))
    y = torch.from_numpy(samples.label)
    torch.manual_seed(seed)
    main, fallback = FraudNet(), FallbackNet()
    main_loss = fit(main, torch.hstack([tx, ent]), y, steps=steps, lr=0.01)
    screen = None
    if robust_eps > 0:
        screen, main = main, FraudNet()
        screen.eval()
        raw = torch.from_numpy(samples.features.astype(np.float32))
        main_loss = fit_adversarial(main, raw, ent, y, steps=steps, eps=robust_eps)
    fallback_loss = fit(fallback, tx, y, steps=steps, lr=0.05)
    main.eval()
    fallback.eval()
    meta = {
        "world_seed": world_seed,
        "robust_eps": robust_eps,
        "rows": len(y),
        "main_loss": main_loss,
        "fallback_loss": fallback_loss,
    }
    return Models(main=main, fallback=fallback, meta=meta, screen=screen)


def accuracy(models: Models, samples: Samples, world_seed: int = 0) -> tuple[float, float]:
    """(main, fallback) accuracy on labelled ``samples``."""
    ent = entity_table(world_seed)[samples.entity_id]
    main = models.predict_main(samples.features, ent).argmax(1)
    fallback = models.predict_fallback(samples.features).argmax(1)
    return float((main == samples.label).mean()), float((fallback == samples.label).mean())
