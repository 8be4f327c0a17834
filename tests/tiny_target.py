"""A tiny scenario against a real local OIP v2 server (harness.engine.load.reference_server),
for tests that need real runs without the demo's start-up time."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dataset(folder: Path) -> Path:
    path = folder / "rows.npz"
    x = np.array([[0, 1], [1, 0], [0, 0], [1, 1]], dtype=np.float32)
    np.savez(path, x=x, label=x[:, 0].astype(np.int64))  # the reference model predicts int(row[0])
    return path


def write_scenario(
    folder: Path, name: str, url: str, p95_limit: str = "500ms", duration: str = "2s"
) -> Path:
    write_dataset(folder)
    path = folder / f"{name}.yaml"
    path.write_text(
        f"""\
name: {name}
target: {{url: {url}, protocol: oip-v2, model: m}}
load: {{users: 2, duration: {duration}, window: 0.5s, data: {{dataset: rows.npz}}}}
slos:
  - name: fast enough
    expect: p95(latency) < {p95_limit}
  - name: available
    expect: availability >= 99%
""",
        encoding="utf-8",
    )
    return path.resolve()
