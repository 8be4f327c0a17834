"""A surrogate of the target trained from its answers: for transfer attacks and the
model-extraction risk figure. Inputs are attack-space points (columns in [0, 1])."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import torch
from torch import nn

from attacks.endpoint import EndpointClient
from attacks.space import FeatureSpace


@contextmanager
def single_thread() -> Iterator[None]:
    """Tiny models: extra torch threads only contend (30x slower on a busy 2-core box)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def surrogate_net(width: int, classes: int, hidden: int = 64) -> nn.Module:
    return nn.Sequential(
        nn.Linear(width, hidden),
        nn.ReLU(),
        nn.Linear(hidden, hidden),
        nn.ReLU(),
        nn.Linear(hidden, classes),
    )


def train_surrogate(
    z: np.ndarray, y: np.ndarray, classes: int, seed: int = 0, steps: int = 400
) -> nn.Module:
    """Full-batch Adam on (attack-space points, labels the target gave); small data, quick."""
    with single_thread():
        return _train(z, y, classes, seed, steps)


def _train(z: np.ndarray, y: np.ndarray, classes: int, seed: int, steps: int) -> nn.Module:
    torch.manual_seed(seed)
    net = surrogate_net(z.shape[1], classes)
    x_t = torch.as_tensor(z, dtype=torch.float32)
    y_t = torch.as_tensor(y, dtype=torch.int64)
    optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(steps):
        optimizer.zero_grad()
        loss_fn(net(x_t), y_t).backward()
        optimizer.step()
    net.eval()
    return net


def predict(net: nn.Module, z: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return net(torch.as_tensor(z, dtype=torch.float32)).argmax(1).numpy()


def query_points(
    client: EndpointClient,
    space: FeatureSpace,
    dataset: dict[str, np.ndarray],
    rows: np.ndarray,
    jitter: float,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ask the target about the dataset rows `rows`, each moved by uniform noise of
    ±`jitter` in attack space (points near real data teach the boundary best)."""
    rng = np.random.default_rng(seed)
    x = dataset[space.input][rows]
    z = space.encode(x)
    z = np.clip(z + rng.uniform(-jitter, jitter, size=z.shape), 0.0, 1.0).astype(np.float32)
    batch = {name: arr[rows] for name, arr in dataset.items()}
    raw = x.astype(np.float64).copy()
    raw[:, space.mutable] = space.low[space.mutable] + z * space.span
    batch[space.input] = raw.astype(x.dtype)
    labels, _ = client.predict(batch)
    return z, labels
