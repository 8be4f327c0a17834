"""The model server's settings, and the defaults each mode gives them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.demo.feature_client import FeatureClientConfig

MODES = ("resilient", "fragile")

# Every pattern's setting per mode; a flag given on the command line wins.
MODE_DEFAULTS: dict[str, dict[str, object]] = {
    "resilient": {
        "feature_timeout": 0.1,
        "retries": 1,
        "breaker": True,
        "cache": True,
        "fallback": True,
        "max_inflight": 64,
    },
    "fragile": {
        "feature_timeout": 30.0,
        "retries": 0,
        "breaker": False,
        "cache": False,
        "fallback": False,
        "max_inflight": 0,
    },
}


@dataclass
class ServerConfig:
    state_dir: Path
    features: FeatureClientConfig
    mode: str = "resilient"
    model_name: str = "fraud"
    world_seed: int = 0
    fallback: bool = True
    max_inflight: int = 64  # 0 = no load shedding
    drift_window: int = 500
    drift_threshold: float = 0.2
    drift_min_rows: int = 250  # fewer clean rows trip PSI > 0.2 by chance (~15% at 100)
    drift_webhook: str | None = None
    train_rows: int = 6000
    train_steps: int = 250

    def describe(self) -> dict[str, object]:
        """The switches as they are, for /status and the startup line."""
        f = self.features
        return {
            "mode": self.mode,
            "feature_store": f.url,
            "feature_timeout": f.timeout,
            "retries": f.retries,
            "breaker": f.breaker,
            "breaker_failures": f.breaker_failures,
            "breaker_reset": f.breaker_reset,
            "cache": f.cache,
            "fallback": self.fallback,
            "max_inflight": self.max_inflight,
            "drift_webhook": self.drift_webhook,
        }
