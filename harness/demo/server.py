"""The model server's HTTP face: OIP v2, KServe v1, training endpoints, /metrics.

GET  /v2/health/live | /v2/health/ready | /v2 | /v2/models/{m} | /v2/models/{m}/ready
POST /v2/models/{m}/infer            OIP v2 inference
POST /v1/models/{m}:predict          KServe v1 inference
POST /v2/models/{m}/ingest           labelled rows for training (validated); rows with an
                                     event_id are events (harness/demo/event_log.py)
GET  /v2/models/{m}/events           the events stored: rows, ids and times, refusals, lag
POST /v2/models/{m}/retrain          start a retrain; GET it for its status
GET  /metrics | /status
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.requests import ClientDisconnect

from harness.demo.artifacts import ArtifactLoadFailed, ArtifactRefused
from harness.demo.config import ServerConfig
from harness.demo.event_log import EventLog, EventPolicy
from harness.demo.feature_client import UnknownEntities
from harness.demo.protocol import (
    INPUTS,
    OUTPUTS,
    InvalidRequest,
    decode_v1,
    decode_v2,
    encode_v2,
    validate_training_row,
)
from harness.demo.query_guard import QueryRefused
from harness.demo.service import ModelService, ServiceUnavailable, log
from harness.demo.timed_http import IDLE_TIMEOUT, REQUEST_TIMEOUT
from harness.demo.timed_uvicorn import TimedH11Protocol
from harness.demo.versions import Degradation, VersionCrashed

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
ASGIApp = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]
MAX_INGEST_ROWS = 10_000


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def endpoint_of(path: str) -> str:
    """A small, fixed set of labels for the metrics (paths hold model names)."""
    if path.endswith("/infer"):
        return "infer"
    if path.endswith(":predict"):
        return "predict"
    for name in ("health", "ingest", "retrain", "metrics", "status"):
        if name in path:
            return name
    return "other"


class InferenceGate:
    """ASGI middleware: load shedding (429 over ``max_inflight``) and request metrics."""

    def __init__(self, app: ASGIApp, service: ModelService) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        endpoint = endpoint_of(scope["path"])
        metrics = self.service.metrics
        inference = endpoint in ("infer", "predict")
        limit = self.service.config.max_inflight
        if inference and limit and self.service.inflight >= limit:
            metrics.shed.inc()
            metrics.requests.labels(endpoint, "429").inc()
            response = error(
                429,
                f"overloaded: {self.service.inflight} requests in flight (limit {limit})",
                headers={"Retry-After": "1"},
            )
            await response(scope, receive, send)
            return
        status = {"code": 500}

        async def send_and_note(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        started = time.perf_counter()
        if inference:
            self.service.inflight += 1
            metrics.inflight.inc()
        try:
            if inference:
                # Yield once: a request answered from the cache never awaits, so requests
                # that arrive together would run one after another and none would see the
                # others in flight; admitted together, they are counted together.
                await asyncio.sleep(0)
            await self.app(scope, receive, send_and_note)
        finally:
            if inference:
                self.service.inflight -= 1
                metrics.inflight.dec()
            metrics.requests.labels(endpoint, str(status["code"])).inc()
            metrics.latency.labels(endpoint).observe(time.perf_counter() - started)


class PayloadTooLarge(Exception):
    """The request body is over the server's limit (413)."""


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to be over ``limit`` bytes."""
    declared = request.headers.get("content-length", "")
    too_large = PayloadTooLarge(
        f"the request body is over the {limit}-byte limit (--max-body-bytes); send smaller batches"
    )
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def read_json(request: Request, limit: int) -> Any:
    """A UTF-8 JSON body; every way it can be malformed is an InvalidRequest (400)."""
    raw = await read_body(request, limit)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the body is not UTF-8 ({exc.reason} at byte {exc.start}); send UTF-8 JSON"
        ) from exc
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidRequest("the body's JSON is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError, and integers too long to parse
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from exc


def create_app(config: ServerConfig) -> FastAPI:
    service = ModelService(config)
    name = config.model_name
    events = EventLog(EventPolicy.for_mode(config.mode))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await service.start()
        yield
        await service.stop()

    app = FastAPI(title="aftershock demo model server", lifespan=lifespan)
    app.state.service = service

    @app.exception_handler(InvalidRequest)
    async def invalid(request: Request, exc: InvalidRequest) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(PayloadTooLarge)
    async def too_large(request: Request, exc: PayloadTooLarge) -> JSONResponse:
        return error(413, str(exc))

    @app.exception_handler(UnknownEntities)
    async def unknown(request: Request, exc: UnknownEntities) -> JSONResponse:
        return error(400, str(exc))

    @app.exception_handler(QueryRefused)
    async def refused(request: Request, exc: QueryRefused) -> JSONResponse:
        return error(403, str(exc))

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(request: Request, exc: ServiceUnavailable) -> JSONResponse:
        return error(503, str(exc))

    @app.exception_handler(VersionCrashed)
    async def crashed(request: Request, exc: VersionCrashed) -> JSONResponse:
        return JSONResponse({"error": str(exc), "model_version": exc.version}, status_code=500)

    @app.exception_handler(ClientDisconnect)
    async def disconnected(request: Request, exc: ClientDisconnect) -> Response:
        return Response(status_code=499)  # nobody reads it: the client (or a timeout) left

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        log(f"internal error on {request.url.path}: {exc!r}")
        return error(500, f"internal error: {type(exc).__name__}")

    def check_model(model: str) -> JSONResponse | None:
        if model != name:
            return error(404, f"unknown model {model!r}; this server serves {name!r}")
        return None

    @app.get("/v2/health/live")
    async def live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready() -> Response:
        return JSONResponse({"ready": service.ready}, status_code=200 if service.ready else 503)

    @app.get("/v2")
    async def server_metadata() -> dict[str, Any]:
        return {"name": "aftershock-demo", "version": "0.1.0", "extensions": []}

    @app.get("/v2/models/{model}")
    async def model_metadata(model: str) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        return JSONResponse(
            {
                "name": name,
                "versions": [str(service.version)],
                "platform": "pytorch",
                "inputs": [{"name": n, "datatype": t, "shape": s} for n, (t, s) in INPUTS.items()],
                "outputs": [
                    {"name": n, "datatype": t, "shape": s} for n, (t, s) in OUTPUTS.items()
                ],
            }
        )

    @app.get("/v2/models/{model}/ready")
    async def model_ready(model: str) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        return JSONResponse(
            {"name": name, "ready": service.ready}, status_code=200 if service.ready else 503
        )

    @app.post("/v2/models/{model}/infer")
    async def infer(model: str, request: Request) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        features, entity_id, request_id, outputs = decode_v2(
            await read_json(request, config.max_body_bytes)
        )
        prediction = await service.predict(features, entity_id)
        parameters: dict[str, Any] = {"fallback": prediction.fallback_reason is not None}
        if prediction.fallback_reason:
            parameters["fallback_reason"] = prediction.fallback_reason
        return JSONResponse(
            encode_v2(
                name,
                prediction.version,
                request_id or str(uuid.uuid4()),
                prediction.labels,
                prediction.probabilities,
                parameters,
                outputs,
            )
        )

    @app.get("/v1/models")
    async def v1_models() -> Response:  # KServe's model list: what `aftershock probe-target` asks first
        return JSONResponse({"models": [name]})

    @app.get("/v1/models/{model}")
    async def v1_model(model: str) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        return JSONResponse({"name": name, "ready": service.ready})

    @app.post("/v1/models/{model}:predict")
    async def predict(model: str, request: Request) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        features, entity_id = decode_v1(await read_json(request, config.max_body_bytes))
        prediction = await service.predict(features, entity_id)
        return JSONResponse(
            {
                "predictions": prediction.labels.astype(int).tolist(),
                "probabilities": [
                    [round(float(p), 6) for p in row] for row in prediction.probabilities
                ],
                "fallback": prediction.fallback_reason is not None,
                "fallback_reason": prediction.fallback_reason,
                "model_name": name,
                "model_version": prediction.version,
            }
        )

    @app.post("/v2/models/{model}/ingest")
    async def ingest(model: str, request: Request) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        body = await read_json(request, config.max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("rows"), list):
            raise InvalidRequest(
                'the body must be {"rows": [{"features": [...], "entity_id": n, '
                '"label": 0|1}, ...]}'
            )
        if len(body["rows"]) > MAX_INGEST_ROWS:
            raise InvalidRequest(f"at most {MAX_INGEST_ROWS} rows per request")
        return JSONResponse(events.ingest(body["rows"], lambda rows: service.ingest(rows, validate_training_row)))

    @app.get("/v2/models/{model}/events")
    async def stored_events(model: str, after: int = 0) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        return JSONResponse(events.listing(after))

    @app.post("/v2/models/{model}/retrain")
    async def retrain(model: str) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        if not service.ready:
            return error(503, "the model is still loading; retry when /v2/health/ready is 200")
        if not service.start_retrain():
            return error(409, "a retrain is already running; GET this URL for its status")
        return JSONResponse(service.retrain_status, status_code=202)

    @app.get("/v2/models/{model}/retrain")
    async def retrain_status(model: str) -> Response:
        if (bad := check_model(model)) is not None:
            return bad
        return JSONResponse(service.retrain_status)

    @app.post("/admin/deploy")
    async def deploy(request: Request) -> Response:
        body = await read_json(request, config.max_body_bytes)
        if not isinstance(body, dict) or not isinstance(body.get("version"), (str, int)) or body["version"] == "":
            raise InvalidRequest('the body must be {"version": "v2", "share": 0.1, "degrade": {...}, "artifact": path}')
        share = body.get("share", 1.0)
        if type(share) not in (int, float) or not 0.0 < share <= 1.0:
            raise InvalidRequest("'share' must be a number in (0, 1]: the canary's share of requests")
        artifact = body.get("artifact")
        if artifact is not None and not isinstance(artifact, str):
            raise InvalidRequest("'artifact' must be a path")
        if not service.ready:
            return error(503, "the model is still loading; deploy when /v2/health/ready is 200")
        try:
            described = await service.deploy(str(body["version"]), float(share),
                                              Degradation.from_json(body.get("degrade")), artifact)
        except ArtifactRefused as exc:
            return JSONResponse({"error": f"artifact refused, nothing deployed: {exc}", "reason": exc.reason,
                                 **service.versions()}, status_code=422)
        except ArtifactLoadFailed as exc:  # fragile mode: what it found did not load
            return error(500, f"artifact did not load, nothing deployed: {exc}")
        return JSONResponse(described)

    @app.post("/admin/rollback")
    async def rollback() -> Response:
        label = service.rollback("admin rollback") if service.ready else None
        return JSONResponse({"rolled_back": label, **service.versions()})

    @app.get("/admin/versions")
    async def versions() -> Response:
        return JSONResponse(service.versions())

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/status")
    async def status() -> dict[str, Any]:
        return service.status()

    app.add_middleware(InferenceGate, service=service)
    return app


def run(
    config: ServerConfig,
    host: str,
    port: int,
    idle_timeout: float = IDLE_TIMEOUT,
    request_timeout: float = REQUEST_TIMEOUT,
) -> int:
    """Serve until SIGTERM/SIGINT (uvicorn handles both); returns the exit code."""
    import torch

    torch.set_num_threads(1)  # tiny models: threads only add contention on small boxes
    app = create_app(config)
    log(f"serving {config.model_name!r} on http://{host}:{port} with {config.describe()}")
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            http=type("DemoH11Protocol", (TimedH11Protocol,), {"request_timeout": request_timeout}),
            timeout_keep_alive=idle_timeout,  # type: ignore[arg-type]  # a float works
            timeout_graceful_shutdown=2,
            lifespan="on",
        )
    )
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal to
    # whatever handler was there before it. Ignoring it here makes the exit code 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: None)
    server.run()
    return 0 if server.started else 1
