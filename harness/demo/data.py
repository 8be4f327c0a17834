"""The synthetic fraud world: per-entity features, transactions and their labels.

Everything is generated from fixed seeds, so the feature store, the trainer and
``export-data`` agree on the same world without sharing any state but the seed.
The *world seed* fixes the entities and the labelling rule; a *sample seed*
picks which transactions are drawn from that world.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

N_ENTITIES = 1000
TRANSACTION_FEATURES = (
    "amount",
    "hour",
    "distance_km",
    "merchant_risk",
    "tx_last_hour",
    "card_present",
)
ENTITY_FEATURES = (
    "account_age_days",
    "chargeback_rate",
    "avg_amount",
    "home_risk",
)
N_CLASSES = 2  # 0 = legitimate, 1 = fraud
FRAUD_THRESHOLD = -0.54  # about half of all transactions are fraud: accuracy means something

# Hard bounds a value may take; ingestion rejects rows outside them.
TRANSACTION_RANGES: dict[str, tuple[float, float]] = {
    "amount": (0.0, 100_000.0),
    "hour": (0.0, 23.999),
    "distance_km": (0.0, 20_000.0),
    "merchant_risk": (0.0, 1.0),
    "tx_last_hour": (0.0, 500.0),
    "card_present": (0.0, 1.0),
}


@dataclass(frozen=True)
class Samples:
    """Labelled transactions: request features, entity ids and true classes."""

    features: np.ndarray  # float32 [n, len(TRANSACTION_FEATURES)]
    entity_id: np.ndarray  # int64 [n]
    label: np.ndarray  # int64 [n]


def entity_table(world_seed: int = 0) -> np.ndarray:
    """Features of every entity, float32 [N_ENTITIES, len(ENTITY_FEATURES)]."""
    rng = np.random.default_rng([world_seed, 1])
    latent = rng.standard_normal((N_ENTITIES, 4))
    table = np.column_stack(
        [
            np.exp(6.0 - 0.8 * latent[:, 0]),  # account_age_days: risky = young
            1.0 / (1.0 + np.exp(-(latent[:, 1] * 1.2 - 3.0))),  # chargeback_rate
            np.exp(3.5 + 0.6 * latent[:, 2]),  # avg_amount
            1.0 / (1.0 + np.exp(-latent[:, 3])),  # home_risk
        ]
    )
    return table.astype(np.float32)


def entity_risk(table: np.ndarray) -> np.ndarray:
    """The entity's share of the fraud score (standardised latent factors)."""
    age = -(np.log(table[:, 0]) - 6.0) / 0.8
    chargeback = (np.log(table[:, 1] / (1.0 - table[:, 1])) + 3.0) / 1.2
    home = np.log(table[:, 3] / (1.0 - table[:, 3]))
    return 0.9 * age + 0.9 * chargeback + 0.7 * home


def sample(n: int, world_seed: int = 0, sample_seed: int = 1) -> Samples:
    """Draw ``n`` labelled transactions from the world."""
    table = entity_table(world_seed)
    rng = np.random.default_rng([world_seed, 2, sample_seed])
    entity_id = rng.integers(0, N_ENTITIES, size=n)
    ent = table[entity_id]
    z = rng.standard_normal((n, 4))
    amount = ent[:, 2] * np.exp(0.5 * z[:, 0])
    hour = rng.uniform(0.0, 23.999, size=n)
    distance = np.exp(2.0 + 1.2 * z[:, 1])
    merchant_risk = 1.0 / (1.0 + np.exp(-z[:, 2]))
    tx_last_hour = rng.poisson(np.exp(0.5 + 0.4 * z[:, 3]))
    card_present = (rng.uniform(size=n) < 0.6).astype(np.float64)
    features = np.column_stack(
        [amount, hour, distance, merchant_risk, tx_last_hour, card_present]
    ).astype(np.float32)

    night = np.cos(hour / 24.0 * 2.0 * np.pi)  # 1 at midnight, -1 at noon
    tx_risk = 0.9 * z[:, 0] + 0.8 * z[:, 1] + 0.9 * z[:, 2] + 0.6 * night - 0.9 * card_present
    score = tx_risk + entity_risk(ent) + 0.25 * rng.standard_normal(n)
    label = (score > FRAUD_THRESHOLD).astype(np.int64)
    return Samples(features=features, entity_id=entity_id.astype(np.int64), label=label)
