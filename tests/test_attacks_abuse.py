"""API fuzzing, request flood and model extraction against real servers."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.core.attack import AttackContext, make_attack
from harness.core.protocols import make_adapter
from tests.attacks_support import demo_rows, live_demo, serve_app


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    # a small in-flight limit, so that the flood reaches it on a 2-core box
    with live_demo(tmp_path_factory.mktemp("abuse"), "--max-inflight", "2") as d:
        yield d


def toy_app(careful: bool) -> FastAPI:
    """An OIP-v2-shaped endpoint: the careless one lets parse errors escape as 500s."""
    app = FastAPI()

    @app.post("/v2/models/toy/infer")
    async def infer(request: Request) -> JSONResponse:
        try:
            body = json.loads(await request.body())
            rows = np.asarray(body["inputs"][0]["data"], dtype=np.float32).reshape(-1, 6)
        except Exception:
            if careful:
                return JSONResponse({"error": "bad request"}, status_code=400)
            raise
        labels = (rows.sum(axis=1) > 0).astype(int).tolist()
        return JSONResponse(
            {
                "outputs": [
                    {"name": "label", "shape": [len(labels)], "datatype": "INT64", "data": labels}
                ]
            }
        )

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    return app


@pytest.fixture(params=[True, False], ids=["careful", "careless"])
def toy_server(request):
    with serve_app(toy_app(request.param)) as url:
        yield request.param, url


def test_fuzz_tells_a_careful_server_from_a_careless_one(toy_server):
    careful, url = toy_server
    dataset, labels = demo_rows(50)
    ctx = AttackContext(
        base_url=url,
        adapter=make_adapter("oip-v2"),
        model="toy",
        dataset=dataset,
        labels=labels,
        seed=3,
    )
    result = make_attack("fuzz", "abuse.fuzz", {"examples": 60, "huge_rows": 500}).run(
        ctx, time.monotonic() + 60
    )
    m = result.metrics
    assert m["fuzz_cases"] == 60 and m["alive"] == 1
    if careful:
        assert m["server_errors"] == 0 and result.details["failures"] == []
    else:
        assert m["server_errors"] > 0 and result.details["failures"]


def test_fuzz_against_the_demo_keeps_it_alive(demo):
    dataset, labels = demo_rows(50)
    result = make_attack("fuzz", "abuse.fuzz", {"examples": 80, "huge_rows": 2000}).run(
        demo.context(dataset, labels), time.monotonic() + 60
    )
    m = result.metrics
    assert m["fuzz_cases"] == 80 and m["alive"] == 1 and m["crashes"] == 0
    assert m["client_errors"] > m["accepted"]  # most malformed requests are refused
    # every 5xx found is listed with its smallest example
    assert (m["server_errors"] > 0) == bool(result.details["failures"])


def test_flood_past_the_inflight_limit_gets_429(demo):
    dataset, labels = demo_rows(500)
    m = (
        make_attack("flood", "abuse.flood", {"rate": 400, "concurrency": 40, "max_queries": 300})
        .run(demo.context(dataset, labels), time.monotonic() + 30)
        .metrics
    )
    assert m["flood_requests"] == 300
    assert m["flood_rate_limited"] > 0 and m["rate_limited_share"] > 0
    assert m["server_errors"] == 0 and m["alive"] == 1


def test_extraction_surrogate_agrees_with_the_target(demo):
    dataset, labels = demo_rows(1500)
    m = (
        make_attack("steal", "abuse.extraction", {"samples": 200, "max_queries": 600})
        .run(demo.context(dataset, labels), time.monotonic() + 60)
        .metrics
    )
    assert m["extraction_queries"] == 600 and m["queries"] == 800
    assert 0.6 <= m["extraction_agreement"] <= 1.0  # far better than chance from 600 answers
