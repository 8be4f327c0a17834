"""The OpenAI-compatible gateway: guardrail, context limit, bounded queue, metrics, and
(resilient) a deadline on the backend's stream with a local fallback.

POST /v1/chat/completions, /v1/completions   streaming (SSE, one token per event) or not
GET  /v1/models | /health | /metrics | /status

The fallback is the same tiny model loaded from the weight cache into the gateway: when
the backend gives no token within the deadline (a stalled stream, a preempted process),
the gateway goes on from the answer so far, so the client sees one late token instead of
a stall or an error; for ``breaker_reset`` seconds after that it answers locally at once.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from harness.demo.llm import guardrail
from harness.demo.llm.config import MODEL_ID, GatewayConfig
from harness.demo.llm.generation import Prompt, Sampling, generate
from harness.demo.llm.metrics import GatewayMetrics
from harness.demo.llm.model import TinyLM
from harness.demo.llm.openai_api import DONE, Answer, ApiRequest, BadRequest, parse, usage
from harness.demo.llm.upstream import UpstreamFailure, stream_tokens


class QueueFull(Exception):
    pass


class Admission:
    """At most ``max_concurrent`` generations; at most ``max_queue`` waiting (0: no bound)."""

    def __init__(self, max_concurrent: int, max_queue: int, metrics: GatewayMetrics) -> None:
        self.slots = asyncio.Semaphore(max_concurrent)
        self.max_queue, self.waiting, self.metrics = max_queue, 0, metrics

    async def enter(self) -> None:
        if self.slots.locked() and self.max_queue and self.waiting >= self.max_queue:
            raise QueueFull
        self.waiting += 1
        self.metrics.queue_depth.set(self.waiting)
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
            self.metrics.queue_depth.set(self.waiting)
        self.metrics.inflight.inc()

    def leave(self) -> None:
        self.slots.release()
        self.metrics.inflight.dec()


class Gateway:
    def __init__(self, cfg: GatewayConfig, fallback_model: TinyLM | None) -> None:
        self.cfg, self.fallback_model = cfg, fallback_model
        self.metrics = GatewayMetrics()
        self.admission = Admission(cfg.max_concurrent, cfg.max_queue, self.metrics)
        self.client = httpx.AsyncClient(timeout=httpx.Timeout(None, connect=1.0),
                                        limits=httpx.Limits(max_connections=None, max_keepalive_connections=64))
        self.local_until = 0.0  # the fallback answers alone until then (monotonic)

    async def tokens(self, prompt: Prompt, sampling: Sampling) -> AsyncIterator[str]:
        """The answer's tokens: from the backend, and (resilient) from the fallback when it fails."""
        so_far = ""
        if time.monotonic() >= self.local_until or self.fallback_model is None:
            try:
                async for token in stream_tokens(self.client, self.cfg.backend_url, prompt, sampling,
                                                 self.cfg.first_token_timeout, self.cfg.token_timeout):
                    so_far += token
                    yield token
                return
            except UpstreamFailure as exc:
                if self.fallback_model is None:
                    raise
                self.metrics.fallbacks.labels(exc.kind).inc()
                self.local_until = time.monotonic() + self.cfg.breaker_reset
        else:
            self.metrics.fallbacks.labels("breaker_open").inc()
        rest = Prompt(prompt.system, prompt.user, prompt.answer_so_far + so_far)
        left = Sampling(sampling.max_tokens - len(so_far), sampling.temperature, sampling.seed)
        async for token in generate(self.fallback_model, rest, left, self.cfg.token_interval):
            yield token

    def prompt_of(self, req: ApiRequest) -> Prompt:
        system = self.cfg.system_prompt + (f"\n{req.system}" if req.system else "")
        return Prompt(system, req.user)

    async def answer(self, request: Request, chat: bool) -> Response:
        endpoint = "chat" if chat else "completions"
        started = time.monotonic()
        try:
            req = parse(await request.body(), chat)
            prompt = self.prompt_of(req)
            prompt_tokens = len(prompt.tokens())
            room = self.cfg.context_limit - prompt_tokens  # what is left of the context for the answer
            max_tokens = req.max_tokens or max(1, min(self.cfg.default_max_tokens, room))
            if max_tokens > room:
                raise BadRequest(f"this model's context is {self.cfg.context_limit} tokens; the request needs "
                                 f"{prompt_tokens} for the prompt and {max_tokens} for the answer",
                                 code="context_length_exceeded", param="messages" if chat else "prompt")
        except BadRequest as exc:
            self.metrics.requests.labels(endpoint, "400").inc()
            return JSONResponse(exc.body(), status_code=exc.status)
        sampling = Sampling(max_tokens, req.temperature, req.seed)
        self.metrics.tokens.labels("prompt").inc(prompt_tokens)
        refused = self.cfg.guardrail and guardrail.flags_input(f"{req.system}\n{req.user}")
        if refused:
            self.metrics.guardrail_blocks.labels("input").inc()
            source = refusal_tokens()
        else:
            try:
                await self.admission.enter()
            except QueueFull:
                self.metrics.shed.inc()
                self.metrics.requests.labels(endpoint, "429").inc()
                return JSONResponse({"error": {"message": "the queue is full; retry later", "type": "rate_limit_error",
                                               "code": "queue_full", "param": None}},
                                    status_code=429, headers={"Retry-After": "1"})
            source = self.guarded(self.tokens(prompt, sampling))
        answer = Answer(chat)
        count = [0]
        pieces = self.counted(source, count)
        try:  # the first piece before the headers: an unreachable backend is a 502, not a cut stream
            first = await anext(pieces, None)
        except UpstreamFailure as exc:
            await pieces.aclose()
            self.metrics.requests.labels(endpoint, "502").inc()
            return JSONResponse({"error": {"message": str(exc), "type": "server_error", "code": exc.kind,
                                           "param": None}}, status_code=502)
        self.metrics.ttft.observe(time.monotonic() - started)
        finish = "content_filter" if refused else None

        def finish_reason() -> str:
            return finish or ("length" if count[0] >= max_tokens else "stop")

        if not req.stream:
            text = (first or "") + "".join([p async for p in pieces])
            self.metrics.requests.labels(endpoint, "200").inc()
            self.metrics.tokens.labels("completion").inc(count[0])
            return JSONResponse(answer.whole(text, finish_reason(), usage(prompt_tokens, count[0])))

        async def events() -> AsyncIterator[bytes]:
            code = "200"
            try:
                if first is not None:
                    yield answer.chunk(first)
                async for piece in pieces:
                    yield answer.chunk(piece)
                yield answer.chunk(None, finish_reason())
                if req.include_usage:
                    yield answer.usage_chunk(usage(prompt_tokens, count[0]))
                yield DONE
            except UpstreamFailure:
                code = "502-mid-stream"  # the fragile gateway cuts the stream: the client sees it end
                raise
            finally:
                await pieces.aclose()
                self.metrics.requests.labels(endpoint, code).inc()
                self.metrics.tokens.labels("completion").inc(count[0])

        return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    async def counted(self, source: AsyncIterator[tuple[int, str]], count: list[int]) -> AsyncIterator[str]:
        """Pieces to send, one SSE event each; ``count`` is the model tokens behind them."""
        try:
            async for used, piece in source:
                count[0] += used
                if piece:
                    yield piece
        finally:
            await source.aclose()  # type: ignore[attr-defined]  # an async generator

    async def guarded(self, tokens: AsyncIterator[str]) -> AsyncIterator[tuple[int, str]]:
        """The model's tokens through the output filter, with the admission slot released at the end."""
        redactor = guardrail.Redactor(self.cfg.canary) if self.cfg.guardrail else None
        try:
            async for token in tokens:
                if redactor is None:
                    yield 1, token
                    continue
                released = redactor.feed(token)
                if released == guardrail.REDACTED:
                    self.metrics.guardrail_blocks.labels("output").inc()
                    yield 1, released
                    continue
                yield 1, released[:1]
                for ch in released[1:]:  # text held back and released now: still one event per character
                    yield 0, ch
            if redactor is not None:
                for ch in redactor.flush():
                    yield 0, ch
        finally:
            await tokens.aclose()  # type: ignore[attr-defined]  # an async generator
            self.admission.leave()


