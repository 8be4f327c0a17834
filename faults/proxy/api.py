"""Toxiproxy 2.x REST API over a ProxyCollection: its routes, handlers and answers.

`Api.handle` runs on the proxies' event loop, so handlers need no locking; the HTTP
front (faults/proxy/api_http.py) calls it from its own thread, so reading and parsing
requests never waits behind the data path, nor the data path behind them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from faults.proxy.collection import ProxyCollection
from faults.proxy.errors import BAD_REQUEST_BODY, ApiError

TOXIPROXY_VERSION = "2.12.0+aftershock"  # the Toxiproxy API this server follows
MAX_BODY = 1 << 20  # bytes in a request body; a proxy list of thousands fits in far less
NOSNIFF = {"X-Content-Type-Options": "nosniff"}  # on every error, as Toxiproxy's http.Error sends
TEXT = "text/plain; charset=utf-8"


@dataclass
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(data: Any, status: int = 200) -> Reply:
    # allow_nan=False: NaN/Infinity are not JSON; input checks keep them out, this keeps it so
    return Reply(status, json.dumps(data, allow_nan=False).encode(), "application/json")


def error_reply(err: ApiError, extra: dict[str, Any] | None = None) -> Reply:
    body = {**err.to_json(), **(extra or {})}
    return Reply(err.status, (json.dumps(body) + "\n").encode(), "application/json", dict(NOSNIFF))


NOT_FOUND = Reply(404, b"404 page not found\n", TEXT, NOSNIFF)
NOT_ALLOWED = Reply(405, b"", TEXT, NOSNIFF)
BROWSER_REFUSED = Reply(403, b"User agent not allowed\n", TEXT, NOSNIFF)  # CSRF guard, as Toxiproxy


def _not_json_constant(name: str) -> Any:
    raise BAD_REQUEST_BODY.joined(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise BAD_REQUEST_BODY.joined(f"number {text[:40]} is too large")
    return value


def read_json(raw: bytes) -> Any:
    """The request's JSON body; ApiError 400 for anything unbounded: too deep,
    NaN/Infinity, numbers beyond a float or with thousands of digits."""
    if not raw.strip():
        raise BAD_REQUEST_BODY.joined("EOF")
    try:
        return json.loads(raw, parse_constant=_not_json_constant, parse_float=_finite_float)
    except RecursionError:
        raise BAD_REQUEST_BODY.joined("the JSON is nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError, or an int of too many digits
        raise BAD_REQUEST_BODY.joined(str(exc)) from None


Handler = Callable[[dict[str, str], bytes], Awaitable[Reply]]


class Api:
    """Routes a request to its handler; `handle` must run on the proxies' event loop."""

    def __init__(self, proxies: ProxyCollection) -> None:
        self.proxies = proxies
        proxy, toxic = "(?P<proxy>[^/]+)", "(?P<toxic>[^/]+)"
        # each path with its handler per method; HEAD is GET without a body, as in HTTP
        table: list[tuple[str, dict[str, Handler]]] = [
            ("/reset", {"POST": self.reset}),
            ("/proxies", {"GET": self.proxy_index, "POST": self.proxy_create}),
            ("/populate", {"POST": self.populate}),
            (f"/proxies/{proxy}", {"GET": self.proxy_show, "POST": self.proxy_update,
                                   "PATCH": self.proxy_update, "DELETE": self.proxy_delete}),
            (f"/proxies/{proxy}/toxics", {"GET": self.toxic_index, "POST": self.toxic_create}),
            (f"/proxies/{proxy}/toxics/{toxic}", {"GET": self.toxic_show, "POST": self.toxic_update,
                                                   "PATCH": self.toxic_update, "DELETE": self.toxic_delete}),
            ("/version", {"GET": self.version}),
        ]
        self.routes = [(re.compile(path + "$"), methods) for path, methods in table]

    def route(self, method: str, path: str) -> tuple[Handler, dict[str, str]] | Reply:
        """The handler and path parameters for a request, or the 404/405 answer."""
        for pattern, methods in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            handler = methods.get("GET" if method == "HEAD" else method)
            return (handler, match.groupdict()) if handler is not None else NOT_ALLOWED
        return NOT_FOUND

    async def handle(self, handler: Handler, params: dict[str, str], body: bytes) -> Reply:
        try:
            return await handler(params, body)
        except ApiError as err:
            return error_reply(err)

    # --- handlers ---
    async def reset(self, params: dict[str, str], body: bytes) -> Reply:
        await self.proxies.reset()
        return Reply(204)

    async def proxy_index(self, params: dict[str, str], body: bytes) -> Reply:
        return json_reply({name: p.to_json() for name, p in self.proxies.proxies.items()})

    async def proxy_create(self, params: dict[str, str], body: bytes) -> Reply:
        proxy = await self.proxies.create(read_json(body))
        return json_reply(proxy.to_json(), 201)

    async def populate(self, params: dict[str, str], body: bytes) -> Reply:
        try:
            applied, err = await self.proxies.populate(read_json(body))
        except ApiError as refused:  # nothing was created: the error still lists what was
            return error_reply(refused, {"proxies": []})
        listed = [p.to_json() for p in applied]
        if err is not None:
            return error_reply(err, {"proxies": listed})
        return json_reply({"proxies": listed}, 201)

    async def proxy_show(self, params: dict[str, str], body: bytes) -> Reply:
        return json_reply(self.proxies.get(params["proxy"]).to_json())

    async def proxy_update(self, params: dict[str, str], body: bytes) -> Reply:
        proxy = self.proxies.get(params["proxy"])  # 404 before looking at the body, as Toxiproxy does
        proxy = await self.proxies.update(proxy.name, read_json(body))
        return json_reply(proxy.to_json())

    async def proxy_delete(self, params: dict[str, str], body: bytes) -> Reply:
        self.proxies.delete(params["proxy"])
        return Reply(204)

    async def toxic_index(self, params: dict[str, str], body: bytes) -> Reply:
        return json_reply(self.proxies.get(params["proxy"]).toxics.to_json())

    async def toxic_create(self, params: dict[str, str], body: bytes) -> Reply:
        toxics = self.proxies.get(params["proxy"]).toxics
        return json_reply(toxics.add(toxics.parse(read_json(body))).to_json())

    async def toxic_show(self, params: dict[str, str], body: bytes) -> Reply:
        return json_reply(self.proxies.get(params["proxy"]).toxics.get(params["toxic"]).to_json())

    async def toxic_update(self, params: dict[str, str], body: bytes) -> Reply:
        toxics = self.proxies.get(params["proxy"]).toxics
        toxics.get(params["toxic"])
        return json_reply(toxics.update(params["toxic"], read_json(body)).to_json())

    async def toxic_delete(self, params: dict[str, str], body: bytes) -> Reply:
        self.proxies.get(params["proxy"]).toxics.remove(params["toxic"])
        return Reply(204)

    async def version(self, params: dict[str, str], body: bytes) -> Reply:
        body_text = json.dumps({"version": TOXIPROXY_VERSION}) + "\n"
        return Reply(200, body_text.encode(), "application/json;charset=utf-8")
