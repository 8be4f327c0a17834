"""Blast radius: which of the matching instances a fault hits (`count` or `percent`, seeded).

Like AWS FIS's selection modes: all matches by default, `count: N` picks N of them,
`percent: 30%` picks that share (rounded up, so a non-empty match always hits at
least one). Picks are reproducible: the same seed, fault name and matches give the
same choice.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Sequence
from typing import TypeVar

from pydantic import Field, model_validator

from harness.core.fault import FaultParams
from harness.core.units import Percent

T = TypeVar("T")


class SelectorParams(FaultParams):
    """Mixin for a fault that acts on a group of matching instances."""

    count: int | None = Field(None, ge=1, description="hit this many of the matches")
    percent: Percent | None = Field(None, description="hit this share of the matches, e.g. 50%")

    @model_validator(mode="after")
    def _one_mode(self) -> SelectorParams:
        if self.count is not None and self.percent is not None:
            raise ValueError("give either `count` or `percent`, not both")
        return self


def how_many(total: int, count: int | None, percent: float | None) -> int:
    """The number of instances to hit out of `total` matches."""
    if count is not None:
        return min(count, total)
    if percent is not None:
        return min(total, math.ceil(percent * total - 1e-9))
    return total


def select(
    items: Sequence[T],
    params: SelectorParams,
    seed: int | str,
    key: Callable[[T], str] = str,
) -> list[T]:
    """Pick the instances to hit, reproducibly for a given seed (and in a stable order)."""
    ordered = sorted(items, key=key)
    n = how_many(len(ordered), params.count, params.percent)
    if n >= len(ordered):
        return ordered
    picked = random.Random(str(seed)).sample(ordered, n)
    return sorted(picked, key=key)
