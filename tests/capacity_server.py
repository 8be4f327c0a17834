"""A model server of known capacity, and the store it reads from, for the capacity search's tests.

`python -m tests.capacity_server store PORT` answers every GET at once. `python -m
tests.capacity_server model PORT --store HOST:PORT --slots K --service-ms S` is an OIP v2
server that serves K requests at a time, first come first served: each holds its slot while
it reads the store and then works S ms. With N closed-loop users and no fault, an answer
takes ceil(N / K) · S (the users queue in rounds of K), so `p95(latency) < 2.5·S` holds up to
N = 2K users and fails from 2K + 1. A latency fault of S on the store (through the fault
proxy) makes each slot last 2·S: the same SLO then holds only up to K users, half the
capacity. Loopback only; aiohttp, one event loop.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

from aiohttp import ClientSession, ClientTimeout, web

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parents[1]


def target_yaml(slots: int, service_ms: float) -> str:
    """A scenario's `target:` and `dependencies:`: the model server (K=`slots`, S=`service_ms`)
    and its store, started by the harness from this module."""
    return f"""\
target: {{url: "http://{{deps[model]}}", protocol: oip-v2, model: m, ready_timeout: 30s}}
dependencies:
  store:
    start: {{command: ["{{python}}", -m, tests.capacity_server, store, "{{port}}"], cwd: {ROOT}, ready: {{path: /}}}}
  model:
    start:
      command: ["{{python}}", -m, tests.capacity_server, model, "{{port}}", --store, "{{deps[store]}}",
                --slots, "{slots}", --service-ms, "{service_ms:g}"]
      cwd: {ROOT}
"""


def model_app(store: str, slots: int, service_s: float) -> web.Application:
    limit = asyncio.Semaphore(slots)  # wakes waiters in arrival order: rounds of K, no overtaking
    app = web.Application()

    async def session(app: web.Application):  # one pooled client: no connect per request
        app["store"] = ClientSession(f"http://{store}", timeout=ClientTimeout(total=30))
        yield
        await app["store"].close()

    async def infer(request: web.Request) -> web.Response:
        body = await request.json()
        rows = body["inputs"][0]["shape"][0]
        async with limit:
            async with request.app["store"].get("/features") as answer:
                await answer.read()
            await asyncio.sleep(service_s)
        outputs = [{"name": "label", "shape": [rows], "datatype": "INT64", "data": [0] * rows}]
        return web.json_response({"model_name": request.match_info["model"], "model_version": "1", "outputs": outputs})

    async def ready(request: web.Request) -> web.Response:
        return web.json_response({"ready": True})

    app.cleanup_ctx.append(session)
    app.router.add_post("/v2/models/{model}/infer", infer)
    app.router.add_get("/v2/health/ready", ready)
    app.router.add_get("/v2/health/live", ready)
    return app


def store_app() -> web.Application:
    app = web.Application()

    async def features(request: web.Request) -> web.Response:
        return web.json_response({"amount": 1.0})

    app.router.add_get("/features", features)
    app.router.add_get("/", features)
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=("model", "store"))
    parser.add_argument("port", type=int)
    parser.add_argument("--store", help="HOST:PORT of the store (model only)")
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--service-ms", type=float, default=200.0)
    args = parser.parse_args()
    app = store_app() if args.role == "store" else model_app(args.store, args.slots, args.service_ms / 1000)
    web.run_app(app, host=HOST, port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
