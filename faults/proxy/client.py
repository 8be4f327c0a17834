"""A small, safe wrapper over the `toxiproxy-python` client, for the harness.

It talks to the embedded proxy and to a real Toxiproxy server alike. Underneath it
uses toxiproxy-python's API layer (`toxiproxy.api.APIConsumer`) unchanged, and wraps
its weak spots: the server address lives in class-level globals (set here per call,
under a lock, and restored), requests have no timeout (each call passes one), a 5xx
turns into a KeyError further up (here it becomes a ToxiproxyError with the server's
message), and there is no update call (the deprecated POST form serves both servers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from toxiproxy.api import APIConsumer
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from harness.core.safety import check_host_allowed

_consumer_lock = threading.Lock()  # APIConsumer.host/port are process-wide
NO_PROXIES: dict[str, None] = {"http": None, "https": None}  # requests: None drops the environment's proxy


class ToxiproxyError(Exception):
    """A Toxiproxy request failed; the message says what and where."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ToxiproxyUnreachable(ToxiproxyError):
    """No answer from the server (refused, timed out, not running)."""


class ToxiproxyNotFound(ToxiproxyError):
    pass


class ToxiproxyConflict(ToxiproxyError):
    pass


class ToxiproxyBadRequest(ToxiproxyError):
    pass


def _server_message(content: Any) -> str:
    if isinstance(content, bytes):
        content = content.decode("utf-8", "replace")
    try:
        return str(json.loads(content)["error"])
    except (ValueError, KeyError, TypeError):
        return str(content).strip()


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
        self.host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self.port = parts.port
        self.timeout = timeout

    # --- the one place requests are made ---
    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        where = f"{method.upper()} {self.url}{path}"
        with _consumer_lock:
            saved = (APIConsumer.host, APIConsumer.port)
            APIConsumer.host, APIConsumer.port = self.host, self.port
            try:
                # NO_PROXIES: straight to the checked address, never via HTTP_PROXY from the environment
                if method == "get":
                    response = APIConsumer.get(path, timeout=self.timeout, proxies=NO_PROXIES)
                elif method == "post":
                    response = APIConsumer.post(path, json=body, timeout=self.timeout, proxies=NO_PROXIES)
                else:
                    response = APIConsumer.delete(path, timeout=self.timeout, proxies=NO_PROXIES)
            except ProxyExists as exc:
                raise ToxiproxyConflict(f"{where}: {_server_message(exc.args[0])}", 409) from None
            except NotFound as exc:
                raise ToxiproxyNotFound(f"{where}: {_server_message(exc.args[0])}", 404) from None
            except InvalidToxic as exc:
                raise ToxiproxyBadRequest(f"{where}: {_server_message(exc.args[0])}", 400) from None
            except requests.Timeout:
                raise ToxiproxyUnreachable(
                    f"{where}: no answer within {self.timeout:g}s; is the Toxiproxy server stuck?"
                ) from None
            except requests.ConnectionError:
                raise ToxiproxyUnreachable(
                    f"{where}: cannot connect; is a Toxiproxy server running at {self.url}?"
                ) from None
            finally:
                APIConsumer.host, APIConsumer.port = saved
        if response.status_code >= 400:
            raise ToxiproxyError(
                f"{where}: {_server_message(response.content)}", response.status_code
            )
        return response

    @staticmethod
    def _path(*names: str) -> str:
        return "".join("/" + quote(n, safe="") for n in names)

    # --- server ---
    def version(self) -> str:
        text = self._call("get", "/version").text
        try:
            return str(json.loads(text)["version"])
        except (ValueError, KeyError, TypeError):
            return text.strip()  # Toxiproxy before 2.4 answered plain text

    def running(self) -> bool:
        try:
            self.version()
        except ToxiproxyError:
            return False
        return True

    def reset(self) -> None:
        self._call("post", "/reset")

    # --- proxies ---
    def proxies(self) -> dict[str, dict[str, Any]]:
        return self._call("get", "/proxies").json()

    def get_proxy(self, name: str) -> dict[str, Any]:
        return self._call("get", "/proxies" + self._path(name)).json()

    def create_proxy(
        self,
        name: str,
        upstream: str,
        listen: str = "127.0.0.1:0",
        enabled: bool = True,
        toxics: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
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
        proxy = self._call("post", "/proxies", body).json()
        if toxics and len(proxy.get("toxics") or []) < len(toxics):
            for toxic in toxics:
                self._call("post", "/proxies" + self._path(name, "toxics"), toxic)
            proxy = self.get_proxy(name)
        return proxy

    def delete_proxy(self, name: str, missing_ok: bool = True) -> bool:
        try:
            self._call("delete", "/proxies" + self._path(name))
        except ToxiproxyNotFound:
            if not missing_ok:
                raise
            return False
        return True

    def set_enabled(self, name: str, enabled: bool) -> dict[str, Any]:
        return self._call("post", "/proxies" + self._path(name), {"enabled": enabled}).json()

    # --- toxics ---
    def toxics(self, proxy: str) -> list[dict[str, Any]]:
        return self._call("get", "/proxies" + self._path(proxy, "toxics")).json()

    def add_toxic(
        self,
        proxy: str,
        type: str,
        name: str | None = None,
        stream: str = "downstream",
        toxicity: float = 1.0,
        attributes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        body = {
            "name": name or f"{type}_{stream}",
            "type": type,
            "stream": stream,
            "toxicity": toxicity,
            "attributes": attributes or {},
        }
        return self._call("post", "/proxies" + self._path(proxy, "toxics"), body).json()

    def update_toxic(
        self,
        proxy: str,
        name: str,
        attributes: dict[str, Any] | None = None,
        toxicity: float | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if attributes is not None:
            body["attributes"] = attributes
        if toxicity is not None:
            body["toxicity"] = toxicity
        return self._call("post", "/proxies" + self._path(proxy, "toxics", name), body).json()

    def remove_toxic(self, proxy: str, name: str, missing_ok: bool = True) -> bool:
        """Remove a toxic; a missing toxic (or proxy) is fine unless missing_ok is False."""
        try:
            self._call("delete", "/proxies" + self._path(proxy, "toxics", name))
        except ToxiproxyNotFound:
            if not missing_ok:
                raise
            return False
        return True
