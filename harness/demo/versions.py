"""The model versions the server answers with: the stable one and at most one canary.

A canary takes a `share` of the requests (a seeded split) until it is promoted (it becomes
the stable version; the one it replaced is kept, so a rollback can bring it back) or
rolled back. A version may be degraded on purpose, for chaos tests of the rollout path:
seeded label noise, a shifted decision threshold, extra latency, crashes on some inputs.
"""

from __future__ import annotations

import math
import random
import threading
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from harness.demo.model import Models
from harness.demo.protocol import InvalidRequest


class VersionCrashed(Exception):
    """A (deliberately degraded) version failed on this input: answered 500, naming the version."""

    def __init__(self, version: str) -> None:
        super().__init__(f"model version {version} crashed on this input")
        self.version = version


@dataclass(frozen=True)
class Degradation:
    label_noise: float = 0.0  # share of rows whose answer flips to the other class
    threshold_shift: float = 0.0  # added to the 0.5 decision threshold of the fraud class
    slow: float = 0.0  # seconds added to every request
    crash_share: float = 0.0  # share of entities (entity_id) the version crashes on
    seed: int = 0

    @classmethod
    def from_json(cls, body: Any) -> Degradation:
        if body is None or body == {}:
            return cls()
        if not isinstance(body, dict):
            raise InvalidRequest("'degrade' must be an object, e.g. {\"label_noise\": 0.3}")
        unknown = set(body) - {f for f in cls.__dataclass_fields__}
        if unknown:
            raise InvalidRequest(f"'degrade': unknown keys {sorted(unknown)}; known: "
                                 f"{sorted(cls.__dataclass_fields__)}")
        values = {}
        for key, value in body.items():
            if type(value) not in (int, float) or not math.isfinite(value):
                raise InvalidRequest(f"'degrade.{key}' must be a number")
            values[key] = int(value) if key == "seed" else float(value)
        d = cls(**values)
        for key in ("label_noise", "crash_share"):
            if not 0.0 <= getattr(d, key) <= 1.0:
                raise InvalidRequest(f"'degrade.{key}' must lie in 0..1")
        if not -1.0 <= d.threshold_shift <= 1.0 or not 0.0 <= d.slow <= 10.0:
            raise InvalidRequest("'degrade.threshold_shift' must lie in -1..1 and 'degrade.slow' in 0..10 s")
        return d

    @property
    def active(self) -> bool:
        return self != Degradation(seed=self.seed)


@dataclass
class ServedVersion:
    label: str
    models: Models
    degrade: Degradation = field(default_factory=Degradation)
    _noise: np.random.Generator | None = None

    def crashes(self, entity_id: np.ndarray) -> np.ndarray:
        """Per row: this version crashes on it (the same entities every time, chosen by the
        seed: "crashes on some inputs")."""
        share = self.degrade.crash_share
        if not share:
            return np.zeros(len(entity_id), dtype=bool)
        return (entity_id.astype(np.int64) * 2654435761 + self.degrade.seed) % 1000 < share * 1000

    def check_input(self, entity_id: np.ndarray) -> None:
        """VersionCrashed if this version crashes on any row of the batch."""
        if self.crashes(entity_id).any():
            raise VersionCrashed(self.label)

    def degraded(self, probabilities: np.ndarray) -> np.ndarray:
        """The answer as this version gives it: threshold shifted, some rows flipped (seeded)."""
        d = self.degrade
        if not d.active:
            return probabilities
        p = probabilities.astype(np.float32, copy=True)
        if d.threshold_shift:
            fraud = np.clip(p[:, 1] - d.threshold_shift, 0.0, 1.0)  # fraud iff p >= 0.5 + shift
            p = np.stack([1.0 - fraud, fraud], axis=1).astype(np.float32)
        if d.label_noise:
            if self._noise is None:
                self._noise = np.random.default_rng(d.seed)
            flip = self._noise.random(len(p)) < d.label_noise
            p[flip] = p[flip][:, ::-1]
        return p


@dataclass
class VersionRouter:
    """Which version answers a request; deploy, promote and roll back."""

    canary: ServedVersion | None = None
    share: float = 0.0
    promoted: list[ServedVersion] = field(default_factory=list)  # stack: the last one is stable
    seed: int = 0
    _split: random.Random = field(default_factory=random.Random)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stable(self, base: ServedVersion) -> ServedVersion:
        """The stable version: the last promoted one, else the server's own (`base`)."""
        return self.promoted[-1] if self.promoted else base

    def pick(self, base: ServedVersion) -> ServedVersion:
        canary = self.canary
        if canary is not None and self._split.random() < self.share:
            return canary
        return self.stable(base)

    def deploy(self, version: ServedVersion, share: float) -> None:
        """`version` as a canary at `share`, or straight to stable at share 1."""
        with self._lock:
            self._split = random.Random(f"{self.seed}:{version.label}")
            if share >= 1.0:
                self.canary, self.share = None, 0.0
                self.promoted.append(version)
            else:
                self.canary, self.share = version, share

    def promote(self) -> ServedVersion | None:
        with self._lock:
            canary, self.canary, self.share = self.canary, None, 0.0
            if canary is not None:
                self.promoted.append(canary)
            return canary

    def rollback(self) -> str | None:
        """Drop the canary, or else the last promoted version; the label dropped (None: nothing)."""
        with self._lock:
            if self.canary is not None:
                label, self.canary, self.share = self.canary.label, None, 0.0
                return label
            if self.promoted:
                return self.promoted.pop().label
            return None

    def describe(self, base: ServedVersion) -> dict[str, Any]:
        canary = self.canary
        return {
            "stable": self.stable(base).label,
            "canary": canary.label if canary else None,
            "canary_share": self.share if canary else 0.0,
            "history": [base.label, *(v.label for v in self.promoted)],
        }
