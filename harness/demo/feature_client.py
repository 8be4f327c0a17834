"""The model server's client for the feature store, with its resilience patterns.

Per call: cache lookup → circuit breaker → up to ``1 + retries`` attempts, each
bounded by ``timeout`` seconds, separated by jittered exponential backoff. Each
pattern is off when its setting says so (``cache=False``, ``breaker=False``,
``retries=0``, ``timeout=None``).

At start the cache is filled with every entity in batched calls (``warm``), as a service
would before taking traffic, and again when the breaker closes after an outage. The
cache refreshes ahead: an entry read in the second half of its TTL is fetched again in
the background (batched, through the same breaker and retries), so while the store is
healthy a cached entity never waits for it; when the store is slow or down, refreshes
fail, entries expire, and requests meet the timeout, the breaker and the fallback.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass

import httpx
import numpy as np

from harness.demo.data import ENTITY_FEATURES
from harness.demo.metrics import Metrics
from harness.demo.resilience import BreakerState, CircuitBreaker, TTLCache, backoff_delay


class FeatureStoreUnavailable(Exception):
    """Features could not be had; ``reason`` names why (timeout, breaker_open, …)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"feature store unavailable ({reason}){': ' + detail if detail else ''}")
        self.reason = reason


class UnknownEntities(Exception):
    """The store answered, and does not know these entity ids."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(f"unknown entity_id: {ids[:10]}")
        self.ids = ids


@dataclass
class FeatureClientConfig:
    url: str
    timeout: float | None = 0.1
    retries: int = 1
    backoff_base: float = 0.02
    backoff_max: float = 0.2
    breaker: bool = True
    breaker_failures: int = 5
    breaker_reset: float = 2.0
    cache: bool = True
    cache_ttl: float = 5.0


REFRESH_BATCH_S = 0.1  # stale ids gathered this long go to the store in one call
MAX_REFRESH_IDS = 1024  # the store's limit per call
WARM_BATCH = 200  # ids per call when filling the cache at start: each call inside the timeout


class FeatureClient:
    def __init__(self, config: FeatureClientConfig, metrics: Metrics, seed: int = 0) -> None:
        self.config = config
        self.metrics = metrics
        self.rng = random.Random(seed)
        self.http = httpx.AsyncClient(
            base_url=config.url.rstrip("/"),
            timeout=httpx.Timeout(config.timeout),  # a bound per phase; the deadline is below
            # idle connections retire well before the store's 5 s idle timeout closes them,
            # so the pool never sends on a connection the store is closing
            limits=httpx.Limits(
                max_connections=64, max_keepalive_connections=32, keepalive_expiry=2.0
            ),
        )
        self.cache: TTLCache[int, np.ndarray] | None = (
            TTLCache(config.cache_ttl) if config.cache else None
        )
        self.stale: set[int] = set()  # cached ids read in the second half of their TTL
        self.warm_ids: range = range(0)  # what warm() filled the cache with, refilled on recovery
        self.rewarm: asyncio.Task[None] | None = None
        self.refresher: asyncio.Task[None] | None = None
        self.breaker: CircuitBreaker | None = None
        if config.breaker:
            self.breaker = CircuitBreaker(
                config.breaker_failures, config.breaker_reset, on_change=self._breaker_changed
            )
        metrics.breaker_state.set(BreakerState.CLOSED)

    def _breaker_changed(self, state: BreakerState) -> None:
        self.metrics.breaker_state.set(state)
        self.metrics.breaker_transitions.labels(state.name.lower()).inc()
        if state == BreakerState.CLOSED and self.warm_ids:
            # the store is back after an outage: refill what expired meanwhile at once,
            # rather than one miss at a time on the request path
            self.rewarm = asyncio.get_running_loop().create_task(self.warm(self.warm_ids))

    @property
    def breaker_state(self) -> BreakerState:
        return self.breaker.state if self.breaker else BreakerState.CLOSED

    async def aclose(self) -> None:
        for task in (self.refresher, self.rewarm):
            if task is not None:
                task.cancel()
        await self.http.aclose()

    async def get_many(self, entity_ids: np.ndarray) -> np.ndarray:
        """Entity features for each id, float32 [n, len(ENTITY_FEATURES)], in order."""
        wanted = sorted({int(i) for i in entity_ids})
        found: dict[int, np.ndarray] = {}
        if self.cache is not None:
            for i in wanted:
                hit = self.cache.get(i)
                if hit is not None:
                    found[i] = hit
                    left = self.cache.expires_in(i)
                    if left is not None and left < self.config.cache_ttl / 2:
                        self.stale.add(i)
            if self.stale and (self.refresher is None or self.refresher.done()):
                self.refresher = asyncio.create_task(self._refresh_stale())
            self.metrics.feature_cache.labels("hit").inc(len(found))
            self.metrics.feature_cache.labels("miss").inc(len(wanted) - len(found))
        missing = [i for i in wanted if i not in found]
        if missing:
            fetched = await self._fetch(missing)
            found.update(fetched)
            if self.cache is not None:
                for i, row in fetched.items():
                    self.cache.put(i, row)
        return np.stack([found[int(i)] for i in entity_ids]).astype(np.float32)

    async def warm(self, entity_ids: range) -> None:
        """Fill the cache with these entities in batched calls; a store that cannot answer
        now leaves it empty (requests then fetch what they need)."""
        if self.cache is None:
            return
        self.warm_ids = entity_ids
        ids = list(entity_ids)
        for start in range(0, len(ids), WARM_BATCH):
            try:
                rows = await self._fetch(ids[start : start + WARM_BATCH])
            except (FeatureStoreUnavailable, UnknownEntities):
                return
            for i, row in rows.items():
                self.cache.put(i, row)

    async def _refresh_stale(self) -> None:
        """Fetch the stale ids in one call, off the request path; a failure leaves the
        entries to expire (the requests then take the timeout, breaker and fallback)."""
        await asyncio.sleep(REFRESH_BATCH_S)
        ids = sorted(self.stale)[:MAX_REFRESH_IDS]
        self.stale.difference_update(ids)
        try:
            rows = await self._fetch(ids)
        except (FeatureStoreUnavailable, UnknownEntities):
            return
        assert self.cache is not None
        for i, row in rows.items():
            self.cache.put(i, row)

    async def _fetch(self, ids: list[int]) -> dict[int, np.ndarray]:
        if self.breaker is not None and not self.breaker.allow():
            self.metrics.feature_requests.labels("breaker_open").inc()
            raise FeatureStoreUnavailable("breaker_open")
        last: FeatureStoreUnavailable | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                await asyncio.sleep(
                    backoff_delay(
                        attempt - 1, self.config.backoff_base, self.config.backoff_max, self.rng
                    )
                )
            try:
                rows = await self._attempt(ids)
            except asyncio.CancelledError:
                if self.breaker is not None:
                    self.breaker.abandon()  # or a cancelled trial would leave it half-open
                raise
            except FeatureStoreUnavailable as exc:
                self.metrics.feature_requests.labels(exc.reason).inc()
                last = exc
                continue
            except UnknownEntities:
                self.metrics.feature_requests.labels("unknown_entity").inc()
                if self.breaker is not None:
                    self.breaker.record_success()  # the store is up; the ids are wrong
                raise
            self.metrics.feature_requests.labels("ok").inc()
            if self.breaker is not None:
                self.breaker.record_success()
            return rows
        if self.breaker is not None:
            self.breaker.record_failure()
        assert last is not None
        raise last

    async def _attempt(self, ids: list[int]) -> dict[int, np.ndarray]:
        try:
            async with asyncio.timeout(self.config.timeout):
                response = await self.http.get("/features", params={"ids": ",".join(map(str, ids))})
        except (TimeoutError, httpx.TimeoutException) as exc:
            raise FeatureStoreUnavailable(
                "timeout", f"no answer in {self.config.timeout}s"
            ) from exc
        except httpx.HTTPError as exc:
            raise FeatureStoreUnavailable("connect_error", type(exc).__name__) from exc
        if response.status_code >= 500:
            raise FeatureStoreUnavailable("http_error", f"status {response.status_code}")
        try:
            body = response.json()
            if response.status_code != 200:
                raise ValueError(f"status {response.status_code}")
            if body.get("missing"):
                raise UnknownEntities(body["missing"])
            rows = {
                int(k): np.array([float(v[name]) for name in ENTITY_FEATURES], dtype=np.float32)
                for k, v in body["features"].items()
            }
            if not set(ids) <= rows.keys():
                raise ValueError("answer lacks some of the ids asked for")
            return rows
        except UnknownEntities:
            raise
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise FeatureStoreUnavailable("bad_response", str(exc)) from exc
