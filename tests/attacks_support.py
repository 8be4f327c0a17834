"""Shared pieces of the attack tests: a live demo (feature store + model server) and a
local torch copy of the served model, for cross-checks with ART's own evaluation."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import uvicorn
from torch import nn

from harness.core.attack import AttackContext
from harness.core.processes import ManagedProcess, free_port
from harness.core.protocols import make_adapter
from harness.demo.data import entity_table, sample
from harness.demo.model import preprocess_entities
from harness.demo.model_cache import load_models


@dataclass
class LiveDemo:
    base_url: str
    state_dir: Path

    def context(
        self, dataset: dict[str, np.ndarray], labels: np.ndarray | None, seed: int = 0
    ) -> AttackContext:
        return AttackContext(
            base_url=self.base_url,
            adapter=make_adapter("oip-v2"),
            model="fraud",
            dataset=dataset,
            labels=labels,
            seed=seed,
        )


@contextmanager
def live_demo(tmp: Path, *extra: str) -> Iterator[LiveDemo]:
    """Feature store + model server as real child processes, stopped on every path."""
    fs_port, port = free_port(), free_port()
    store = ManagedProcess(
        "feature-store",
        [sys.executable, "-m", "harness.demo", "feature-store", "--port", str(fs_port)],
        tmp / "fs.log",
    )
    server = ManagedProcess(
        "model-server",
        [
            sys.executable,
            "-m",
            "harness.demo",
            "serve",
            "--port",
            str(port),
            "--feature-store",
            f"http://127.0.0.1:{fs_port}",
            "--state-dir",
            str(tmp / "state"),
            *extra,
        ],
        tmp / "server.log",
    )
    try:
        store.start()
        store.wait_http_ready(f"http://127.0.0.1:{fs_port}/health", timeout=30)
        server.start()
        server.wait_http_ready(f"http://127.0.0.1:{port}/v2/health/ready", timeout=120)
        yield LiveDemo(base_url=f"http://127.0.0.1:{port}", state_dir=tmp / "state")
    finally:
        server.stop()
        store.stop()


@contextmanager
def serve_app(app: object) -> Iterator[str]:
    """An ASGI app served by uvicorn on a free loopback port in a thread; yields its URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def demo_rows(n: int = 2000, seed: int = 1) -> tuple[dict[str, np.ndarray], np.ndarray]:
    s = sample(n, 0, seed)
    return {"features": s.features, "entity_id": s.entity_id}, s.label


def one_entity_rows(entity: int, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """`n` labelled rows that all belong to one entity (so one local model copy fits all)."""
    s = sample(200_000, 0, 5)
    keep = np.flatnonzero(s.entity_id == entity)[:n]
    return {"features": s.features[keep], "entity_id": s.entity_id[keep]}, s.label[keep]


class OneEntityModel(nn.Module):
    """The served main model, in torch end to end, for rows of one entity:
    raw request features [n, 6] → logits. Mirrors harness.demo.model's preprocessing."""

    def __init__(self, state_dir: Path, entity: int) -> None:
        super().__init__()
        self.main = load_models(state_dir).main
        ent = preprocess_entities(entity_table(0)[[entity]])
        self.register_buffer("entity", torch.as_tensor(ent, dtype=torch.float32))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hour = x[:, 1] / 24.0 * 2.0 * torch.pi
        tx = torch.stack(
            [
                torch.log1p(torch.clamp(x[:, 0], min=0.0)),
                torch.sin(hour),
                torch.cos(hour),
                torch.log1p(torch.clamp(x[:, 2], min=0.0)),
                x[:, 3],
                torch.log1p(torch.clamp(x[:, 4], min=0.0)),
                x[:, 5],
            ],
            dim=1,
        )
        return self.main(torch.cat([tx, self.entity.expand(x.shape[0], -1)], dim=1))
