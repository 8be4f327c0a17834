"""The parsed form of an SLO expression: small frozen dataclasses, one per construct.

Every node keeps the 1-based column where it starts so that checks done after
parsing (units, scopes) can still point at the offending text.  `str(node)` renders
the node back in canonical SLO syntax; verdict details are written with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# What a quantity measures; comparisons and arithmetic are checked against it.
# "time" is held in seconds, "fraction" as 0..1, "number" is dimensionless,
# "any" is a probe value (dimensionless, read in seconds / fractions where compared).
Dim = Literal["time", "fraction", "number", "any"]

# Per-request figures whose windows hold an HDR histogram: pNN / mean / max / min of each.
# Latency, ttft and itl are times; tokens_per_s and output_tokens plain numbers.
DISTRIBUTIONS = ("latency", "ttft", "itl", "tokens_per_s", "output_tokens")
TIME_DISTRIBUTIONS = ("latency", "ttft", "itl")
DISTRIBUTION_STATS = ("pct", "mean", "max", "min")


@dataclass(frozen=True)
class Number:
    value: float  # in base units: seconds for times, 0..1 for percentages
    unit: str | None  # as written: ms, s, m, h, us, %, or None
    text: str
    col: int

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class SliRef:
    """A service-level indicator, optionally pinned to its own scope (`... during baseline`)."""

    kind: str  # DIST_STAT (latency_pct, ttft_mean, tokens_per_s_max, ...) | error_rate |
    # availability | throughput | accuracy | fallback_rate | requests | stream_error_rate | probe
    col: int
    percentile: float | None = None  # for the *_pct kinds
    probe: str | None = None  # for kind == "probe"
    agg: str = "last"  # for probes: last | min | max | mean (over a scope's windows)
    scope: str | None = None  # explicit `during X` bound to this operand

    @property
    def distribution(self) -> str | None:
        """The figure a pNN/mean/max/min kind reads (latency, ttft, ...); None for others."""
        base, _, stat = self.kind.rpartition("_")
        return base if base in DISTRIBUTIONS and stat in DISTRIBUTION_STATS else None

    @property
    def name(self) -> str:
        dist = self.distribution
        if dist is not None:
            stat = self.kind.removeprefix(dist + "_")
            return f"p{self.percentile:g}({dist})" if stat == "pct" else f"{stat}({dist})"
        if self.kind == "probe":
            return (
                f"probe.{self.probe}" if self.agg == "last" else f"{self.agg}(probe.{self.probe})"
            )
        return self.kind

    @property
    def is_latency(self) -> bool:
        """A time per request (latency, ttft, itl): compared with times, shown in ms."""
        return self.distribution in TIME_DISTRIBUTIONS

    def __str__(self) -> str:
        return self.name + (f" during {self.scope}" if self.scope else "")


@dataclass(frozen=True)
class RecoveryTime:
    """Seconds from a fault's end until `conditions` hold for N consecutive windows."""

    conditions: tuple[Comparison, ...] | None  # None: the settings' steady state
    fault: str | None  # `of <fault>`; None: the worst over all faults
    col: int

    def __str__(self) -> str:
        s = "recovery_time"
        if self.conditions:
            s += "(" + " and ".join(map(str, self.conditions)) + ")"
        return s + (f" of {self.fault}" if self.fault else "")


@dataclass(frozen=True)
class DetectionTime:
    """Seconds from a fault's start until `conditions` first hold (e.g. an alert probe fires)."""

    conditions: tuple[Comparison, ...] | None  # None: the settings' detection condition
    fault: str | None
    col: int

    def __str__(self) -> str:
        s = "detection_time"
        if self.conditions:
            s += "(" + " and ".join(map(str, self.conditions)) + ")"
        return s + (f" of {self.fault}" if self.fault else "")


@dataclass(frozen=True)
class Degradation:
    """Worst window of `sli` in a fault scope against `sli` over the baseline, as a ratio."""

    sli: SliRef
    col: int
    scope: str | None = None  # default: fault

    def __str__(self) -> str:
        return f"degradation({self.sli.name})" + (f" during {self.scope}" if self.scope else "")


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * /
    left: Expr
    right: Expr
    col: int

    def __str__(self) -> str:
        def side(e: Expr, right: bool) -> str:
            tight = self.op in "*/"
            wrap = isinstance(e, BinOp) and (
                (tight and e.op in "+-") or (right and (e.op in "+-" or self.op in "/-"))
            )
            return f"({e})" if wrap else str(e)

        return f"{side(self.left, False)} {self.op} {side(self.right, True)}"


@dataclass(frozen=True)
class Neg:
    operand: Expr
    col: int

    def __str__(self) -> str:
        return (
            f"-{self.operand}"
            if isinstance(self.operand, Number | SliRef)
            else f"-({self.operand})"
        )


Measure = SliRef | RecoveryTime | DetectionTime | Degradation
Expr = Number | SliRef | RecoveryTime | DetectionTime | Degradation | BinOp | Neg


@dataclass(frozen=True)
class Comparison:
    left: Expr
    op: str  # < <= > >= == !=
    right: Expr
    col: int

    def __str__(self) -> str:
        return f"{self.left} {self.op} {self.right}"


@dataclass(frozen=True)
class Quantifier:
    """How a per-window condition is judged across the windows of its scope."""

    kind: Literal["for", "every", "share"]
    seconds: float | None = None  # for `for 5s`
    share: float | None = None  # for `in 95% of windows` (0..1)
    text: str = ""

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class Slo:
    """One parsed SLO: a comparison, an optional quantifier and the scope it is judged in."""

    text: str
    comparison: Comparison
    quantifier: Quantifier | None = None
    scope: str | None = None  # the trailing `during X`; None means the default (run)

    def __str__(self) -> str:
        parts = [str(self.comparison)]
        if self.quantifier:
            parts.append(str(self.quantifier))
        if self.scope:
            parts.append(f"during {self.scope}")
        return " ".join(parts)


@dataclass(frozen=True)
class StopCondition:
    """A `stop_when` entry: trips when `comparison` is true for `seconds` of consecutive windows."""

    text: str
    comparison: Comparison
    seconds: float | None = None  # `for 5s`; None: a single window is enough
    scope: str | None = None

    def __str__(self) -> str:
        s = str(self.comparison)
        if self.seconds is not None:
            s += f" for {self.seconds:g}s"
        return s + (f" during {self.scope}" if self.scope else "")


def measures(node: Expr | Comparison) -> list[Measure]:
    """Every measure (SLI, recovery/detection time, degradation) inside an expression."""
    if isinstance(node, Comparison):
        return measures(node.left) + measures(node.right)
    if isinstance(node, BinOp):
        return measures(node.left) + measures(node.right)
    if isinstance(node, Neg):
        return measures(node.operand)
    if isinstance(node, Number):
        return []
    return [node]
