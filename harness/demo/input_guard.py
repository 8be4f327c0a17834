"""Input sanitisation before inference: clip each request feature to the range seen in
training and round the discrete ones (counts, flags).

An evasion attacker's query outside the training range, or a fractional
``card_present``, reaches the model as the nearest value a real transaction has.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from harness.demo.data import TRANSACTION_FEATURES

DISCRETE_FEATURES = ("tx_last_hour", "card_present")


@dataclass(frozen=True)
class InputGuard:
    low: np.ndarray  # per feature, float32 [6]
    high: np.ndarray
    discrete: np.ndarray  # column indices to round

    @classmethod
    def from_training(cls, features: np.ndarray) -> InputGuard:
        discrete = np.array([TRANSACTION_FEATURES.index(n) for n in DISCRETE_FEATURES])
        return cls(features.min(axis=0), features.max(axis=0), discrete)

    def apply(self, features: np.ndarray) -> np.ndarray:
        out = np.clip(features, self.low, self.high)
        out[:, self.discrete] = np.round(out[:, self.discrete])
        return out
