"""Attack figures made of what happened: bounds, scores, error kinds, real batches, poison counts.

A toy model server in a real uvicorn thread knows the truth: every row it was sent, the
class scores it answered (BentoML style: a plain list of lists), what it did with the
poison; transport failures come from real sockets (a closed port, a server that resets).
"""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.core.attack import AttackContext, make_attack
from harness.core.processes import free_port
from harness.core.protocols import make_adapter
from tests.attacks_support import serve_app

ROWS = 200
FLAT = 4  # columns 0..3 are 0 in every row, like the border pixels of a digit


def dataset() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = np.zeros((ROWS, FLAT + 4), dtype=np.float32)
    x[:, FLAT:] = rng.uniform(0, 1, (ROWS, 4))
    return x, predict(x).argmax(axis=1)


def predict(x: np.ndarray) -> np.ndarray:
    """Class scores of the toy model: class 1 when the moving columns sum past 2."""
    p1 = 1 / (1 + np.exp(np.clip(-8 * (x[:, FLAT:].sum(axis=1) - 2.0), -50, 50)))
    return np.stack([1 - p1, p1], axis=1)


@dataclass
class Toy:
    url: str
    seen: list[np.ndarray] = field(default_factory=list)  # every row sent to /predict
    batches: list[tuple[int, int]] = field(default_factory=list)  # OIP requests: (shape[0], len(data))
    file: Path | None = None
    counts: bool = True  # ingest replies say how many rows were accepted


def toy_app(toy: Toy) -> FastAPI:
    app = FastAPI()

    @app.post("/predict")
    async def infer(request: Request) -> JSONResponse:
        rows = np.asarray((await request.json())["x"], dtype=np.float64)
        toy.seen.append(rows)
        return JSONResponse(predict(rows).tolist())  # predict_proba, as BentoML answers it

    @app.post("/failing")
    async def failing() -> JSONResponse:
        return JSONResponse({"error": "down"}, status_code=503)

    @app.post("/v2/models/toy/infer")
    async def oip(request: Request) -> JSONResponse:
        try:
            t = json.loads(await request.body())["inputs"][0]
            rows = np.asarray(t["data"], dtype=np.float32).reshape(t["shape"])
            assert rows.ndim == 2 and rows.shape[1] == FLAT + 4
        except Exception:  # noqa: BLE001 - a careful server: every malformed request is a 400
            return JSONResponse({"error": "bad request"}, status_code=400)
        toy.batches.append((t["shape"][0], len(t["data"])))
        return JSONResponse({"outputs": [{"name": "label", "shape": [len(rows)], "datatype": "INT64",
                                          "data": predict(rows).argmax(axis=1).tolist()}]})  # fmt: skip

    @app.post("/ingest")
    async def ingest(request: Request) -> JSONResponse:
        rows = (await request.json())["rows"]
        return JSONResponse({"accepted": len(rows), "rejected": 0} if toy.counts else {"ok": True})

    @app.post("/retrain")
    async def retrain() -> JSONResponse:
        return JSONResponse({"state": "running"}, status_code=202)

    @app.get("/retrain")
    async def retrain_status() -> JSONResponse:
        # training reads the poison file and keeps the rows whose column FLAT is at least 0.5
        taken = int((np.load(toy.file)["x"][:, FLAT] >= 0.5).sum()) if toy.file else 0
        return JSONResponse({"state": "done", "rows_read": taken})

    @app.get("/livez")
    async def live() -> dict[str, bool]:
        return {"live": True}

    return app


@pytest.fixture(scope="module")
def toy() -> Iterator[Toy]:
    state = Toy("")
    with serve_app(toy_app(state)) as url:
        state.url = url
        yield state


def context(url: str, protocol: str = "bentoml", **options) -> AttackContext:
    x, y = dataset()
    options = {"param": "x", **options} if protocol == "bentoml" else options
    return AttackContext(base_url=url, adapter=make_adapter(protocol, **options), model="toy",
                         dataset={"x": x}, labels=y, seed=5)  # fmt: skip


