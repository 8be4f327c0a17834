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
        "ingest_guard": True,
        "promotion_gate": True,
        "input_guard": True,
        "robust_model": True,
        "query_guard": True,
        "canary_analysis": True,
        "verify_artifacts": True,
    },
    "fragile": {
        "feature_timeout": 30.0,
        "retries": 0,
        "breaker": False,
        "cache": False,
        "fallback": False,
        "max_inflight": 0,
        "ingest_guard": False,
        "promotion_gate": False,
        "input_guard": False,
        "robust_model": False,
        "query_guard": False,
        "canary_analysis": False,
        "verify_artifacts": False,
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
    max_body_bytes: int = 8 * 1024 * 1024  # bigger request bodies get a 413
    ingest_guard: bool = True  # refuse ingested rows the model contradicts confidently
    ingest_guard_confidence: float = 0.9
    promotion_gate: bool = True  # keep the current model if a retrain is worse on holdout
    promotion_max_drop: float = 0.01
    input_guard: bool = True  # clip and round request features before inference
    robust_model: bool = True  # serve an adversarially trained main model
    robust_eps: float = 0.1  # its training perturbations (L2, features scaled to [0, 1])
    query_guard: bool = True  # refuse boundary probing (many near-duplicate recent queries)
    canary_analysis: bool = True  # judge a canary against the stable version; roll back a worse one
    canary_interval: float = 1.0  # seconds per analysis interval
    canary_promote_after: float = 10.0  # seconds healthy (or, without analysis, baking) before promotion
    verify_artifacts: bool = True  # check a model artifact's signature and digest before loading
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
            "max_body_bytes": self.max_body_bytes,
            "ingest_guard": self.ingest_guard,
            "ingest_guard_confidence": self.ingest_guard_confidence,
            "promotion_gate": self.promotion_gate,
            "promotion_max_drop": self.promotion_max_drop,
            "input_guard": self.input_guard,
            "robust_model": self.robust_model,
            "query_guard": self.query_guard,
            "canary_analysis": self.canary_analysis,
            "canary_interval": self.canary_interval,
            "canary_promote_after": self.canary_promote_after,
            "verify_artifacts": self.verify_artifacts,
            "drift_webhook": self.drift_webhook,
        }
