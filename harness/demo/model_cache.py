"""The model server's on-disk cache of trained models (checksummed at load)."""

from __future__ import annotations

from pathlib import Path

from harness.demo.model import FallbackNet, FraudNet, Models
from harness.demo.storage import load_checksummed, save_checksummed

MODEL_FILE = "model.pt"


def model_path(state_dir: Path) -> Path:
    return Path(state_dir) / MODEL_FILE


def save_models(state_dir: Path, models: Models) -> str:
    """Cache ``models`` in ``state_dir``; returns the checksum written."""
    payload = {
        "main": models.main.state_dict(),
        "fallback": models.fallback.state_dict(),
        "meta": models.meta,
    }
    return save_checksummed(model_path(state_dir), payload, meta={"kind": "fraud-models"})


def load_models(state_dir: Path) -> Models:
    """Load cached models; FileNotFoundError if none, ChecksumMismatch if corrupt."""
    payload = load_checksummed(model_path(state_dir))
    main, fallback = FraudNet(), FallbackNet()
    main.load_state_dict(payload["main"])
    fallback.load_state_dict(payload["fallback"])
    main.eval()
    fallback.eval()
    return Models(main=main, fallback=fallback, meta=dict(payload["meta"]))
