"""The model server's on-disk cache of trained models (checksummed at load).

One file per training recipe (*variant*), so that servers in different modes can
share a state folder: ``model.pt`` holds the adversarially trained models that
resilient mode serves, ``model-plain.pt`` the plainly trained ones of fragile mode.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from harness.demo.model import FallbackNet, FraudNet, Models
from harness.demo.storage import load_checksummed, save_checksummed

VARIANTS = ("robust", "plain")
MODEL_FILES = {"robust": "model.pt", "plain": "model-plain.pt"}


def model_path(state_dir: Path, variant: str = "robust") -> Path:
    return Path(state_dir) / MODEL_FILES[variant]


def variant_of(models: Models) -> str:
    return "robust" if models.meta.get("robust_eps", 0.0) > 0 else "plain"


def payload_of(models: Models) -> dict[str, Any]:
    """What is saved of ``models``: state dicts and meta (loadable with weights_only)."""
    payload = {
        "main": models.main.state_dict(),
        "fallback": models.fallback.state_dict(),
        "meta": models.meta,
    }
    if models.screen is not None:
        payload["screen"] = models.screen.state_dict()
    return payload


def models_from_payload(payload: dict[str, Any]) -> Models:
    main, fallback = FraudNet(), FallbackNet()
    main.load_state_dict(payload["main"])
    fallback.load_state_dict(payload["fallback"])
    main.eval()
    fallback.eval()
    screen = None
    if "screen" in payload:
        screen = FraudNet()
        screen.load_state_dict(payload["screen"])
        screen.eval()
    return Models(main=main, fallback=fallback, meta=dict(payload["meta"]), screen=screen)


def models_to_bytes(models: Models) -> bytes:
    buffer = io.BytesIO()
    torch.save(payload_of(models), buffer)
    return buffer.getvalue()


def models_from_bytes(data: bytes) -> Models:
    """Models from a model file's bytes; whatever a file that is not one raises propagates."""
    return models_from_payload(torch.load(io.BytesIO(data), map_location="cpu", weights_only=True))


def save_models(state_dir: Path, models: Models) -> str:
    """Cache ``models`` in ``state_dir`` under their variant; returns the checksum written."""
    path = model_path(state_dir, variant_of(models))
    return save_checksummed(path, payload_of(models), meta={"kind": "fraud-models"})


def load_models(state_dir: Path, variant: str = "robust") -> Models:
    """Load cached models of ``variant``; FileNotFoundError if there are none (or the
    file holds another variant, as caches written before variants did), ChecksumMismatch
    if the file is corrupt."""
    path = model_path(state_dir, variant)
    models = models_from_payload(load_checksummed(path))
    if variant_of(models) != variant:
        raise FileNotFoundError(f"{path} holds {variant_of(models)} models, not {variant}")
    return models
