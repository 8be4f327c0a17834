"""Scenario-level knobs for judging SLOs: recovery streak length, steady state, detection.

The default steady state is the baseline's *quality*, not only its speed: a service that
answers fast from a fallback model is not recovered.  Each SLI may be worse than over the
baseline by a relative factor plus an absolute slack (the slack keeps a near-zero baseline
from making any noise a violation; the factor scales with a noisy one).  Accuracy and
fallback rate join only where the run can measure them: accuracy when the baseline had
labelled responses, fallback rate when any response of the run carried the fallback flag.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.engine.slo.ast import Comparison
from harness.engine.slo.parser import SloSyntaxError, parse_condition

# Always part of the default steady state.
DEFAULT_STEADY_STATE = [
    "p95(latency) <= 1.5 * p95(latency) during baseline + 5ms",
    "error_rate <= 1.5 * error_rate during baseline + 1%",
]
# Part of it where the run measures them (see the module docstring).  Accuracy: a window
# holds ~50-500 labelled answers, whose accuracy scatters by a few points around the
# baseline's; 5 % relative + 5 points keeps that noise from delaying recovery while a
# fallback model's 15-20 points below the baseline still count as not recovered.
QUALITY_STEADY_STATE = {
    "accuracy": "accuracy >= 0.95 * accuracy during baseline - 5%",
    "fallback_rate": "fallback_rate <= 1.5 * fallback_rate during baseline + 5%",
}


class SloSettings(BaseModel):
    """`recovery_windows`: consecutive healthy windows that mark recovery (N).
    `steady_state`: conditions a bare `recovery_time` waits for (all must hold); unset, the
    default: `DEFAULT_STEADY_STATE` plus `QUALITY_STEADY_STATE` where measurable.
    `detection`: conditions a bare `detection_time` waits for, e.g. `probe.alert >= 1`."""

    model_config = ConfigDict(extra="forbid")

    recovery_windows: int = Field(3, ge=1)
    steady_state: list[str] | None = Field(None, min_length=1)
    detection: list[str] = Field(default_factory=list)

    @field_validator("steady_state", "detection")
    @classmethod
    def _parse(cls, value: list[str] | None) -> list[str] | None:
        for text in value or []:
            try:
                parse_condition(text)
            except SloSyntaxError as e:
                raise ValueError(str(e)) from None
        return value

    def steady_state_conditions(
        self, accuracy: bool = False, fallback_rate: bool = False
    ) -> tuple[Comparison, ...]:
        """The steady state's conditions; `accuracy` / `fallback_rate`: the run measures them
        (used by the default only: an explicit `steady_state` is taken as written)."""
        if self.steady_state is not None:
            return tuple(parse_condition(t) for t in self.steady_state)
        texts = list(DEFAULT_STEADY_STATE)
        texts += [QUALITY_STEADY_STATE["accuracy"]] if accuracy else []
        texts += [QUALITY_STEADY_STATE["fallback_rate"]] if fallback_rate else []
        return tuple(parse_condition(t) for t in texts)

    def detection_conditions(self) -> tuple[Comparison, ...]:
        return tuple(parse_condition(t) for t in self.detection)
