"""A request flood: JSON bodies sent at a rate, with a cap on requests in flight.

Shared by `abuse.flood` (classifier rows) and `prompt.flood` (context-filling chat
prompts): what a flood measures — how many were answered, throttled (429), failed,
and how fast — does not depend on what the bodies hold.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from typing import Any

import httpx
from pydantic import Field, field_validator

from attacks.endpoint import status_kind, transport_kind
from harness.core.attack import AttackParams
from harness.core.windows import percentile_of


class FloodParams(AttackParams):
    """A flood's own pace: `rate` and `concurrency`, `max_queries` requests at most."""

    @field_validator("rate_limit")
    @classmethod
    def _no_rate_limit(cls, v: float | None) -> float | None:
        if v is not None:
            raise ValueError("a flood sends at `rate:` (requests per second); drop rate_limit")
        return v

    rate: float = Field(500.0, gt=0, description="requests per second to send")
    concurrency: int = Field(200, ge=1, le=2000, description="requests in flight at most")
    max_queries: int = Field(5000, ge=1, description="requests at most")


async def flood(url: str, bodies: list[dict[str, Any]], *, rate: float, concurrency: int, max_queries: int,
                request_timeout: float, deadline: float) -> tuple[dict[str, float], dict[str, Any]]:
    """Send `bodies` (cycled) to `url` until `max_queries` or `deadline`; (metrics, details).

    What the requests got is not measured (absent: an SLO on it fails), never 0, when
    none was sent; the 5xx count and the latency, when none was answered."""
    counts = {"ok": 0, "rate_limited": 0, "server_errors": 0, "other_4xx": 0}
    errors: Counter[str] = Counter()  # failed requests by kind: refused, reset, timeout, http_N
    latencies: list[float] = []  # of the requests answered (any status)
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    started = time.monotonic()

    async def one(client: httpx.AsyncClient, body: dict[str, Any]) -> None:
        t0 = time.monotonic()
        try:
            response = await client.post(url, json=body)
        except httpx.HTTPError as exc:
            errors[transport_kind(exc)] += 1
            return
        finally:
            gate.release()
        latencies.append(time.monotonic() - t0)
        code = response.status_code
        if code >= 400:
            errors[status_kind(code)] += 1
        key = "ok" if code < 400 else "rate_limited" if code == 429 else "server_errors" if code >= 500 else "other_4xx"
        counts[key] += 1

    sent = 0
    tasks: set[asyncio.Task[None]] = set()
    async with httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(request_timeout), trust_env=False) as client:
        while sent < max_queries and time.monotonic() < deadline:
            await gate.acquire()
            task = asyncio.create_task(one(client, bodies[sent % len(bodies)]))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent += 1
            await asyncio.sleep(max(0.0, started + sent / rate - time.monotonic()))
        if tasks:
            await asyncio.wait(tasks, timeout=max(0.1, deadline + request_timeout - time.monotonic()))
        for task in tasks:
            task.cancel()
    elapsed = max(time.monotonic() - started, 1e-9)
    metrics = {"flood_requests": float(sent)}
    if sent:
        metrics.update({f"flood_{k}": float(v) for k, v in counts.items() if k != "server_errors"})
        metrics.update(
            flood_rate=sent / elapsed,
            flood_timeouts=float(errors["timeout"]),
            flood_refused=float(errors["refused"]),
            flood_reset=float(errors["reset"]),
            rate_limited_share=counts["rate_limited"] / sent,
        )
    if latencies:
        metrics["server_errors"] = float(counts["server_errors"])
        metrics["flood_p95_latency"] = percentile_of(latencies, 95)
    return metrics, {"seconds": round(elapsed, 3), "errors": dict(errors)}
