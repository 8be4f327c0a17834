"""Loopback-only by default: refuse addresses outside 127.0.0.0/8 and ::1 unless allowed."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from harness.fault import UserError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}


def host_of(address: str) -> str:
    """The host part of a URL or a host:port string."""
    if "://" in address:
        host = urlsplit(address).hostname or ""
    elif address.startswith("["):
        host = address[1 : address.find("]")]
    elif address.count(":") == 1:
        host = address.split(":")[0]
    else:
        host = address
    return host.strip().lower()


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_host_allowed(address: str, allowed_hosts: list[str]) -> None:
    host = host_of(address)
    if not host:
        raise UserError(f"cannot find a host in {address!r}: write host:port or http://host:port")
    if is_loopback(host) or host in {h.lower() for h in allowed_hosts}:
        return
    raise UserError(
        f"{host} is outside loopback (127.0.0.0/8, ::1) and aftershock refuses it by default: "
        f"add it to safety.allowed_hosts (or pass --allow-host {host}) if you mean to test it"
    )
