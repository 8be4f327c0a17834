"""Real model files for the artifact tests: the demo's networks, untrained, seeded."""

from __future__ import annotations

import torch

from harness.demo.model import FallbackNet, FraudNet, Models
from harness.demo.model_cache import models_to_bytes


def model_bytes(seed: int) -> bytes:
    """A model file's bytes; another seed is another model."""
    torch.manual_seed(seed)
    return models_to_bytes(Models(main=FraudNet(), fallback=FallbackNet(), meta={"seed": seed}))
