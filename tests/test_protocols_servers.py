"""The protocol adapters against the real model servers people run.

Each server (KServe's Python model server, MLServer, BentoML, TorchServe) runs from
its own virtual environment made by `.ci/model-servers.sh`; a server whose venv is
missing is skipped with the command that installs it. The servers serve a small iris
classifier trained at first use (tests/servers/train_iris.py). Every test talks to the
server over a real socket through the adapter the load uses: readiness and liveness,
model metadata, one batch encoded and decoded (predictions and the model version the
server reports per request), and a 4xx for a request the server cannot use.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from servers import launch

from harness.core.processes import ManagedProcess, free_port
from harness.core.protocols import DecodeError, ProtocolAdapter, make_adapter, same_prediction

ROOT = Path(__file__).resolve().parent.parent
IRIS = ROOT / "scenarios" / "servers" / "iris.npz"
VERSION = "3"  # not the servers' default: a version read back proves it came from the server


@dataclass
class Case:
    """One server spoken to through one protocol."""

    id: str
    server: str  # tests/servers/launch.py name
    protocol: str
    options: dict[str, Any] = field(default_factory=dict)
    metadata_has: str = "iris"  # text the metadata answer must contain
    reports_version: bool = True
    bad_body: Any = None  # a body the server must refuse with a 4xx
    bad_status: tuple[int, ...] = (400, 422)


CASES = [
    Case("kserve-oip-v2", "kserve", "oip-v2",
         bad_body={"inputs": [{"name": "input", "shape": [1, 2], "datatype": "FP32", "data": [1.0, 2.0]}]}),
    Case("kserve-v1", "kserve", "kserve-v1", {"model_version": "model_version"},
         bad_body={"instances": [[1.0, 2.0]]}),
    # MLServer answers a wrong feature count with 500 (the model raises): only a body
    # that breaks the protocol's schema gets a 4xx from it
    Case("mlserver-oip-v2", "mlserver", "oip-v2", bad_body={"inputs": "not a list"}),
    Case("bentoml", "bentoml", "bentoml", {"api": "predict_versioned", "model_version": "model_version"},
         metadata_has="predict_versioned", bad_body={"input": [[1.0, 2.0]]}),
    Case("torchserve", "torchserve", "torchserve", {"model_version": "model_version"},
         metadata_has="", bad_body={"data": [[1.0, 2.0]]}),
]


@dataclass
class RunningServer:
    server: str
    base_url: str
    process: ManagedProcess


_running: dict[str, RunningServer] = {}


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, RunningServer]]:
    """Servers are started on first use and shared by the cases that speak to them."""
    try:
        yield _running
    finally:
        for running in _running.values():
            running.process.stop()
        _running.clear()


def server_for(case: Case, servers: dict[str, RunningServer], logs: Path) -> RunningServer:
    if launch.venv_dir(case.server) is None:
        pytest.skip(f"{case.server} is not installed: run .ci/model-servers.sh {launch.VENV_OF[case.server]}")
    if case.server not in servers:
        port = free_port()
        argv = [sys.executable, str(ROOT / "tests" / "servers" / "launch.py"), case.server,
                "--port", str(port), "--version", VERSION]
        proc = ManagedProcess(case.server, argv, logs / f"{case.server}.log")
        proc.start()
        running = RunningServer(case.server, f"http://127.0.0.1:{port}", proc)
        servers[case.server] = running  # stopped by the fixture even if it never gets ready
        ready = make_adapter(case.protocol, **case.options).ready_path(launch.MODEL)
        proc.wait_http_ready(running.base_url + ready, timeout=180)
    return servers[case.server]


@pytest.fixture(params=CASES, ids=[c.id for c in CASES])
def case(request: pytest.FixtureRequest) -> Case:
    return request.param


@pytest.fixture
def target(case: Case, servers: dict[str, RunningServer], tmp_path_factory: pytest.TempPathFactory
           ) -> tuple[ProtocolAdapter, httpx.Client]:
    running = server_for(case, servers, tmp_path_factory.getbasetemp() / "server-logs")
    adapter = make_adapter(case.protocol, **case.options)
    with httpx.Client(base_url=running.base_url, timeout=30) as client:
        yield adapter, client


def iris_batch(rows: int = 12) -> tuple[dict[str, np.ndarray], np.ndarray]:
    data = np.load(IRIS)
    pick = np.linspace(0, len(data["label"]) - 1, rows).astype(int)  # all three classes
    return {"input": data["input"][pick]}, data["label"][pick]


def test_ready_and_live(case: Case, target: tuple[ProtocolAdapter, httpx.Client]) -> None:
    adapter, client = target
    assert client.get(adapter.ready_path(launch.MODEL)).status_code == 200
    assert client.get(adapter.live_path).status_code == 200


def test_metadata(case: Case, target: tuple[ProtocolAdapter, httpx.Client]) -> None:
    adapter, client = target
    path = adapter.metadata_path(launch.MODEL)
    if path is None:
        pytest.skip(f"{case.protocol} has no metadata endpoint on the inference port")
    resp = client.get(path)
    assert resp.status_code == 200, resp.text
    assert case.metadata_has in resp.text


def test_batch_round_trip_and_model_version(case: Case, target: tuple[ProtocolAdapter, httpx.Client]) -> None:
    adapter, client = target
    batch, labels = iris_batch()
    resp = client.post(adapter.infer_path(launch.MODEL), json=adapter.encode(batch))
    assert resp.status_code == 200, resp.text
    decoded = adapter.decode(resp.json())
    assert decoded.predictions is not None and len(decoded.predictions) == len(labels)
    right = sum(same_prediction(p, y) for p, y in zip(decoded.predictions, labels))
    assert right >= 0.8 * len(labels), (decoded.predictions, labels.tolist())
    if case.reports_version:
        assert decoded.model_version is not None and decoded.model_version.startswith(VERSION)


def test_bad_input_is_a_client_error(case: Case, target: tuple[ProtocolAdapter, httpx.Client]) -> None:
    adapter, client = target
    resp = client.post(adapter.infer_path(launch.MODEL), json=case.bad_body)
    assert resp.status_code in case.bad_status, (resp.status_code, resp.text[:300])


def test_unknown_model_is_not_found(case: Case, target: tuple[ProtocolAdapter, httpx.Client]) -> None:
    adapter, client = target
    if case.protocol not in ("oip-v2", "kserve-v1", "torchserve"):
        pytest.skip(f"{case.protocol} routes by API name, not by model name")
    batch, _ = iris_batch(2)
    resp = client.post(adapter.infer_path("no-such-model"), json=adapter.encode(batch))
    assert resp.status_code == 404, (resp.status_code, resp.text[:300])


# --- message shapes of the adapters that no server above speaks (and edge cases) ---------


def test_seldon_v1_encode_and_decode_recorded_shapes() -> None:
    a = make_adapter("seldon-v1", prefix="/seldon/models/iris")
    assert a.infer_path("iris") == "/seldon/models/iris/api/v1.0/predictions"
    assert a.ready_path("iris") == "/seldon/models/iris/health/ping"
    body = a.encode({"input": np.array([[1.0, 2.0], [3.0, 4.0]])})
    assert body == {"data": {"names": ["input:0", "input:1"], "ndarray": [[1.0, 2.0], [3.0, 4.0]]}}
    # what seldon-core's sklearn server answers for predict_proba, with the image in requestPath
    answer = {"data": {"names": ["t:0", "t:1", "t:2"], "ndarray": [[0.9, 0.05, 0.05], [0.1, 0.2, 0.7]]},
              "meta": {"requestPath": {"classifier": "seldonio/sklearnserver:1.17.1"}}}
    decoded = a.decode(answer)
    assert decoded.predictions == [0, 2] and decoded.model_version == "1.17.1" and decoded.fallback is None
    tagged = {"data": {"tensor": {"shape": [2], "values": [1, 0]}},
              "meta": {"tags": {"model_version": "v9", "fallback": True}}}
    decoded = make_adapter("seldon-v1", payload="tensor").decode(tagged)
    assert decoded.predictions == [1.0, 0.0] and decoded.model_version == "v9" and decoded.fallback is True
    with pytest.raises(DecodeError):
        a.decode({"data": {"strData": "x"}})


def test_rows_and_objects_and_one_element_rows() -> None:
    k = make_adapter("kserve-v1")
    two = {"a": np.array([1, 2]), "b": np.array(["x", "y"])}
    assert k.encode(two) == {"instances": [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}]}
    assert k.decode({"predictions": [[2], [0.1, 0.9]]}).predictions == [2, 1]
    with pytest.raises(DecodeError, match="predictions"):
        k.decode({"outputs": []})
    b = make_adapter("bentoml", param="rows")
    assert b.encode({"input": np.array([[1.0], [2.0]])}) == {"rows": [[1.0], [2.0]]}
    t = make_adapter("torchserve", version="2.0")
    assert t.infer_path("iris") == "/predictions/iris/2.0" and t.metadata_path("iris") is None
    with pytest.raises(DecodeError):
        t.decode("plain text")
    oip = make_adapter("oip-v2")
    column = {"outputs": [{"name": "predict", "shape": [2, 1], "datatype": "INT64", "data": [1, 2]}]}
    assert oip.decode(column).predictions == [1, 2]


# --- probe-target and init against a real server -----------------------------------------


def test_probe_target_and_init_against_kserve(servers: dict[str, RunningServer], tmp_path: Path,
                                              tmp_path_factory: pytest.TempPathFactory) -> None:
    from typer.testing import CliRunner

    from harness.cli import app
    from harness.engine.probe_target import probe_target
    from harness.engine.scenario.loader import load_scenario

    running = server_for(CASES[0], servers, tmp_path_factory.getbasetemp() / "server-logs")
    report = probe_target(running.base_url, "oip-v2", launch.MODEL, dataset=IRIS, batch_size=6)
    assert report.ok, report.problems
    assert report.live.ok and report.ready.ok and report.metadata["name"] == launch.MODEL
    assert report.inputs == {"input": ([6, 4], "float32")}
    assert len(report.predictions) == 6 and report.model_version == VERSION and report.accuracy is not None

    out = tmp_path / "iris-starter.yaml"
    result = CliRunner().invoke(app, ["init", running.base_url, "--protocol", "oip-v2", "--model", launch.MODEL,
                                      "--data", str(IRIS), "--out", str(out)])
    assert result.exit_code == 0, result.output
    scenario = load_scenario(out).scenario
    assert scenario.target.url == running.base_url and scenario.target.protocol == "oip-v2"
    assert (out.parent / scenario.load.data.dataset).resolve() == IRIS.resolve()
    assert any("accuracy" in s.expect for s in scenario.slos)

    wrong = CliRunner().invoke(app, ["probe-target", running.base_url, "--protocol", "kserve-v1",
                                     "--model", "no-such-model", "--data", str(IRIS)])
    assert wrong.exit_code == 2 and "has no model named 'no-such-model'" in wrong.output  # the cause, named


def test_probe_target_user_errors() -> None:
    from typer.testing import CliRunner

    from harness.cli import app

    far = CliRunner().invoke(app, ["probe-target", "http://10.1.2.3:80", "--protocol", "oip-v2"])
    assert far.exit_code == 2 and "outside loopback" in far.output
    unknown = CliRunner().invoke(app, ["probe-target", "http://127.0.0.1:9", "--protocol", "grpc-x"])
    assert unknown.exit_code == 2 and "unknown protocol" in unknown.output
    bad_opt = CliRunner().invoke(app, ["probe-target", "http://127.0.0.1:9", "--protocol", "oip-v2", "-o", "x"])
    assert bad_opt.exit_code == 2 and "key=value" in bad_opt.output


# --- class scores from a real BentoML predict_proba ----------------------------------------


def test_bentoml_predict_proba_feeds_a_score_attack(servers: dict[str, RunningServer],
                                                    tmp_path_factory: pytest.TempPathFactory) -> None:
    import time

    from harness.core.attack import AttackContext, make_attack

    case = Case("bentoml-proba", "bentoml", "bentoml", {"api": "predict_proba"})
    running = server_for(case, servers, tmp_path_factory.getbasetemp() / "server-logs")
    adapter = make_adapter("bentoml", api="predict_proba")
    batch, _ = iris_batch(6)
    answer = httpx.post(running.base_url + adapter.infer_path(launch.MODEL), json=adapter.encode(batch), timeout=30)
    decoded = adapter.decode(answer.json())
    assert decoded.scores is not None and np.allclose(np.sum(decoded.scores, axis=1), 1.0)
    assert decoded.predictions == np.argmax(decoded.scores, axis=1).tolist()
    data = np.load(IRIS)
    ctx = AttackContext(running.base_url, adapter, launch.MODEL, {"input": data["input"]}, data["label"], seed=2)
    square = make_attack("sq", "evasion.square", {"samples": 3, "max_queries": 200, "max_iter": 5, "eps": 0.2})
    m = square.run(ctx, time.monotonic() + 60).metrics  # refused before: the scores were read as labels only
    assert m["samples"] == 3 and m["queries"] > 3
