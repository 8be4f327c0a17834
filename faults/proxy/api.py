"""Toxiproxy 2.x REST API over a ProxyCollection (an ASGI app, served by uvicorn).

Handlers run on the same event loop as the proxies, so no locking is needed.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faults.proxy.collection import ProxyCollection
from faults.proxy.errors import BAD_REQUEST_BODY, ApiError

TOXIPROXY_VERSION = "2.12.0+aftershock"  # the Toxiproxy API this server follows
Handler = Callable[[Request], Awaitable[Response]]


MAX_BODY = 1 << 20  # bytes in a request body; a proxy list of thousands fits in far less


def json_response(data: Any, status: int = 200) -> Response:
    # allow_nan=False: NaN/Infinity are not JSON; input checks keep them out, this keeps it so
    return Response(json.dumps(data, allow_nan=False), status_code=status, media_type="application/json")


NOSNIFF = {"X-Content-Type-Options": "nosniff"}  # on every error, as Toxiproxy's http.Error sends


def error_response(err: ApiError, extra: dict[str, Any] | None = None) -> Response:
    body = {**err.to_json(), **(extra or {})}
    return Response(json.dumps(body) + "\n", status_code=err.status, media_type="application/json",
                    headers=NOSNIFF)


def _not_json_constant(name: str) -> Any:
    raise BAD_REQUEST_BODY.joined(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BAD_REQUEST_BODY.joined(f"number {text[:40]} is too large")
    return value


async def read_json(request: Request) -> Any:
    """The request's JSON body; ApiError 400 for anything unbounded: too big, too deep,
    NaN/Infinity, numbers beyond a float or with thousands of digits."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY:
            raise BAD_REQUEST_BODY.joined(f"the body is larger than {MAX_BODY} bytes")
    if not raw.strip():
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        return json.loads(raw, parse_constant=_not_json_constant, parse_float=_finite_float)
    except RecursionError:
        raise BAD_REQUEST_BODY.joined("the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an int of too many digits
        raise BAD_REQUEST_BODY.joined(str(exc)) from None


class ToxiproxyHeaders:
    """Every response gets X-Toxiproxy-Request-Id; browsers are refused (CSRF guard)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:20].encode()

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-toxiproxy-request-id", request_id)]
            await send(message)

        user_agent = dict(scope.get("headers", [])).get(b"user-agent", b"")
        if user_agent.startswith(b"Mozilla/"):
            refused = PlainTextResponse("User agent not allowed\n", status_code=403, headers=NOSNIFF)
            await refused(scope, receive, send_with_id)
            return
        await self.app(scope, receive, send_with_id)


def build_app(proxies: ProxyCollection) -> ASGIApp:
    def api(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            try:
                return await handler(request)
            except ApiError as err:
                return error_response(err)

        return wrapped

    def proxy_of(request: Request):
        return proxies.get(request.path_params["proxy"])

    @api
    async def reset(request: Request) -> Response:
        await proxies.reset()
        return Response(status_code=204)

    @api
    async def proxy_index(request: Request) -> Response:
        return json_response({name: p.to_json() for name, p in proxies.proxies.items()})

    @api
    async def proxy_create(request: Request) -> Response:
        proxy = await proxies.create(await read_json(request))
        return json_response(proxy.to_json(), 201)

    @api
    async def populate(request: Request) -> Response:
        try:
            applied, err = await proxies.populate(await read_json(request))
        except ApiError as refused:  # nothing was created: the error still lists what was
            return error_response(refused, {"proxies": []})
        listed = [p.to_json() for p in applied]
        if err is not None:
            return error_response(err, {"proxies": listed})
        return json_response({"proxies": listed}, 201)

    @api
    async def proxy_show(request: Request) -> Response:
        return json_response(proxy_of(request).to_json())

    @api
    async def proxy_update(request: Request) -> Response:
        proxy = proxy_of(request)  # 404 before looking at the body, as Toxiproxy does
        proxy = await proxies.update(proxy.name, await read_json(request))
        return json_response(proxy.to_json())

    @api
    async def proxy_delete(request: Request) -> Response:
        proxies.delete(request.path_params["proxy"])
        return Response(status_code=204)

    @api
    async def toxic_index(request: Request) -> Response:
        return json_response(proxy_of(request).toxics.to_json())

    @api
    async def toxic_create(request: Request) -> Response:
        proxy = proxy_of(request)
        entry = proxy.toxics.parse(await read_json(request))
        return json_response(proxy.toxics.add(entry).to_json())

    @api
    async def toxic_show(request: Request) -> Response:
        toxic = proxy_of(request).toxics.get(request.path_params["toxic"])
        return json_response(toxic.to_json())

    @api
    async def toxic_update(request: Request) -> Response:
        toxics = proxy_of(request).toxics
        toxics.get(request.path_params["toxic"])
        entry = toxics.update(request.path_params["toxic"], await read_json(request))
        return json_response(entry.to_json())

    @api
    async def toxic_delete(request: Request) -> Response:
        proxy_of(request).toxics.remove(request.path_params["toxic"])
        return Response(status_code=204)

    async def version(request: Request) -> Response:
        body = json.dumps({"version": TOXIPROXY_VERSION}) + "\n"
        return Response(body, media_type="application/json;charset=utf-8")

    async def not_routed(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 404
        text = "404 page not found\n" if status == 404 else ""
        return PlainTextResponse(text, status_code=status, headers=NOSNIFF)

    routes = [
        Route("/reset", reset, methods=["POST"]),
        Route("/proxies", proxy_index, methods=["GET"]),
        Route("/proxies", proxy_create, methods=["POST"]),
        Route("/populate", populate, methods=["POST"]),
        Route("/proxies/{proxy}", proxy_show, methods=["GET"]),
        Route("/proxies/{proxy}", proxy_update, methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}", proxy_delete, methods=["DELETE"]),
        Route("/proxies/{proxy}/toxics", toxic_index, methods=["GET"]),
        Route("/proxies/{proxy}/toxics", toxic_create, methods=["POST"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_show, methods=["GET"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_update, methods=["POST", "PATCH"]),
        Route("/proxies/{proxy}/toxics/{toxic}", toxic_delete, methods=["DELETE"]),
        Route("/version", version, methods=["GET"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: not_routed, 405: not_routed})
    app.router.redirect_slashes = False  # /proxies/ is 404 in Toxiproxy, not a redirect
    return ToxiproxyHeaders(app)
