"""The demo's feature cache refreshes ahead against a real feature store process: a
cached entity never waits for the store while it is healthy, and expires when the
store stops answering (so the fallback path is still exercised)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import numpy as np
import pytest

from harness.demo.feature_client import FeatureClient, FeatureClientConfig, FeatureStoreUnavailable
from harness.demo.launcher import free_port, stop, wait_ready
from harness.demo.metrics import Metrics

TTL = 2.0


def store_calls(metrics: Metrics) -> float:
    return metrics.feature_requests.labels("ok")._value.get()


async def scenario(url: str, store: subprocess.Popen[bytes]) -> None:
    metrics = Metrics()
    client = FeatureClient(
        FeatureClientConfig(url=url, timeout=0.5, retries=0, breaker=False, cache_ttl=TTL), metrics
    )
    try:
        await client.warm(range(20, 30))  # filled at start: no read of these waits for the store
        await client.get_many(np.arange(20, 30))
        assert store_calls(metrics) == 1 and metrics.feature_cache.labels("miss")._value.get() == 0
        metrics = client.metrics = Metrics()
        ids = np.array([7])
        await client.get_many(ids)  # a miss: one call on the request path
        assert store_calls(metrics) == 1
        await asyncio.sleep(TTL * 0.7)  # second half of the TTL: a hit, refreshed behind it
        await client.get_many(ids)
        assert store_calls(metrics) == 1, "the hit waited for the store"
        for _ in range(30):  # the refresh runs in the background; a busy machine is slow
            if store_calls(metrics) == 2:
                break
            await asyncio.sleep(0.1)
        assert store_calls(metrics) == 2, "the stale entry was not refreshed"
        assert client.cache.expires_in(7) > TTL * 0.5  # type: ignore[union-attr]  # the client was built with a cache
        # keep reading through several TTLs: every read is a hit
        for _ in range(6):
            await asyncio.sleep(TTL * 0.4)
            await client.get_many(ids)
        assert metrics.feature_cache.labels("miss")._value.get() == 1
        os.killpg(store.pid, signal.SIGSTOP)  # the store stops answering
        try:
            await asyncio.sleep(TTL * 1.2)  # refreshes fail; the entry expires
            started = time.monotonic()
            with pytest.raises(FeatureStoreUnavailable):
                await client.get_many(ids)
            assert time.monotonic() - started >= 0.4  # the request met the timeout itself
        finally:
            os.killpg(store.pid, signal.SIGCONT)
    finally:
        await client.aclose()


def against_a_real_store(story: Callable[[str, subprocess.Popen[bytes]], Awaitable[None]]) -> None:
    """Run `story` against a feature store in its own process, stopped on every way out."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    store = subprocess.Popen(
        [sys.executable, "-m", "harness.demo", "feature-store", "--port", str(port)],
        start_new_session=True,
    )
    try:
        wait_ready(f"{url}/health", store, 60)
        asyncio.run(story(url, store))
    finally:
        stop([store])


def test_cache_refreshes_ahead_and_expires_when_the_store_stops() -> None:
    against_a_real_store(scenario)


async def outage_and_recovery(url: str, store: subprocess.Popen[bytes]) -> None:
    metrics = Metrics()
    config = FeatureClientConfig(
        url=url, timeout=0.3, retries=0, breaker_failures=1, breaker_reset=0.5, cache_ttl=TTL
    )
    client = FeatureClient(config, metrics)
    try:
        await client.warm(range(20, 30))
        os.killpg(store.pid, signal.SIGSTOP)
        try:
            await asyncio.sleep(TTL * 1.1)  # everything expired while the store was away
            with pytest.raises(FeatureStoreUnavailable):
                await client.get_many(np.array([20]))  # fails: the breaker opens
        finally:
            os.killpg(store.pid, signal.SIGCONT)
        await asyncio.sleep(config.breaker_reset + 0.1)
        await client.get_many(np.array([20]))  # the half-open trial succeeds and closes it
        assert client.rewarm is not None
        await client.rewarm  # the store is back: the rest is refilled in one go
        misses = metrics.feature_cache.labels("miss")._value.get()
        await client.get_many(np.arange(20, 30))
        assert metrics.feature_cache.labels("miss")._value.get() == misses
    finally:
        await client.aclose()


def test_cache_is_refilled_when_the_breaker_closes() -> None:
    against_a_real_store(outage_and_recovery)
