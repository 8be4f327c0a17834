"""The model backend: the process that holds the model and streams tokens.

It stands for the GPU server behind a gateway (a vLLM or TGI replica): no guardrail, no
queue, one internal endpoint. The gateway reaches it through the fault proxy, so a
scenario can stall or slow its token stream, and a preemption kills exactly this process.

GET  /health      200 once the model is loaded
POST /generate    {"system", "user", "answer_so_far", "max_tokens", "temperature", "seed"}
                  -> SSE: one ``data: {"token": "c"}`` event per token, then ``data: {"done": true}``
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.demo.llm.generation import Prompt, Sampling, generate
from harness.demo.llm.model import TinyLM


def create_app(model: TinyLM, weights: str, token_interval: float) -> Starlette:
    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "weights": weights})

    async def generate_endpoint(request: Request) -> Response:
        try:
            body = await request.json()
            prompt = Prompt(str(body["system"]), str(body["user"]), str(body.get("answer_so_far", "")))
            sampling = Sampling(int(body["max_tokens"]), float(body.get("temperature", 0.0)), body.get("seed"))
        except (ValueError, KeyError, TypeError) as exc:
            return JSONResponse({"error": f"bad generate request: {exc}"}, status_code=400)

        async def events() -> AsyncIterator[bytes]:
            async for token in generate(model, prompt, sampling, token_interval):
                yield b"data: " + json.dumps({"token": token}).encode() + b"\n\n"
            yield b'data: {"done": true}\n\n'

        return StreamingResponse(events(), media_type="text/event-stream")

    return Starlette(routes=[Route("/health", health), Route("/generate", generate_endpoint, methods=["POST"])])


def run(host: str, port: int, state_dir: Path, canary: str, token_interval: float) -> int:
    import torch

    from harness.demo.llm.weights import load_or_train

    torch.set_num_threads(1)  # a tiny model: more threads only contend on a small box
    model, weights = load_or_train(state_dir, canary)
    print(f"llm backend: model from {weights}, serving on http://{host}:{port}", file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(model, weights, token_interval), host=host, port=port,
                                           log_level="warning", access_log=False, timeout_graceful_shutdown=1))
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises them after its shutdown: exit 0
        signal.signal(sig, lambda signum, frame: None)
    server.run()
    return 0 if server.started else 1
