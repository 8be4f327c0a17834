"""One proxy: a listener, its open connections, and its toxics."""

from __future__ import annotations

import asyncio
import errno
import os
import random
import socket
from collections.abc import Iterable
from typing import Any

from faults.proxy.connection import Connection, Side
from faults.proxy.errors import ApiError
from faults.proxy.link import DirectionStats, Link
from faults.proxy.toxic_collection import STREAMS, ToxicCollection


def split_host_port(address: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` → (host, port); ValueError with Go's wording otherwise."""
    host, sep, port = address.rpartition(":")
    if not sep:
        raise ValueError(f"address {address}: missing port in address")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"address {address}: invalid port") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"address {address}: invalid port")
    return host, number


def join_host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str, seed: int | None) -> None:
        self.name = name
        self.listen = listen or "127.0.0.1:0"
        self.requested_listen = self.listen
        self.upstream = upstream
        self.enabled = False
        self.toxics = ToxicCollection(self._links)
        self.connections: set[Connection] = set()
        self.stats = {s: DirectionStats() for s in STREAMS}
        self.connections_total = 0
        self._seed = seed
        self._unseeded = random.Random()
        self._server: asyncio.Server | None = None

    # --- listener ---
    async def start(self) -> None:
        """Listen; on failure raise ApiError 500 with the OS's message, as Toxiproxy does."""
        if self.enabled:
            return
        try:
            host, port = split_host_port(self.listen)
        except ValueError as exc:
            raise ApiError(f"listen tcp {exc}", 500) from None
        loop = asyncio.get_running_loop()
        try:
            # one address only: "localhost" must not become two listeners on two ports
            infos = await loop.getaddrinfo(host or "127.0.0.1", port, type=socket.SOCK_STREAM)
            self._server = await loop.create_server(
                lambda: Side(on_made=self._accepted),
                infos[0][4][0],
                port,
                reuse_address=True,
                backlog=1024,
            )
        except OSError as exc:
            known = exc.errno is not None and exc.errno in errno.errorcode
            reason = os.strerror(exc.errno).lower() if known else str(exc)
            raise ApiError(f"listen tcp {self.listen}: bind: {reason}", 500) from None
        bound = self._server.sockets[0].getsockname()
        self.listen = join_host_port(bound[0], bound[1])
        self.enabled = True

    def stop(self) -> None:
        """Close the listener (new connections are refused) and every open connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        self.enabled = False
        for conn in list(self.connections):
            conn.abort()

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        if listen != self.listen or upstream != self.upstream:
            self.stop()
            self.listen = self.requested_listen = listen
            self.upstream = upstream
        if enabled and not self.enabled:
            await self.start()
        elif not enabled and self.enabled:
            self.stop()

    # --- connections ---
    def _accepted(self, client: Side) -> None:
        self.connections_total += 1
        conn = Connection(self, client, self.connections_total)
        self.connections.add(conn)
        conn.start()

    def connection_closed(self, conn: Connection) -> None:
        self.connections.discard(conn)

    def upstream_address(self) -> tuple[str, int]:
        return split_host_port(self.upstream)

    def link_rng(self, seq: int, direction: str) -> random.Random:
        """Per-link randomness; with a server seed, the same run rolls the same numbers."""
        if self._seed is None:
            return self._unseeded  # seeding a Random per link costs more than the rest of a connect
        return random.Random(f"{self._seed}/{self.name}/{seq}/{direction}")

    def _links(self, direction: str) -> Iterable[Link]:
        return [c.links[direction] for c in list(self.connections) if direction in c.links]

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics.to_json(),
            "stats": {
                "connections_total": self.connections_total,
                "connections_active": len(self.connections),
                "upstream": self.stats["upstream"].to_json(),
                "downstream": self.stats["downstream"].to_json(),
            },
        }
