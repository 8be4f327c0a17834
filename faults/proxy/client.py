"""A small typed client for the Toxiproxy HTTP API, used by the harness.

It talks to the embedded proxy and to a real Toxiproxy server alike (see
shared/toxiproxy-api.md). Every request has a timeout, never goes through an HTTP proxy
from the environment (the address was checked by the safety boundary; a detour would
bypass it), and a failure becomes a `ToxiproxyError` subclass that says what and where.
There is no update verb in older Toxiproxy servers: the POST form serves both.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from harness.core.safety import check_host_allowed


class ToxiproxyError(Exception):
    """A Toxiproxy request failed; the message says what and where."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ToxiproxyUnreachable(ToxiproxyError):
    """No answer from the server (refused, timed out, not running)."""


class ToxiproxyNotFound(ToxiproxyError):
    """404: no such proxy or toxic."""


class ToxiproxyConflict(ToxiproxyError):
    """409: a proxy or toxic of that name already exists."""


class ToxiproxyBadRequest(ToxiproxyError):
    """400: the server refused the body (unknown toxic type, bad attribute...)."""


ERROR_BY_STATUS: dict[int, type[ToxiproxyError]] = {
    400: ToxiproxyBadRequest, 404: ToxiproxyNotFound, 409: ToxiproxyConflict,
}


@dataclass(frozen=True)
class Toxic:
    """One toxic on a proxy, as the server lists it."""

    name: str
    type: str
    stream: str
    toxicity: float
    attributes: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Toxic:
        return cls(name=data["name"], type=data["type"], stream=data.get("stream", "downstream"),
                   toxicity=float(data.get("toxicity", 1.0)), attributes=data.get("attributes") or {})


@dataclass(frozen=True)
class Proxy:
    """One proxy, as the server lists it; `listen` is the address it really bound."""

    name: str
    listen: str
    upstream: str
    enabled: bool
    toxics: list[Toxic] = field(default_factory=list)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Proxy:
        return cls(name=data["name"], listen=data["listen"], upstream=data["upstream"],
                   enabled=bool(data.get("enabled", True)),
                   toxics=[Toxic.from_json(t) for t in data.get("toxics") or []])


def server_message(response: httpx.Response) -> str:
    """The server's `{"error": ...}` text, or its raw body."""
    try:
        return str(response.json()["error"])
    except (ValueError, KeyError, TypeError):
        return response.text.strip()


def path(*names: str) -> str:
    """`/a/b` with each name percent-quoted (a name may hold `/`)."""
    return "".join("/" + quote(n, safe="") for n in names)


class ToxiproxyClient:
    def __init__(self, url: str = "http://127.0.0.1:8474", timeout: float = 5.0,
                 allowed_hosts: Iterable[str] = ()) -> None:
        """A client for the API at `url`, which must pass the safety check (loopback or allowed)."""
        check_host_allowed(url, allowed_hosts, "toxiproxy url")
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if not parts.hostname or not parts.port:
            raise ValueError(
                f"Toxiproxy URL {url!r} needs a host and a port, e.g. http://127.0.0.1:8474"
            )
        self.url = url.rstrip("/")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.base = f"{parts.scheme}://{host}:{parts.port}"
        self.timeout = timeout

    def request(self, method: str, api_path: str, body: Any = None) -> httpx.Response:
        """The one place requests are made: a fresh connection, a timeout, typed errors."""
        where = f"{method} {self.url}{api_path}"
        try:
            # trust_env=False: straight to the checked address, never via HTTP_PROXY from the environment
            response = httpx.request(method, self.base + api_path, json=body, timeout=self.timeout,
                                     trust_env=False)
        except httpx.TimeoutException:
            raise ToxiproxyUnreachable(
                f"{where}: no answer within {self.timeout:g}s; is the Toxiproxy server stuck?"
            ) from None
        except httpx.TransportError:
            raise ToxiproxyUnreachable(
                f"{where}: cannot connect; is a Toxiproxy server running at {self.url}?"
            ) from None
        if response.status_code >= 400:
            error = ERROR_BY_STATUS.get(response.status_code, ToxiproxyError)
            raise error(f"{where}: {server_message(response)}", response.status_code)
        return response

    def json(self, method: str, api_path: str, body: Any = None) -> Any:
        response = self.request(method, api_path, body)
        try:
            return response.json()
        except ValueError:
            raise ToxiproxyError(
                f"{method} {self.url}{api_path}: the answer is not JSON: {response.text[:200]!r}"
            ) from None

    # --- server ---
    def version(self) -> str:
        response = self.request("GET", "/version")
        try:
            return str(response.json()["version"])
        except (ValueError, KeyError, TypeError):
            return response.text.strip()  # Toxiproxy before 2.4 answered plain text

    def running(self) -> bool:
        try:
            self.version()
        except ToxiproxyError:
            return False
        return True

    def reset(self) -> None:
        self.request("POST", "/reset")

    # --- proxies ---
    def proxies(self) -> dict[str, Proxy]:
        return {name: Proxy.from_json(p) for name, p in self.json("GET", "/proxies").items()}

    def get_proxy(self, name: str) -> Proxy:
        return Proxy.from_json(self.json("GET", "/proxies" + path(name)))

    def create_proxy(
        self,
        name: str,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        toxics: list[dict[str, Any]] | None = None,
    ) -> Proxy:
        """Create a proxy; with `toxics`, atomically on the embedded server (a real
        Toxiproxy ignores the field, so they are then added one by one)."""
        body: dict[str, Any] = {
            "name": name,
            "upstream": upstream,
            "listen": listen,
            "enabled": enabled,
        }
        if toxics:
            body["toxics"] = toxics
        proxy = Proxy.from_json(self.json("POST", "/proxies", body))
        if toxics and len(proxy.toxics) < len(toxics):
            for toxic in toxics:
                self.request("POST", "/proxies" + path(name, "toxics"), toxic)
            proxy = self.get_proxy(name)
        return proxy

    def delete_proxy(self, name: str, missing_ok: bool = True) -> bool:
        try:
            self.request("DELETE", "/proxies" + path(name))
        except ToxiproxyNotFound:
            if not missing_ok:
                raise
            return False
        return True

    def set_enabled(self, name: str, enabled: bool) -> Proxy:
        return Proxy.from_json(self.json("POST", "/proxies" + path(name), {"enabled": enabled}))

    # --- toxics ---
    def toxics(self, proxy: str) -> list[Toxic]:
        return [Toxic.from_json(t) for t in self.json("GET", "/proxies" + path(proxy, "toxics"))]

    def add_toxic(
        self,
        proxy: str,
        type: str,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> Toxic:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        return Toxic.from_json(self.json("POST", "/proxies" + path(proxy, "toxics"), body))

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> Toxic:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return Toxic.from_json(self.json("POST", "/proxies" + path(proxy, "toxics", name), body))

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = True) -> bool:
        """Remove a toxic; a missing toxic (or proxy) is fine unless missing_ok is False."""
        try:
            self.request("DELETE", "/proxies" + path(proxy, "toxics", name))
        except ToxiproxyNotFound:
            if not missing_ok:
                raise
            return False
        return True
