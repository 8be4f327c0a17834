"""The trained model's cache: trained once per (canary, configuration), checksummed at load.

A restarted backend (after a preemption) loads it in about a second instead of training
again: the warm restart of the preemption scenario.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from harness.demo.llm.corpus import CORPUS_VERSION
from harness.demo.llm.model import ModelConfig, TinyLM, TrainConfig, config_dict, train
from harness.demo.storage import ChecksumMismatch, load_checksummed, save_checksummed


def weights_path(state_dir: Path, canary: str, model_cfg: ModelConfig, train_cfg: TrainConfig) -> Path:
    key = json.dumps({"canary": canary, "corpus": CORPUS_VERSION, **config_dict(model_cfg, train_cfg)}, sort_keys=True)
    return Path(state_dir) / f"llm-{hashlib.sha256(key.encode()).hexdigest()[:12]}.pt"


def load_or_train(state_dir: Path, canary: str, model_cfg: ModelConfig | None = None,
                  train_cfg: TrainConfig | None = None) -> tuple[TinyLM, str]:
    """The cached model, or a freshly trained (and cached) one; also says which it was."""
    model_cfg, train_cfg = model_cfg or ModelConfig(), train_cfg or TrainConfig()
    path = weights_path(state_dir, canary, model_cfg, train_cfg)
    try:
        payload = load_checksummed(path)
        model = TinyLM(model_cfg)
        model.load_state_dict(payload["weights"])
        model.eval()
        return model, "cache"
    except FileNotFoundError:
        pass
    except ChecksumMismatch as exc:
        print(f"llm weights: {exc}; retraining", file=sys.stderr, flush=True)
        path.replace(path.with_name(path.name + ".corrupt"))
    model, info = train(model_cfg, train_cfg, canary)
    save_checksummed(path, {"weights": model.state_dict()},
                     meta={"kind": "llm-weights", **config_dict(model_cfg, train_cfg), **info})
    print(f"llm weights: trained in {info['train_seconds']:.1f}s (loss {info['final_loss']:.3f}), cached in {path}",
          file=sys.stderr, flush=True)
    return model, "trained"

