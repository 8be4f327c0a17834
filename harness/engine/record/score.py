"""The resilience score: the weighted share of SLOs met, as LitmusChaos computes it.

Litmus scores a workflow as Σ(weightᵢ × probe success %ᵢ) / Σ weightᵢ. Here each SLO
is one probe whose success is 100 % when it held and 0 % otherwise (an SLO with no
data to judge counts as not met: a score must not rise because nothing was measured).
An SLO's weight is its optional `weight` (default 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

FORMULA = "score = Σ(weightᵢ × successᵢ) / Σ weightᵢ, successᵢ = 100 % if SLO i held, else 0 %"


@dataclass(frozen=True)
class ResilienceScore:
    percent: float | None  # None when there is no SLO to score
    met_weight: float
    total_weight: float
    met: int
    total: int
    formula: str = FORMULA

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def worked(self) -> str:
        """The formula with this run's numbers filled in."""
        if self.percent is None:
            return "no SLOs to score"
        return f"{self.met_weight:g} × 100 % / {self.total_weight:g} = {self.percent:.1f} %"


def slo_weight(v: dict[str, Any]) -> float:
    w = v.get("weight", 1)
    return float(1 if w is None else w)


def resilience_score(slos: list[dict[str, Any]]) -> ResilienceScore:
    total = sum(slo_weight(v) for v in slos)
    met = sum(slo_weight(v) for v in slos if v.get("passed") is True)
    percent = None if total <= 0 else 100.0 * met / total
    return ResilienceScore(
        percent, met, total, sum(1 for v in slos if v.get("passed") is True), len(slos)
    )