def test_hopskipjump_never_leaves_the_data_bounds(toy: Toy) -> None:
    toy.seen.clear()
    params = {"samples": 4, "max_queries": 800, "max_iter": 3, "max_eval": 30, "init_eval": 5, "init_size": 20}
    m = make_attack("hsj", "evasion.hopskipjump", params).run(context(toy.url), time.monotonic() + 60).metrics
    assert m["samples"] == 4 and m["queries"] > 50
    sent = np.concatenate(toy.seen)
    x, _ = dataset()
    assert np.all(sent[:, :FLAT] == 0)  # a constant column never moves (it used to reach 1 raw unit)
    assert np.all(sent >= x.min(axis=0) - 1e-6) and np.all(sent <= x.max(axis=0) + 1e-6)


def test_score_attacks_read_bentoml_predict_proba(toy: Toy) -> None:
    params = {"samples": 3, "max_queries": 300, "max_iter": 10, "eps": 0.3}
    result = make_attack("square", "evasion.square", params).run(context(toy.url), time.monotonic() + 60)
    assert result.metrics["samples"] == 3 and result.metrics["queries"] > 3  # scores read: it attacked


def dead_port() -> int:
    return free_port()  # nothing listens there


@contextmanager
def resetting_server() -> Iterator[int]:
    """Accepts each connection and resets it (SO_LINGER 0) before answering."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.recv(65536)
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()


def flood(url: str, api: str = "predict") -> dict:
    params = {"rate": 100, "concurrency": 5, "max_queries": 20, "request_timeout": 2}
    return make_attack("flood", "abuse.flood", params).run(context(url, api=api), time.monotonic() + 20)


def test_flood_with_no_answer_has_no_latency_and_names_the_error_kind(toy: Toy) -> None:
    refused = flood(f"http://127.0.0.1:{dead_port()}")
    m = refused.metrics
    assert m["flood_requests"] == 20 and m["flood_refused"] == 20 and m["flood_timeouts"] == 0
    assert "flood_p95_latency" not in m  # not measured: an SLO on it fails, instead of passing on 0.0
    assert refused.details["errors"] == {"refused": 20}
    with resetting_server() as port:
        reset = flood(f"http://127.0.0.1:{port}")
    assert reset.metrics["flood_reset"] == 20 and reset.metrics["flood_timeouts"] == 0
    failing = flood(toy.url, api="failing")
    assert failing.details["errors"] == {"http_503": 20} and failing.metrics["server_errors"] == 20
    assert failing.metrics["flood_p95_latency"] > 0  # answered (with 503s): measured
    ok = flood(toy.url)
    assert ok.metrics["flood_ok"] == 20 and ok.details["errors"] == {}


def test_fuzz_sends_real_n_row_batches(toy: Toy) -> None:
    toy.batches.clear()
    params = {"examples": 120, "huge_rows": 400}
    result = make_attack("fuzz", "abuse.fuzz", params).run(context(toy.url, "oip-v2"), time.monotonic() + 90)
    assert result.metrics["server_errors"] == 0 and result.metrics["crashes"] == 0
    width = FLAT + 4
    assert all(n * width == values for n, values in toy.batches)  # every accepted request is well formed
    rows = {n for n, _ in toy.batches}
    assert max(rows) >= 200  # oversized batches were sent, and the server parsed them as rows
    assert any(2 <= n <= 64 for n in rows)


def test_poison_counts_only_what_the_target_reported(toy: Toy, tmp_path: Path) -> None:
    base = {"samples": 50, "rows": 60, "ingest_path": "/ingest", "retrain_path": "/retrain", "target_class": 0}
    toy.counts = True
    m = make_attack("flip", "poison.label_flip", base).run(context(toy.url), time.monotonic() + 60).metrics
    assert m["poison_accepted"] == 60 and m["poison_rejected"] == 0
    toy.counts = False  # the target answers 200 and no counts: what it kept is unknown
    r = make_attack("flip", "poison.label_flip", base).run(context(toy.url), time.monotonic() + 60)
    assert "poison_accepted" not in r.metrics and r.details["poison_unconfirmed"] == 60
    toy.file = tmp_path / "poison.npz"
    filed = {**base, "inject": "file", "file": str(toy.file)}
    r = make_attack("flip", "poison.label_flip", filed).run(context(toy.url), time.monotonic() + 60)
    assert "poison_accepted" not in r.metrics  # written to a file: not counted as accepted
    m = make_attack("flip", "poison.label_flip", {**filed, "file_accepted": "rows_read"}).run(
        context(toy.url), time.monotonic() + 60).metrics
    taken = int((np.load(toy.file)["x"][:, FLAT] >= 0.5).sum())
    assert 0 < taken < 60 and m["poison_accepted"] == taken and m["poison_rejected"] == 60 - taken


# Each attack given a window that is already over: nothing is sent, so what the sending
# would have measured (5xx counts, rates) is absent (not measured: an SLO on it fails),
# never 0 - the truth: the toy saw no request.
NOTHING_TRIED = {
    "abuse.fuzz": ({"examples": 50, "huge_rows": 100}, "oip-v2", ["server_errors", "crashes", "client_errors", "accepted"]),
    "abuse.flood": ({"max_queries": 20}, "bentoml",
                    ["server_errors", "rate_limited_share", "flood_p95_latency", "flood_ok", "flood_other_4xx", "flood_rate"]),
    "abuse.extraction": ({"samples": 20, "max_queries": 40}, "bentoml", ["server_errors", "extraction_agreement"]),
    "evasion.hopskipjump": ({"samples": 4}, "bentoml",
                            ["server_errors", "attack_success_rate", "robust_accuracy", "refused_samples", "refused_queries"]),
    "whitebox.fgsm": ({"samples": 4, "eps": 0.1}, "bentoml", ["server_errors", "attack_success_rate", "transfer_rate"]),
    "poison.label_flip": ({"samples": 50, "rows": 20, "ingest_path": "/ingest", "retrain_path": "/retrain"}, "bentoml",
                          ["server_errors", "poison_rejection_rate", "clean_accuracy_drop"]),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(NOTHING_TRIED))
def test_an_attack_that_tried_nothing_reports_no_figure_of_what_it_did_not_try(toy: Toy, kind: str) -> None:
    params, protocol, absent = NOTHING_TRIED[kind]
    toy.seen.clear()
    toy.batches.clear()
    events: list[tuple[str, dict]] = []
    ctx = context(toy.url, protocol)
    ctx.journal = lambda event, **fields: events.append((event, fields))
    result = make_attack("idle", kind, params).run(ctx, time.monotonic())  # the window is over
    assert not toy.seen and not toy.batches  # truth: the toy was sent nothing
    assert [name for name in absent if name in result.metrics] == [], result.metrics
    if kind == "abuse.fuzz":  # it says so loudly, with the reason
        assert result.metrics["fuzz_cases"] == 0
        assert "sent no case" in result.details["stopped"]
        assert [e for e, f in events if e == "attack.error" and f["kind"] == "no_cases"] == ["attack.error"]


def test_poison_with_no_retrain_path_reports_no_retrain(toy: Toy) -> None:
    toy.counts = True
    params = {"samples": 50, "rows": 20, "ingest_path": "/ingest", "retrain_path": None}
    m = make_attack("flip", "poison.label_flip", params).run(context(toy.url), time.monotonic() + 60).metrics
    assert m["poison_accepted"] == 20 and m["clean_accuracy_after"] == 1.0  # the toy never retrains
    assert "retrained" not in m  # no retrain was tried: not measured, never "0"
