"""Webhook probe: counts the webhooks the target POSTs to a receiver the harness runs.

The probe owns a `WebhookReceiver` on loopback (`port: 0` picks a free one; its `url`
is what the target must be told). `measure: count` is the number of POSTs matching
`match` so far; `measure: state` is 1 after a POST matching `match` until one matching
`reset` (e.g. the demo's `drift_alert` / `drift_resolved`), else 0.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from harness.core.probe import Probe, ProbeConfig
from harness.engine.probes.webhook_receiver import WebhookReceiver


class WebhookProbeConfig(ProbeConfig):
    type: Literal["webhook"] = "webhook"
    host: str = "127.0.0.1"
    port: int = Field(0, ge=0, le=65535)  # 0: a free port
    path: str | None = None  # count only POSTs to this path
    match: dict[str, Any] = Field(default_factory=dict)  # JSON fields a counted POST has, e.g. {event: drift_alert}
    reset: dict[str, Any] = Field(default_factory=dict)  # state mode: the POST that turns it back to 0
    measure: Literal["count", "state"] = "count"


class WebhookProbe(Probe):
    type = "webhook"
    Config = WebhookProbeConfig
    config: WebhookProbeConfig

    def __init__(self, config: WebhookProbeConfig) -> None:
        super().__init__(config)
        self.receiver = WebhookReceiver(config.host, config.port).start()

    @property
    def url(self) -> str:
        return self.receiver.url.rstrip("/") + (self.config.path or "/")

    def read(self) -> float:
        c = self.config
        if c.measure == "count":
            return float(len(self.receiver.received(c.match, c.path)))
        state = 0.0
        for hook in self.receiver.received(path=c.path):
            if c.reset and hook.matches(c.reset):
                state = 0.0
            elif hook.matches(c.match):
                state = 1.0
        return state

    @classmethod
    def addresses_of(cls, config: Any) -> list[str]:
        return [f"[{config.host}]:{config.port}" if ":" in config.host else f"{config.host}:{config.port}"]

    def close(self) -> None:
        self.receiver.stop()
