"""Probe a running model server through a protocol adapter, and write a starter scenario.

`aftershock probe-target URL --protocol P` checks liveness and readiness, reads the
model's metadata where the protocol has it, sends one batch, and says what it
understood (shapes, datatypes, predictions, classes, model version), so that a user
sees whether aftershock speaks their server's dialect before writing a scenario.
`aftershock init` turns that into a first scenario file.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import yaml

from harness.core.fault import UserError
from harness.core.protocols import DecodeError, ProtocolAdapter, make_adapter, same_prediction
from harness.core.protocols.oip_v2 import OIP_DATATYPES
from harness.core.safety import check_host_allowed
from harness.engine.datasets import load_dataset

NUMPY_OF_OIP = {v: k for k, v in OIP_DATATYPES.items()}


@dataclass
class EndpointCheck:
    path: str
    status: int | None = None  # None: no answer
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


@dataclass
class ProbeReport:
    url: str
    protocol: str
    model: str
    live: EndpointCheck
    ready: EndpointCheck
    metadata: Any = None  # the metadata answer (JSON), when the protocol has an endpoint
    inputs: dict[str, tuple[list[int], str]] = field(default_factory=dict)  # sent: name -> (shape, dtype)
    batch_source: str = ""
    status: int | None = None  # of the inference request
    latency_ms: float | None = None
    predictions: list[Any] | None = None
    model_version: str | None = None
    fallback: bool | None = None
    accuracy: float | None = None  # against the dataset's labels, when it has them
    problems: list[str] = field(default_factory=list)

    @property
    def classes(self) -> list[Any]:
        return sorted({p for p in self.predictions or []}, key=str)

    @property
    def ok(self) -> bool:
        return not self.problems


DEFAULT_MODEL = "model"  # the name servers use when there is one model and none is given


def probe_target(
    url: str,
    protocol: str,
    model: str | None = None,
    *,
    dataset: Path | None = None,
    label: str | None = "label",
    batch_size: int = 8,
    options: dict[str, Any] | None = None,
    allowed_hosts: list[str] | None = None,
    timeout: float = 10.0,
) -> ProbeReport:
    """Probe the server at `url`; UserError for bad input, problems listed in the report.

    Without `model`, the one model the server lists is probed (several: UserError naming them)."""
    check_host_allowed(url, allowed_hosts or [])
    adapter = make_adapter(protocol, **(options or {}))
    base = url.rstrip("/")
    with httpx.Client(base_url=base, timeout=timeout, trust_env=False) as client:
        served = served_models(client)
        if model is None:
            if len(served) > 1:
                raise UserError(f"the server at {base} serves {len(served)} models ({', '.join(served)}): "
                                f"choose one with --model NAME")
            model = served[0] if served else DEFAULT_MODEL
        report = ProbeReport(base, protocol, model, _check(client, adapter.live_path),
                             _check(client, adapter.ready_path(model)))
        for what, check in (("liveness", report.live), ("readiness", report.ready)):
            if not check.ok:
                report.problems.append(f"{what} {check.path}: {check.error or f'HTTP {check.status}'}")
        if report.live.status is None and report.ready.status is None:
            return report  # nothing answers: no point sending a batch
        report.metadata = _metadata(client, adapter, model, report)
        _check_model_found(adapter, model, served, report)
        batch, labels, report.batch_source = _sample_batch(adapter, report.metadata, dataset, label, batch_size)
        report.inputs = {n: (list(a.shape), str(a.dtype)) for n, a in batch.items()}
        _infer(client, adapter, model, batch, labels, report)
    return report


def served_models(client: httpx.Client) -> list[str]:
    """The model names the server lists (KServe `GET /v1/models`, Triton/MLServer
    `POST /v2/repository/index`); empty when it lists none."""
    for method, path in (("GET", "/v1/models"), ("POST", "/v2/repository/index")):
        try:
            resp = client.request(method, path, json={} if method == "POST" else None)
            body = resp.json() if resp.status_code < 300 else None
        except (httpx.HTTPError, ValueError):
            continue
        entries = body.get("models") if isinstance(body, dict) else body
        if isinstance(entries, list):
            names = [e.get("name") if isinstance(e, dict) else e for e in entries]
            if found := [str(n) for n in names if isinstance(n, (str, int)) and str(n)]:
                return found
    return []


def _check_model_found(adapter: ProtocolAdapter, model: str, served: list[str], report: ProbeReport) -> None:
    """A 404 on a path that names the model is a wrong model name: say so, rather than what
    follows from it (no metadata, so "does not describe its inputs")."""
    meta = adapter.metadata_path(model)
    missing = [path for path, status in ((report.ready.path, report.ready.status),
                                         (meta, 404 if any(f"{meta}: HTTP 404" in p for p in report.problems) else None))
               if status == 404 and path and model in path]
    if missing:
        listed = f"; it serves: {', '.join(served)}" if served else ""
        raise UserError(f"the server at {report.url} has no model named {model!r} (GET {missing[0]} answered 404)"
                        f"{listed}: pass --model NAME")


def _check(client: httpx.Client, path: str) -> EndpointCheck:
    try:
        return EndpointCheck(path, client.get(path).status_code)
    except httpx.HTTPError as exc:
        return EndpointCheck(path, error=f"no answer ({type(exc).__name__}: {exc})")


def _metadata(client: httpx.Client, adapter: ProtocolAdapter, model: str, report: ProbeReport) -> Any:
    path = adapter.metadata_path(model)
    if path is None:
        return None
    try:
        resp = client.get(path)
        if resp.status_code >= 300:
            report.problems.append(f"metadata {path}: HTTP {resp.status_code}")
            return None
        return resp.json()
    except (httpx.HTTPError, ValueError) as exc:
        report.problems.append(f"metadata {path}: {exc}")
        return None


def _sample_batch(
    adapter: ProtocolAdapter, metadata: Any, dataset: Path | None, label: str | None, batch_size: int
) -> tuple[dict[str, np.ndarray], np.ndarray | None, str]:
    """The first rows of the dataset; else zeros shaped like the OIP v2 metadata's inputs."""
    if dataset is not None:
        data = load_dataset(dataset, label=label)
        features, labels = data.batch(0, min(batch_size, len(data)))
        return features, labels, f"the first {len(next(iter(features.values())))} rows of {dataset}"
    inputs = metadata.get("inputs") if isinstance(metadata, dict) else None
    if inputs:
        batch = {}
        for spec in inputs:
            shape = [batch_size if d in (-1, None) else int(d) for d in spec.get("shape", [-1])]
            dtype = NUMPY_OF_OIP.get(spec.get("datatype", "FP32"), "float32")
            batch[spec["name"]] = np.zeros(shape, dtype=dtype)
        return batch, None, "zeros shaped like the model's metadata"
    raise UserError(
        f"the {adapter.name} server does not describe its inputs: give a few rows with "
        f"--data FILE (.npz, .csv, .jsonl or .parquet; one column per input)"
    )


