"""Finding the knee: the highest load level at which a trial's SLOs hold.

The search only sees verdicts (held or not) per level, so it can be read and checked apart
from any run. Levels are a grid (step, 2·step, ..., max). Bisection keeps a bracket: `lo`,
the highest level known to hold below `hi`, the lowest level known to fail (beyond the
grid's top counts as failing, below its bottom as holding). The first failure caps the
knee, so a level that holds above one that fails never raises it (capacity is where
things first break). Once the bracket is one step wide, both of its ends are run once
more: a level whose verdicts differ (a flip) gets a third trial, and its majority decides.
A majority that moves the bracket sends the search on inside the new bracket.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

SearchKind = Literal["bisect", "linear"]


class BudgetSpent(Exception):
    """The time budget cannot fit another trial: the search stops with the bracket it has."""


def level_grid(maximum: float, step: float, integral: bool) -> list[float]:
    """step, 2·step, ... up to `maximum` (always included, so the top is tested)."""
    count = math.floor(maximum / step + 1e-9)
    levels = [round(step * i, 9) for i in range(1, count + 1)]
    if not levels or levels[-1] < maximum - 1e-9:
        levels.append(maximum)
    return [int(v) if integral else v for v in levels]


def planned_trials(levels: int, kind: SearchKind, confirm: bool) -> int:
    """Trials one sweep is expected to take (no flips): what the budget is split by."""
    walk = math.ceil(math.log2(levels + 1)) if kind == "bisect" else levels
    return walk + (2 if confirm else 0)


@dataclass
class LevelVotes:
    level: float
    votes: list[bool] = field(default_factory=list)  # per trial: did every SLO hold

    @property
    def holds(self) -> bool | None:
        """The majority verdict; None on a tie (another trial decides)."""
        yes = sum(self.votes)
        no = len(self.votes) - yes
        return None if yes == no else yes > no

    @property
    def flipped(self) -> bool:
        return len(set(self.votes)) > 1


@dataclass
class SearchOutcome:
    levels: list[float]
    votes: dict[int, LevelVotes]  # by grid index
    lo: int  # highest index that holds below hi; -1: none did
    hi: int  # lowest index that fails; len(levels): none did
    complete: bool  # False: the budget ran out first

    @property
    def knee(self) -> float | None:
        """The highest level that held (on a majority of its trials); None: not even the lowest."""
        return self.levels[self.lo] if self.lo >= 0 else None

    @property
    def first_failure(self) -> float | None:
        return self.levels[self.hi] if self.hi < len(self.levels) else None

    @property
    def flipped_levels(self) -> list[float]:
        return [v.level for _, v in sorted(self.votes.items()) if v.flipped]


class KneeSearch:
    """Drives `judge(level) -> held` over the grid until the knee is bracketed to one step.

    `ceiling`: an index known to fail without testing it (the fault sweep starts under the
    healthy sweep's first failure: a fault is not expected to add capacity)."""

    def __init__(self, levels: list[float], judge: Callable[[float], bool], kind: SearchKind = "bisect",
                 confirm: bool = True, ceiling: int | None = None) -> None:
        self.levels = levels
        self.judge = judge
        self.kind = kind
        self.confirm = confirm
        self.ceiling = len(levels) if ceiling is None else ceiling
        self.votes: dict[int, LevelVotes] = {}

    def bracket(self) -> tuple[int, int]:
        failing = [i for i, v in self.votes.items() if v.holds is False]
        hi = min([*failing, self.ceiling])
        holding = [i for i, v in self.votes.items() if v.holds is True and i < hi]
        return max(holding, default=-1), hi

    def next_index(self) -> int | None:
        """The grid index to try next, or None when the knee is bracketed and confirmed."""
        tied = [i for i, v in self.votes.items() if v.holds is None]
        if tied:
            return min(tied)
        lo, hi = self.bracket()
        if hi - lo > 1:
            return lo + 1 if self.kind == "linear" else (lo + hi) // 2
        if self.confirm:
            for i in (lo, hi):
                if i in self.votes and len(self.votes[i].votes) < 2:
                    return i
        return None

    def run(self) -> SearchOutcome:
        complete = True
        try:
            while (i := self.next_index()) is not None:
                held = self.judge(self.levels[i])
                self.votes.setdefault(i, LevelVotes(self.levels[i])).votes.append(held)
        except BudgetSpent:
            complete = False
        lo, hi = self.bracket()
        return SearchOutcome(self.levels, self.votes, lo, hi, complete)
