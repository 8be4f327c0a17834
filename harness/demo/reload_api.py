"""``POST /admin/reload {"version": "v2", "artifact": "DIR"}``: serve a model version from
an artifact (see artifacts.py for what each mode checks).

200 ``{"model_version", "previous_version", "verified"}`` when the version serves;
422 ``{"error", "reason", "model_version"}`` when resilient mode refuses the artifact (it
keeps serving ``model_version``); 500 when fragile mode could not load what it found (it
serves nothing until a good version is loaded); 400 for a malformed body.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from harness.demo.artifacts import ArtifactLoader, ArtifactLoadFailed, ArtifactRefused
from harness.demo.protocol import InvalidRequest
from harness.demo.service import ModelService, log


def reload_request(body: Any) -> tuple[str, Path]:
    """(version, artifact path) from the request body; InvalidRequest (400) otherwise."""
    if not isinstance(body, dict):
        raise InvalidRequest('the body must be {"version": "v2", "artifact": "/path/to/artifact"}')
    version, artifact = body.get("version"), body.get("artifact")
    if not isinstance(version, str) or not version:
        raise InvalidRequest('"version" must be a non-empty string, e.g. "v2"')
    if not isinstance(artifact, str) or not artifact:
        raise InvalidRequest('"artifact" must be the path of an artifact folder (or its model.pt)')
    return version, Path(artifact)


async def reload_version(service: ModelService, loader: ArtifactLoader, version: str,
                         artifact: Path) -> JSONResponse:
    metrics, previous = service.metrics, str(service.version)
    if not loader.verify:
        # the fragile server frees the serving model first, then loads what it finds
        service.models = None
        metrics.model_ready.set(0)
    try:
        loaded = await asyncio.to_thread(loader.load, artifact, version)
    except ArtifactRefused as exc:
        metrics.artifacts_refused.labels(exc.reason).inc()
        log(f"refused artifact {artifact} ({exc.reason}): {exc}; still serving {previous}")
        return JSONResponse({"error": str(exc), "reason": exc.reason, "model_version": previous},
                            status_code=422)
    except ArtifactLoadFailed as exc:
        log(f"could not load {artifact}: {exc}; no model is serving")
        return JSONResponse({"error": str(exc), "model_version": None}, status_code=500)
    service.models, service.version = loaded.models, version
    metrics.model_ready.set(1)
    metrics.artifacts_loaded.labels(str(loaded.verified).lower()).inc()
    log(f"serving {version} from {artifact} ({'verified' if loaded.verified else 'NOT verified'})")
    return JSONResponse({"model_version": version, "previous_version": previous,
                         "verified": loaded.verified})


def add_reload_route(app: FastAPI, service: ModelService,
                     read_json: Callable[[Request, int], Awaitable[Any]]) -> None:
    """Add the route; ``read_json`` reads a body as the server's other routes do."""
    loader = ArtifactLoader(service.config.state_dir, service.config.verify_artifacts)

    @app.post("/admin/reload")
    async def reload(request: Request) -> JSONResponse:
        version, artifact = reload_request(await read_json(request, service.config.max_body_bytes))
        return await reload_version(service, loader, version, artifact)
