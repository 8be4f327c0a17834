"""The demo model server in resilient mode, against a real feature-store process.

Faults are real: the feature store is paused with SIGSTOP (and always resumed).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.demo.launcher import free_port, stop, wait_ready

PYTHON = [sys.executable, "-m", "harness.demo"]
MODEL = "fraud"


def metric(base: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{base}/metrics", timeout=5).text
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return s.value
    return 0.0


def v2_body(features: np.ndarray, entity_id: np.ndarray) -> dict:
    return {
        "inputs": [
            {
                "name": "features",
                "shape": list(features.shape),
                "datatype": "FP32",
                "data": features.ravel().tolist(),
            },
            {
                "name": "entity_id",
                "shape": list(entity_id.shape),
                "datatype": "INT64",
                "data": entity_id.tolist(),
            },
        ]
    }


def infer(base: str, body: dict, timeout: float = 10.0) -> httpx.Response:
    return httpx.post(f"{base}/v2/models/{MODEL}/infer", json=body, timeout=timeout)


class Webhook:
    """A real HTTP listener that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        received = self.received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def eval_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("data") / "eval.npz"
    subprocess.run(
        [*PYTHON, "export-data", "--out", str(out), "--n", "600"], check=True, timeout=60
    )
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, webhook: Webhook) -> Iterator[dict]:
    """A feature store and a resilient server (cache off, so every call hits the store)."""
    state = tmp_path_factory.mktemp("state")
    fs_port, port = free_port(), free_port()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(
            subprocess.Popen(
                [*PYTHON, "feature-store", "--port", str(fs_port)], start_new_session=True
            )
        )
        wait_ready(f"http://127.0.0.1:{fs_port}/health", procs[0], 60)
        procs.append(
            subprocess.Popen(
                [
                    *PYTHON,
                    "serve",
                    "--port",
                    str(port),
                    "--feature-store",
                    f"http://127.0.0.1:{fs_port}",
                    "--mode",
                    "resilient",
                    "--state-dir",
                    str(state),
                    "--no-cache",
                    "--feature-timeout",
                    "0.4",
                    "--retries",
                    "1",
                    "--breaker-failures",
                    "3",
                    "--breaker-reset",
                    "1.0",
                    "--drift-webhook",
                    webhook.url,
                    # schema checks alone here (the test ingests a flipped label on purpose);
                    # the ingest guard has its own tests in test_demo_hardening.py
                    "--no-ingest-guard",
                ],
                start_new_session=True,
            )
        )
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v2/health/ready", procs[1], 120)
        yield {
            "base": base,
            "store": procs[0],
            "server": procs[1],
            "state": state,
            "fs_url": f"http://127.0.0.1:{fs_port}",
        }
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
        stop(procs)


def wait_main_model(base: str, timeout: float = 20.0) -> None:
    """Wait until answers come from the main model again (breaker closed)."""
    body = v2_body(np.array([[50, 3, 5, 0.5, 1, 1]], np.float32), np.array([1]))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not infer(base, body).json()["parameters"]["fallback"]:
            return
        time.sleep(0.2)
    raise AssertionError("the server did not return to the main model")


def accuracy_over_http(base: str, data: dict[str, np.ndarray]) -> tuple[float, set[bool]]:
    predicted, fallbacks = [], set()
    for start in range(0, len(data["label"]), 200):
        rows = slice(start, start + 200)
        response = infer(base, v2_body(data["features"][rows], data["entity_id"][rows]))
        assert response.status_code == 200, response.text
        body = response.json()
        fallbacks.add(body["parameters"]["fallback"])
        label = next(o for o in body["outputs"] if o["name"] == "label")
        assert label["datatype"] == "INT64" and label["shape"] == [len(data["label"][rows])]
        predicted.extend(label["data"])
    return float(np.mean(np.array(predicted) == data["label"])), fallbacks


def test_health_and_metadata(demo: dict) -> None:
    base = demo["base"]
    assert httpx.get(f"{base}/v2/health/live").status_code == 200
    assert httpx.get(f"{base}/v2/models/{MODEL}/ready").status_code == 200
    meta = httpx.get(f"{base}/v2/models/{MODEL}").json()
    assert {i["name"]: i["datatype"] for i in meta["inputs"]} == {
        "features": "FP32",
        "entity_id": "INT64",
    }
    assert httpx.get(f"{base}/v2/models/nope").status_code == 404
    assert (demo["state"] / "model.pt").exists() and (demo["state"] / "model.pt.json").exists()


