"""The gateway's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = r = CollectorRegistry()
        self.requests = Counter("llm_requests", "Requests answered", ["endpoint", "code"], registry=r)
        self.tokens = Counter("llm_tokens", "Tokens read and written", ["kind"], registry=r)
        self.ttft = Histogram("llm_time_to_first_token_seconds", "From request to first token sent",
                              buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=r)
        self.queue_depth = Gauge("llm_queue_depth", "Requests waiting for a generation slot", registry=r)
        self.inflight = Gauge("llm_generating", "Requests generating now", registry=r)
        self.shed = Counter("llm_shed_requests", "Requests refused with 429 (queue full)", registry=r)
        self.guardrail_blocks = Counter("llm_guardrail_blocks", "Guardrail interventions", ["side"], registry=r)
        self.fallbacks = Counter("llm_fallbacks", "Answers the local fallback finished", ["reason"], registry=r)
