"""Which listen and upstream addresses a proxy server accepts: loopback only by default.

Toxiproxy itself listens and connects wherever a request says. A chaos proxy reachable
by anything that can POST to its API must not open listeners on every interface or on
privileged ports, nor relay to arbitrary hosts, unless whoever started it said so
(`aftershock proxy --allow-host HOST --allow-privileged-ports`). Refusals are API
errors in Toxiproxy's body shape: `{"error": "address refused: ...", "status": 403}`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from faults.proxy.errors import ADDRESS_REFUSED
from faults.proxy.proxy import split_host_port
from harness.core.safety import AddressRefused, check_host_allowed

PRIVILEGED_PORTS = 1024


@dataclass(frozen=True)
class AddressPolicy:
    allowed_hosts: tuple[str, ...] = ()
    allow_privileged_ports: bool = False

    @classmethod
    def of(cls, allowed_hosts: Iterable[str] = (), allow_privileged_ports: bool = False) -> AddressPolicy:
        return cls(tuple(allowed_hosts), allow_privileged_ports)

    def check_listen(self, listen: str) -> None:
        """ApiError 403 unless `listen` is on loopback (or allowed) and not a privileged port."""
        host, port = self._split(listen, "listen")
        self._check_host(host or "0.0.0.0", "listen")  # an empty host listens on every interface
        if 0 < port < PRIVILEGED_PORTS and not self.allow_privileged_ports:
            raise ADDRESS_REFUSED.joined(f"listen port {port} is privileged (< {PRIVILEGED_PORTS}): pick "
                                         "another, or start the proxy with --allow-privileged-ports")

    def check_upstream(self, upstream: str) -> None:
        host, _ = self._split(upstream, "upstream")
        self._check_host(host, "upstream")

    @staticmethod
    def _split(address: str, what: str) -> tuple[str, int]:
        try:
            return split_host_port(address)
        except ValueError as exc:
            raise ADDRESS_REFUSED.joined(f"{what} {exc}") from None

    def _check_host(self, host: str, what: str) -> None:
        try:
            check_host_allowed(host, self.allowed_hosts, what, fix="start the proxy with --allow-host {host}")
        except AddressRefused as exc:
            raise ADDRESS_REFUSED.joined(str(exc)) from None
