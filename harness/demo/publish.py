"""`python -m harness.demo publish`: a model version as a signed artifact, the way a CI job
or a registry would hand it to the server (see signing.py for the layout)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.demo.config import ServerConfig
from harness.demo.data import sample
from harness.demo.model import Models, train_models
from harness.demo.model_cache import load_models, models_to_bytes, save_models
from harness.demo.service import TRAIN_SAMPLE_SEED
from harness.demo.signing import publish_artifact, signing_key
from harness.demo.storage import ChecksumMismatch

ROBUST_EPS = ServerConfig.robust_eps


def harness_state_dir() -> Path:
    """The folder aftershock's runs give the demo server (and so the key it trusts)."""
    base = os.environ.get("AFTERSHOCK_CACHE") or str(Path.home() / ".cache" / "aftershock")
    return Path(base) / "demo"


def models_to_publish(state_dir: Path, variant: str, train_seed: int | None) -> Models:
    """The cached models of ``variant`` (trained and cached first if there are none), or,
    with ``train_seed``, models freshly trained with that seed: another model altogether."""
    eps = ROBUST_EPS if variant == "robust" else 0.0
    if train_seed is None:
        try:
            return load_models(state_dir, variant)
        except (FileNotFoundError, ChecksumMismatch):
            pass  # the server would train them too; cached so that it need not
    models = train_models(
        sample(ServerConfig.train_rows, 0, TRAIN_SAMPLE_SEED),
        seed=train_seed or 0,
        steps=ServerConfig.train_steps,
        robust_eps=eps,
    )
    if train_seed is None:
        save_models(state_dir, models)
    return models


def publish(
    state_dir: Path, out: Path, version: str, variant: str, train_seed: int | None = None
) -> dict[str, Any]:
    """Publish ``version`` into ``out``, signed with the state folder's key; returns what
    the manifest says of it."""
    models = models_to_publish(state_dir, variant, train_seed)
    models.meta["version"] = version
    meta = {"variant": variant, "train_seed": train_seed}
    publish_artifact(out, models_to_bytes(models), version, signing_key(state_dir), meta)
    return {"version": version, "variant": variant, "out": str(out)}
