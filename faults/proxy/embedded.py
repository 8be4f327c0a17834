"""The proxy server in a background thread with its own event loop (used by the runner)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable
from typing import Self

from faults.proxy.address_policy import AddressPolicy
from faults.proxy.server import ProxyServer, new_event_loop


class EmbeddedProxy:
    """A Toxiproxy-compatible server inside this process.

    >>> proxy = EmbeddedProxy(port=0)   # 0: pick a free port
    >>> proxy.start(); url = proxy.api_url; proxy.stop()
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, seed: int | None = None,
                 allowed_hosts: Iterable[str] = ()) -> None:
        """`allowed_hosts`: non-loopback upstreams the run may relay to (its safety.allowed_hosts)."""
        self._server = ProxyServer(host, port, seed, AddressPolicy.of(allowed_hosts))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def api_url(self) -> str:
        return self._server.api_url

    def start(self) -> None:
        """Start serving; returns once the API is listening. Raises OSError if it cannot bind."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="aftershock-proxy", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._error is not None:
            self._thread.join()
            self._thread = None
            raise self._error

    def stop(self) -> None:
        """Close the API, every listener and every connection. Idempotent."""
        thread, loop, stop = self._thread, self._loop, self._stop
        if thread is None or loop is None or stop is None:
            return
        if not loop.is_closed():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=15)
        self._thread = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._main())
        except BaseException as exc:  # noqa: BLE001 - handed to start(), which raises it
            self._error = exc
        finally:
            self._ready.set()
            loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        await self._server.open()
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self._server.close()