async def refusal_tokens() -> AsyncIterator[tuple[int, str]]:
    for ch in guardrail.REFUSAL:
        yield 1, ch


def create_app(cfg: GatewayConfig, fallback_model: TinyLM | None) -> Starlette:
    gw = Gateway(cfg, fallback_model)

    async def chat(request: Request) -> Response:
        return await gw.answer(request, chat=True)

    async def completions(request: Request) -> Response:
        return await gw.answer(request, chat=False)

    async def models(request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [{"id": MODEL_ID, "object": "model", "created": 0,
                                                         "owned_by": "aftershock"}]})

    async def health(request: Request) -> Response:
        return JSONResponse({"status": "ok", "model": MODEL_ID})

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(gw.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def status(request: Request) -> Response:
        body: dict[str, Any] = {"mode": cfg.mode, "config": cfg.describe(), "queue_depth": gw.admission.waiting,
                                "fallback_alone": time.monotonic() < gw.local_until}
        return JSONResponse(body)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await gw.client.aclose()

    return Starlette(lifespan=lifespan, routes=[
        Route("/v1/chat/completions", chat, methods=["POST"]),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/models", models), Route("/health", health), Route("/metrics", metrics), Route("/status", status),
    ])


def run(cfg: GatewayConfig, host: str, port: int) -> int:
    fallback = None
    if cfg.fallback:
        import torch

        from harness.demo.llm.weights import load_or_train

        torch.set_num_threads(1)
        fallback, _ = load_or_train(cfg.state_dir, cfg.canary)
    print(f"llm gateway: {cfg.describe()}, backend {cfg.backend_url}, serving on http://{host}:{port}",
          file=sys.stderr, flush=True)
    server = uvicorn.Server(uvicorn.Config(create_app(cfg, fallback), host=host, port=port, log_level="warning",
                                           access_log=False, timeout_graceful_shutdown=1, lifespan="on"))
    for sig in (signal.SIGTERM, signal.SIGINT):  # uvicorn re-raises them after its shutdown: exit 0
        signal.signal(sig, lambda signum, frame: None)
    server.run()
    return 0 if server.started else 1
