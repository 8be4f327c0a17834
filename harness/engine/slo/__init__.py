"""SLIs, the SLO language and its evaluation (grammar and examples: README.md here)."""

from harness.engine.slo.ast import Slo, StopCondition
from harness.engine.slo.evaluate import Verdict, WindowPoint, evaluate
from harness.engine.slo.parser import SloSyntaxError, parse_condition, parse_slo, parse_stop
from harness.engine.slo.settings import DEFAULT_STEADY_STATE, SloSettings
from harness.engine.slo.sli import scope_sli, window_sli, window_summary
from harness.engine.slo.stop import StopTrigger, check_stop

__all__ = [
    "DEFAULT_STEADY_STATE", "Slo", "SloSettings", "SloSyntaxError", "StopCondition", "StopTrigger", "Verdict",
    "WindowPoint", "check_stop", "evaluate", "parse_condition", "parse_slo", "parse_stop",
    "scope_sli", "window_sli", "window_summary",
]  # fmt: skip