def test_main_model_is_accurate_and_fallback_serves_when_store_paused(
    demo: dict, eval_set: dict[str, np.ndarray]
) -> None:
    base = demo["base"]
    main_acc, fallbacks = accuracy_over_http(base, eval_set)
    assert fallbacks == {False}
    assert main_acc >= 0.9

    os.kill(demo["store"].pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = infer(base, v2_body(eval_set["features"][:1], eval_set["entity_id"][:1]))
        elapsed = time.monotonic() - started
        assert response.status_code == 200
        params = response.json()["parameters"]
        assert params["fallback"] is True
        assert params["fallback_reason"] in ("timeout", "breaker_open")
        # 2 attempts x 0.4 s + backoff: well inside the bound, where fragile mode hangs 30 s.
        assert elapsed < 3.0
        fallback_acc, fallbacks = accuracy_over_http(base, eval_set)
        assert fallbacks == {True}
        assert 0.7 <= fallback_acc < main_acc - 0.1
        assert metric(base, "demo_fallbacks_total", reason="timeout") >= 1
    finally:
        os.kill(demo["store"].pid, signal.SIGCONT)
    wait_main_model(base)


def breaker_state(base: str) -> float:
    return metric(base, "demo_circuit_breaker_state")


def test_breaker_opens_half_opens_and_closes(demo: dict) -> None:
    base = demo["base"]
    body = v2_body(np.array([[50, 3, 5, 0.5, 1, 1]], np.float32), np.array([2]))
    assert breaker_state(base) == 0
    half_opens = metric(base, "demo_circuit_breaker_transitions_total", state="half_open")
    os.kill(demo["store"].pid, signal.SIGSTOP)
    try:
        reasons = [infer(base, body).json()["parameters"].get("fallback_reason") for _ in range(5)]
        assert reasons[:3] == ["timeout"] * 3
        assert reasons[3:] == ["breaker_open"] * 2  # open: no call goes out
        assert breaker_state(base) == 1
        time.sleep(1.3)  # past --breaker-reset: the next call is the half-open trial
        trial = infer(base, body).json()["parameters"]
        assert trial["fallback_reason"] == "timeout"  # the trial went out and failed
        assert (
            metric(base, "demo_circuit_breaker_transitions_total", state="half_open")
            == half_opens + 1
        )
        assert breaker_state(base) == 1  # a failed trial opens it again
    finally:
        os.kill(demo["store"].pid, signal.SIGCONT)
    time.sleep(1.3)
    assert infer(base, body).json()["parameters"]["fallback"] is False
    assert breaker_state(base) == 0


BAD_BODIES = {
    "not json": b"{not json",
    "no inputs": {"id": "x"},
    "missing entity_id": {
        "inputs": [
            {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1, 1]}
        ]
    },
    "wrong shape": {
        "inputs": [
            {"name": "features", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1]},
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1]},
        ]
    },
    "data does not fill shape": {
        "inputs": [
            {"name": "features", "shape": [2, 6], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1, 1]},
            {"name": "entity_id", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        ]
    },
    "wrong dtype": {
        "inputs": [
            {"name": "features", "shape": [1, 6], "datatype": "FP64", "data": [1, 2, 3, 0.5, 1, 1]},
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1]},
        ]
    },
    "string in data": {
        "inputs": [
            {
                "name": "features",
                "shape": [1, 6],
                "datatype": "FP32",
                "data": [1, 2, 3, 0.5, 1, "x"],
            },
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1]},
        ]
    },
    "float entity id": {
        "inputs": [
            {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1, 1]},
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1.5]},
        ]
    },
    "NaN": b'{"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", '
    b'"data": [NaN, 2, 3, 0.5, 1, 1]}, '
    b'{"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1]}]}',
    "Infinity": b'{"inputs": [{"name": "features", "shape": [1, 6], "datatype": "FP32", '
    b'"data": [1, Infinity, 3, 0.5, 1, 1]}, '
    b'{"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [1]}]}',
    "unknown entity": {
        "inputs": [
            {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1, 1]},
            {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [10**12]},
        ]
    },
    "batch mismatch": {
        "inputs": [
            {"name": "features", "shape": [1, 6], "datatype": "FP32", "data": [1, 2, 3, 0.5, 1, 1]},
            {"name": "entity_id", "shape": [2], "datatype": "INT64", "data": [1, 2]},
        ]
    },
    "unexpected tensor": {"inputs": [{"name": "x", "shape": [1], "datatype": "FP32", "data": [1]}]},
    "negative shape": {
        "inputs": [
            {"name": "features", "shape": [-1, 6], "datatype": "FP32", "data": []},
            {"name": "entity_id", "shape": [-1], "datatype": "INT64", "data": []},
        ]
    },
}