def _infer(client: httpx.Client, adapter: ProtocolAdapter, model: str, batch: dict[str, np.ndarray],
           labels: np.ndarray | None, report: ProbeReport) -> None:
    path = adapter.infer_path(model)
    started = time.perf_counter()
    try:
        resp = client.post(path, json=adapter.encode(batch))
    except httpx.HTTPError as exc:
        report.problems.append(f"inference {path}: no answer ({exc})")
        return
    report.latency_ms = (time.perf_counter() - started) * 1000
    report.status = resp.status_code
    if resp.status_code >= 300:
        report.problems.append(f"inference {path}: HTTP {resp.status_code}: {resp.text[:300]}")
        return
    try:
        decoded = adapter.decode(resp.json())
    except (ValueError, DecodeError) as exc:
        report.problems.append(f"inference {path}: cannot read the answer as {adapter.name}: {exc}")
        return
    report.predictions, report.model_version, report.fallback = (
        decoded.predictions, decoded.model_version, decoded.fallback)
    rows = len(next(iter(batch.values())))
    if decoded.predictions is None:
        report.problems.append("the answer holds no predictions the adapter can read (see its options)")
    elif len(decoded.predictions) != rows:
        report.problems.append(f"sent {rows} rows, read {len(decoded.predictions)} predictions")
    elif labels is not None:
        report.accuracy = sum(same_prediction(p, y) for p, y in zip(decoded.predictions, labels)) / rows


def starter_scenario(report: ProbeReport, name: str, dataset: str | None) -> str:
    """A first scenario for the probed target: steady-state load with latency,
    availability (and accuracy) SLOs, and a commented fault to start from."""
    p95 = max(50, 10 * math.ceil(5 * (report.latency_ms or 10) / 10))  # 5x one request, >= 50 ms
    data: dict[str, Any] = {"dataset": dataset, "labels": report.accuracy is not None, "batch_size": 1}
    scenario: dict[str, Any] = {
        "name": name,
        "description": f"Steady-state check of the {report.protocol} server at {report.url}, "
                       f"written by `aftershock init`. Add faults under timeline.faults.",
        "target": {"url": report.url, "protocol": report.protocol, "model": report.model},
        "load": {"users": 4, "duration": "60s", "data": data},
        "timeline": {"baseline": "60s", "faults": []},
        "slos": [
            {"name": f"p95 under {p95} ms", "expect": f"p95(latency) < {p95}ms"},
            {"name": "availability", "expect": "availability >= 99.5%"},
        ],
        "stop_when": ["error_rate > 50% for 5s"],
    }
    if report.accuracy is not None:
        floor = math.floor(report.accuracy * 0.9 * 100) / 100
        scenario["slos"].append({"name": "accuracy holds", "expect": f"accuracy >= {floor:g}"})
    text = yaml.safe_dump(scenario, sort_keys=False, width=100)
    return text + FAULT_HINT


FAULT_HINT = """
# Next: start the server from the scenario (target.start: {command: [...], ready: {path: ...}})
# so faults can reach it, then add one under timeline.faults, e.g.
#   - {name: crash, type: process.restart, process: target, at: 20s, duration: 2s}
# and an SLO such as `recovery_time < 30s`. `aftershock validate FILE` checks the file.
"""


def write_starter(report: ProbeReport, out: Path, name: str | None, dataset: Path | None, force: bool) -> Path:
    """Write the starter scenario to `out` (dataset path relative to it); check it loads."""
    from harness.engine.scenario.loader import load_scenario

    if out.exists() and not force:
        raise UserError(f"{out} exists: choose another --out or pass --force to overwrite it")
    if dataset is None:
        raise UserError("aftershock init needs --data FILE: the scenario's load sends those rows")
    rel = os.path.relpath(dataset.resolve(), out.resolve().parent)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(starter_scenario(report, name or out.stem, rel), encoding="utf-8")
    load_scenario(out)  # what we wrote must be a valid scenario
    return out

