"""Train the tiny iris classifier the real model servers serve (run with a server venv's python).

Trained inside each server's own venv so the pickle matches the scikit-learn (or torch)
that loads it. Writes atomically: concurrent launches never see half a file.

    python train_iris.py sklearn OUT.joblib
    python train_iris.py torchscript OUT.pt
"""

from __future__ import annotations

import os
import sys

from sklearn.datasets import load_iris


def main(kind: str, out: str) -> None:
    x, y = load_iris(return_X_y=True)
    tmp = f"{out}.{os.getpid()}.tmp"
    if kind == "sklearn":
        import joblib
        from sklearn.linear_model import LogisticRegression

        joblib.dump(LogisticRegression(max_iter=500).fit(x, y), tmp)
    elif kind == "torchscript":
        import torch

        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, 3))
        xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y)
        opt = torch.optim.Adam(net.parameters(), lr=0.05)
        for _ in range(300):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xt), yt).backward()
            opt.step()
        torch.jit.script(net.eval()).save(tmp)
    else:
        raise SystemExit(f"unknown model kind {kind!r}: use sklearn or torchscript")
    os.replace(tmp, out)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
