"""Scenario-level knobs for judging SLOs: recovery streak length, steady state, detection."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from harness.slo.ast import Comparison
from harness.slo.parser import SloSyntaxError, parse_condition

DEFAULT_STEADY_STATE = [
    "p95(latency) <= 1.5 * p95(latency) during baseline + 5ms",
    "error_rate <= 1%",
]


class SloSettings(BaseModel):
    """`recovery_windows`: consecutive healthy windows that mark recovery (N).
    `steady_state`: conditions a bare `recovery_time` waits for (all must hold).
    `detection`: conditions a bare `detection_time` waits for, e.g. `probe.alert >= 1`."""

    model_config = ConfigDict(extra="forbid")

    recovery_windows: int = Field(3, ge=1)
    steady_state: list[str] = Field(
        default_factory=lambda: list(DEFAULT_STEADY_STATE), min_length=1
    )
    detection: list[str] = Field(default_factory=list)

    @field_validator("steady_state", "detection")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        for text in value:
            try:
                parse_condition(text)
            except SloSyntaxError as e:
                raise ValueError(str(e)) from None
        return value

    def steady_state_conditions(self) -> tuple[Comparison, ...]:
        return tuple(parse_condition(t) for t in self.steady_state)

    def detection_conditions(self) -> tuple[Comparison, ...]:
        return tuple(parse_condition(t) for t in self.detection)
