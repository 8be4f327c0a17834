"""Where an SLO stands against its limit: its margin, and whether it is "at risk".

The rule (README, "Live dashboard"): an SLO that holds is *at risk* once its figure has used
80 % of what its limit allows, i.e. it is within 20 % of failing:

- an upper limit (`p95(latency) < 250ms`, `error_rate <= 1%`, `recovery_time < 10s`):
  the figure is at 80 % of the limit or more (200 ms against 250 ms);
- a lower limit on a fraction (`availability >= 99.5%`, `accuracy >= 0.9`): what is missing
  (1 − figure) is 80 % or more of what the limit lets go missing (1 − limit), so
  availability 99.6 % against 99.5 % is at risk, 99.95 % is not;
- any other lower limit (`throughput >= 100`): the figure is within 25 % above the limit
  (limit / figure ≥ 0.8);
- `==` and `!=` have no distance to fail by: they hold or they do not.

A figure judged on windows still open is provisional: the page says "live" until the run's
own verdict (`slo.verdict`) replaces it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

USED_SHARE_AT_RISK = 0.8  # at risk once 80 % of the allowance is used

HELD, AT_RISK, FAILING, NOT_MEASURED = "held", "at risk", "failing", "not measured"


@dataclass
class SloStanding:
    name: str
    expect: str
    state: str  # held | at risk | failing | not measured
    measured: float | None
    threshold: float | None
    unit: str
    margin: float | None  # how far the figure is from failing, in its unit; < 0 past the limit
    final: bool  # the run's verdict, not a live reading

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def margin_of(measured: float | None, threshold: float | None, comparator: str) -> float | None:
    """Distance from failing in the figure's unit: positive while the SLO holds."""
    if measured is None or threshold is None:
        return None
    if comparator in ("<", "<="):
        return threshold - measured
    if comparator in (">", ">="):
        return measured - threshold
    return None


def allowance_used(measured: float, threshold: float, comparator: str, unit: str) -> float | None:
    """How much of what the limit allows the figure has used (1.0 = at the limit)."""
    if comparator in ("<", "<="):
        return measured / threshold if threshold > 0 else None
    if comparator in (">", ">="):
        if unit == "fraction" and threshold < 1:
            return (1 - measured) / (1 - threshold)
        return threshold / measured if measured > 0 else None
    return None


def standing(name: str, expect: str, passed: bool | None, measured: float | None,
             threshold: float | None, comparator: str, unit: str, final: bool) -> SloStanding:
    """Classify one verdict (live or final) by the rule in this module's docstring."""
    margin = margin_of(measured, threshold, comparator)
    if passed is None or measured is None and passed is not False:
        state = NOT_MEASURED
    elif passed is False:
        state = FAILING
    else:
        used = None if measured is None or threshold is None else allowance_used(
            measured, threshold, comparator, unit)
        state = AT_RISK if used is not None and used >= USED_SHARE_AT_RISK else HELD
    return SloStanding(name, expect, state, measured, threshold, unit, margin, final)