@pytest.mark.parametrize("case", list(BAD_BODIES))
def test_invalid_requests_get_400_with_a_message(demo: dict, case: str) -> None:
    body = BAD_BODIES[case]
    url = f"{demo['base']}/v2/models/{MODEL}/infer"
    if isinstance(body, bytes):
        response = httpx.post(url, content=body, headers={"Content-Type": "application/json"})
    else:
        response = httpx.post(url, json=body)
    assert response.status_code == 400, response.text
    assert isinstance(response.json()["error"], str) and response.json()["error"]


def test_kserve_v1_predict(demo: dict, eval_set: dict[str, np.ndarray]) -> None:
    instances = [
        {"features": f.tolist(), "entity_id": int(e)}
        for f, e in zip(eval_set["features"][:200], eval_set["entity_id"][:200])
    ]
    response = httpx.post(
        f"{demo['base']}/v1/models/{MODEL}:predict", json={"instances": instances}, timeout=10
    )
    assert response.status_code == 200, response.text
    predictions = np.array(response.json()["predictions"])
    assert np.mean(predictions == eval_set["label"][:200]) >= 0.85
    bad = httpx.post(
        f"{demo['base']}/v1/models/{MODEL}:predict",
        json={"instances": [{"features": [1, 2], "entity_id": 1}]},
    )
    assert bad.status_code == 400 and "features" in bad.json()["error"]


def test_drift_alert_fires_webhook_and_clears(
    demo: dict, webhook: Webhook, eval_set: dict[str, np.ndarray]
) -> None:
    base = demo["base"]
    features = eval_set["features"][:300].copy()
    features[:, 0] *= 20  # amounts twenty times larger than anything seen in training
    assert infer(base, v2_body(features, eval_set["entity_id"][:300])).status_code == 200
    assert metric(base, "drift_alert") == 1
    assert metric(base, "drift_score") > 0.2
    normal = eval_set["features"][:500]
    assert infer(base, v2_body(normal, eval_set["entity_id"][:500])).status_code == 200
    assert metric(base, "drift_alert") == 0
    deadline = time.monotonic() + 5
    while len(webhook.received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    events = [r["event"] for r in webhook.received]
    assert events[-2:] == ["drift_alert", "drift_resolved"]
    assert webhook.received[-2]["per_feature"]["amount"] > 0.2


def test_ingest_validates_rows_and_retrain_makes_a_new_version(demo: dict) -> None:
    base = demo["base"]
    good = {"features": [120.0, 2.5, 30.0, 0.9, 3, 0], "entity_id": 5, "label": 1}
    rows = [
        good,
        {**good, "label": 0},
        {**good, "entity_id": 7},
        {**good, "features": [-5.0, 2.5, 30.0, 0.9, 3, 0]},  # negative amount
        {**good, "label": 2},
        {"features": [1, 2], "entity_id": 1, "label": 0},
        "not a row",
    ]
    response = httpx.post(f"{base}/v2/models/{MODEL}/ingest", json={"rows": rows})
    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["accepted"], result["rejected"]) == (3, 4)
    assert [e["row"] for e in result["errors"]] == [3, 4, 5, 6]
    assert "amount" in result["errors"][0]["error"]
    assert httpx.post(f"{base}/v2/models/{MODEL}/ingest", json=[1]).status_code == 400

    assert httpx.post(f"{base}/v2/models/{MODEL}/retrain").status_code == 202
    deadline = time.monotonic() + 90
    status = {}
    while time.monotonic() < deadline:
        status = httpx.get(f"{base}/v2/models/{MODEL}/retrain").json()
        if status["state"] != "running":
            break
        time.sleep(0.3)
    assert status["state"] == "done", status
    assert status["ingested_rows"] == 3
    assert status["holdout_accuracy"]["main"] >= 0.9
    assert httpx.get(f"{base}/v2/models/{MODEL}").json()["versions"] == ["2"]


def test_corrupt_cached_model_is_detected_and_replaced(demo: dict, tmp_path: Path) -> None:
    state = tmp_path / "state"
    shutil.copytree(demo["state"], state)
    blob = bytearray((state / "model.pt").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (state / "model.pt").write_bytes(bytes(blob))
    port = free_port()
    server = subprocess.Popen(
        [
            *PYTHON,
            "serve",
            "--port",
            str(port),
            "--feature-store",
            demo["fs_url"],
            "--state-dir",
            str(state),
        ],
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/v2/health/ready", server, 120)
        assert metric(base, "demo_model_checksum_failures_total") == 1
        assert httpx.get(f"{base}/status").json()["model_source"] == (
            "retrained-after-checksum-mismatch"
        )
        assert (state / "model.pt.corrupt").exists()
    finally:
        stop([server])
    assert server.returncode == 0
