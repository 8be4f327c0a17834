"""The gateway's settings, and the defaults each mode gives them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from harness.demo.llm.corpus import SYSTEM_TEMPLATE

MODEL_ID = "aftershock-tiny"
DEFAULT_CANARY = "AFTERSHOCK-CANARY-7f3a9c"

# Each pattern per mode; a flag given on the command line wins.
MODE_DEFAULTS: dict[str, dict[str, object]] = {
    "resilient": {"guardrail": True, "max_queue": 16, "first_token_timeout": 0.5, "token_timeout": 0.3,
                  "fallback": True},
    "fragile": {"guardrail": False, "max_queue": 0, "first_token_timeout": 0.0, "token_timeout": 0.0,
                "fallback": False},
}


@dataclass(frozen=True)
class GatewayConfig:
    mode: str
    backend_url: str
    state_dir: Path
    canary: str = DEFAULT_CANARY
    guardrail: bool = True
    max_concurrent: int = 8  # streams generating at once; the rest wait in the queue
    max_queue: int = 16  # waiting requests beyond this get a 429; 0 = unbounded
    first_token_timeout: float = 0.5  # seconds; 0 = wait for ever
    token_timeout: float = 0.3
    fallback: bool = True
    breaker_reset: float = 2.0  # seconds the fallback answers alone after an upstream failure
    context_limit: int = 1024  # tokens: prompt + max_tokens
    default_max_tokens: int = 64
    token_interval: float = 0.01  # the fallback's pace, as the backend's

    @property
    def system_prompt(self) -> str:
        return SYSTEM_TEMPLATE.format(canary=self.canary)

    def describe(self) -> str:
        return (f"mode={self.mode} guardrail={self.guardrail} queue={self.max_queue or 'unbounded'} "
                f"concurrency={self.max_concurrent} deadlines={self.first_token_timeout:g}/{self.token_timeout:g}s "
                f"fallback={self.fallback} context={self.context_limit}")
