"""Each pattern off (fragile mode) and load shedding on, under a real paused feature store."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.demo.data import sample
from harness.demo.launcher import free_port, stop, wait_ready
from harness.demo.model import train_models
from harness.demo.model_cache import save_models

PYTHON = [sys.executable, "-m", "harness.demo"]
BODY = {
    "inputs": [
        {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": [50, 3, 5, 0.5, 1, 1]},
        {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [3]},
    ]
}


@pytest.fixture(scope="module")
def trained_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache, trained here once so that each server below only loads it."""
    state = tmp_path_factory.mktemp("state")
    save_models(state, train_models(sample(6000, 0, 0), steps=250))
    return state


@pytest.fixture()
def store() -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    port = free_port()
    proc = subprocess.Popen([*PYTHON, "feature-store", "--port", str(port)], start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_ready(f"{url}/health", proc, 60)
        yield proc, url
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGCONT)
        stop([proc])


def start_server(store_url: str, state: Path, *flags: str) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [
            *PYTHON,
            "serve",
            "--port",
            str(port),
            "--feature-store",
            store_url,
            "--state-dir",
            str(state),
            *flags,
        ],
        start_new_session=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/v2/health/ready", proc, 120)
    except BaseException:
        stop([proc])
        raise
    return proc, base


def test_fragile_mode_hangs_then_errors_when_the_store_fails(
    store: tuple[subprocess.Popen[bytes], str], trained_state: Path
) -> None:
    fs, fs_url = store
    server, base = start_server(fs_url, trained_state, "--mode", "fragile")
    url = f"{base}/v2/models/fraud/infer"
    try:
        assert httpx.post(url, json=BODY).json()["parameters"]["fallback"] is False
        os.kill(fs.pid, signal.SIGSTOP)
        try:
            # No fallback and a 30 s timeout: the client gives up first.
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url, json=BODY, timeout=2.0)
        finally:
            os.kill(fs.pid, signal.SIGCONT)
        stop([fs])  # the store is now gone for good: connection refused
        response = httpx.post(url, json=BODY, timeout=10.0)
        assert response.status_code == 503
        assert "feature store unavailable" in response.json()["error"]
    finally:
        stop([server])
    assert server.returncode == 0


def test_resilient_mode_sheds_load_with_429(
    store: tuple[subprocess.Popen[bytes], str], trained_state: Path
) -> None:
    fs, fs_url = store
    server, base = start_server(
        fs_url,
        trained_state,
        "--max-inflight",
        "4",
        "--no-breaker",
        "--no-cache",
        "--feature-timeout",
        "1.5",
        "--retries",
        "0",
    )
    url = f"{base}/v2/models/fraud/infer"

    async def burst(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(
            timeout=30.0, limits=httpx.Limits(max_connections=n)
        ) as client:
            return await asyncio.gather(*(client.post(url, json=BODY) for _ in range(n)))

    try:
        os.kill(fs.pid, signal.SIGSTOP)  # every admitted request now holds its slot 1.5 s
        try:
            responses = asyncio.run(burst(16))
        finally:
            os.kill(fs.pid, signal.SIGCONT)
        codes = [r.status_code for r in responses]
        assert set(codes) <= {200, 429}
        assert codes.count(429) >= 8
        assert 1 <= codes.count(200) <= 8
        shed = next(r for r in responses if r.status_code == 429)
        assert "overloaded" in shed.json()["error"] and shed.headers["Retry-After"] == "1"
        assert all(r.json()["parameters"]["fallback"] for r in responses if r.status_code == 200)
        metrics = httpx.get(f"{base}/metrics").text
        assert f"demo_shed_requests_total {float(codes.count(429))}" in metrics
        time.sleep(0.2)
        # Once the overload is gone the server answers normally again.
        assert httpx.post(url, json=BODY, timeout=10).status_code == 200
    finally:
        stop([server])
    assert server.returncode == 0
