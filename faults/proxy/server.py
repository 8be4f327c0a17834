"""Run the proxy's REST API: in the foreground (`aftershock proxy`) or for EmbeddedProxy."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from faults.proxy.address_policy import AddressPolicy
from faults.proxy.api import Api
from faults.proxy.api_http import ApiHttpServer
from faults.proxy.collection import ProxyCollection, ProxySpec
from faults.proxy.errors import ApiError
from faults.proxy.proxy import join_host_port, split_host_port
from harness.core.errors import UserError


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed (a cheap speed-up), else asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class ProxyServer:
    """All proxies on the caller's event loop; their API served from its own thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 8474, seed: int | None = None,
                 policy: AddressPolicy | None = None) -> None:
        self.host = host
        self.port = port
        self.proxies = ProxyCollection(seed, policy)
        self._http: ApiHttpServer | None = None

    @property
    def api_url(self) -> str:
        return f"http://{join_host_port(self.host, self.port)}"

    async def open(self) -> None:
        """Listen for API requests; returns once the API answers. Raises OSError if it can't bind."""
        self._http = ApiHttpServer(self.host, self.port, Api(self.proxies), asyncio.get_running_loop())
        self.port = self._http.port
        self._http.start()

    async def close(self) -> None:
        """Stop the API, then close every proxy listener and connection."""
        if self._http is not None:
            await asyncio.to_thread(self._http.stop)  # the loop keeps running requests in flight
            self._http = None
        self.proxies.close_all()


def load_config(path: str) -> list[Any]:
    """A proxies file (a JSON list, like POST /populate), checked with clear errors."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise UserError(f"{path}: cannot read the proxies file: {exc.strerror or exc}") from None
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}:{exc.colno}: invalid JSON: {exc.msg}") from None
    if not isinstance(entries, list):
        raise UserError(
            f'{path}: expected a JSON list of proxies like [{{"name": "db", '
            f'"listen": "127.0.0.1:26379", "upstream": "127.0.0.1:6379"}}], '
            f"got a JSON {type(entries).__name__}"
        )
    for i, entry in enumerate(entries):
        try:
            spec = ProxySpec.parse(entry, f" at proxy {i + 1}")
            split_host_port(spec.upstream)
            split_host_port(spec.listen)
        except ApiError as err:
            raise UserError(f"{path}: {err.message}") from None
        except ValueError as exc:
            raise UserError(f"{path}: proxy {i + 1} ({spec.name}): {exc}") from None
    return entries


async def _serve_until_signal(
    host: str, port: int, entries: list[Any] | None, seed: int | None, config: str | None,
    policy: AddressPolicy,
) -> None:
    server = ProxyServer(host, port, seed, policy)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    try:
        if entries:
            try:
                applied, err = await server.proxies.populate(entries)
            except ApiError as bad:
                raise UserError(f"{config}: {bad.message}") from None
            if err is not None:
                raise UserError(f"{config}: {err.message}")
            for proxy in applied:
                print(f"proxy {proxy.name}: {proxy.listen} -> {proxy.upstream}", file=sys.stderr)
        try:
            await server.open()
        except OSError as exc:
            raise UserError(
                f"cannot serve the proxy API on {join_host_port(host, port)}: "
                f"{exc.strerror or exc}; pick another --host/--port"
            ) from None
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        print(
            f"aftershock proxy: Toxiproxy API on {server.api_url} (Ctrl-C to stop)",
            file=sys.stderr,
            flush=True,
        )
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await server.close()


def serve(host: str, port: int, config: str | None, seed: int | None,
          policy: AddressPolicy | None = None) -> None:
    """Run the API in the foreground until SIGINT/SIGTERM, like toxiproxy-server.

    `config` is a JSON list of proxies (as for POST /populate); a bad file raises UserError.
    `policy` says which listen/upstream addresses are accepted (loopback only by default);
    the API's own address passes the same check.
    """
    policy = policy or AddressPolicy()
    try:
        policy.check_listen(join_host_port(host, port))
    except ApiError as err:
        raise UserError(f"--host/--port: {err.message}") from None
    entries = load_config(config) if config else None
    # The API thread needs the GIL a few times per request; under a bulk transfer the loop's
    # thread holds it and only yields every switch interval (5 ms by default), which made an
    # API answer take 15-20 ms. This process is only the proxy, so a shorter interval is free.
    sys.setswitchinterval(0.0005)
    loop = new_event_loop()
    try:
        loop.run_until_complete(_serve_until_signal(host, port, entries, seed, config, policy))
    finally:
        loop.close()
