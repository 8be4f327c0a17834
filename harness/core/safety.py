"""Loopback-only by default: the one check every address passes before aftershock uses it.

An address is refused unless its host is loopback (127.0.0.0/8, ::1, localhost) or
named in `safety.allowed_hosts` / `--allow-host`. The check runs twice: when a
scenario is validated (placeholders filled with example loopback values) and at every
connect call site on the final address (target and dependencies, probes, the Toxiproxy
API, the Docker daemon, the Kubernetes API server, webhooks, ledger entries).

A URL is only as safe as the parser that reads it: `http://127.0.0.1:80\\@10.1.2.3/`
is 127.0.0.1 to urllib3 but 10.1.2.3 to httpx. So a URL is read by the three parsers
our clients use (urllib, httpx, urllib3) and refused when they disagree, and an
authority with whitespace, backslashes or control characters is refused outright.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import urlsplit

from harness.core.errors import UserError

LOOPBACK_NAMES = {"localhost", "localhost.localdomain", "ip6-localhost"}
LOCAL_SOCKET_SCHEMES = {"unix", "npipe", "http+unix"}  # a local socket: no network host at all
_BAD_AUTHORITY = re.compile(r"[\s\\\x00-\x1f\x7f]")


class AddressRefused(UserError):
    """An address outside loopback that no allow-list names (or that parsers read apart)."""


def _parsed_hosts(url: str) -> set[str]:
    """The host of `url` as each HTTP parser we connect through reads it."""
    import httpx
    import urllib3

    hosts: set[str] = set()
    readers = (lambda u: urlsplit(u).hostname, lambda u: httpx.URL(u).host, lambda u: urllib3.util.parse_url(u).host)
    for read in readers:
        try:
            host = read(url) or ""
        except Exception:  # noqa: BLE001 (a parser that cannot read it: the URL is ambiguous)
            host = "\0unreadable"
        hosts.add(host.strip("[]").lower())
    return hosts


def host_of(address: str) -> str:
    """The host part of a URL or a host:port string; AddressRefused if it is ambiguous."""
    address = address.strip()
    try:  # a bare IP address, e.g. ::1 (which no URL parser reads without brackets)
        return ipaddress.ip_address(address).compressed
    except ValueError:
        pass
    url = address if "://" in address else f"http://{address}"
    scheme, _, rest = url.partition("://")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if _BAD_AUTHORITY.search(authority):
        raise AddressRefused(f"{address!r}: whitespace, backslashes or control characters in the host part "
                             "make it ambiguous: write plain host:port or http://host:port")
    if scheme.lower() in LOCAL_SOCKET_SCHEMES:
        return "localhost"
    hosts = _parsed_hosts(url)
    if len(hosts) != 1:
        raise AddressRefused(f"{address!r}: HTTP libraries read different hosts in it "
                             f"({', '.join(sorted(h for h in hosts if h))}): write plain host:port or http://host:port")
    return hosts.pop()


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SCENARIO_FIX = "add it to safety.allowed_hosts (or pass --allow-host {host})"


def check_host_allowed(address: str, allowed_hosts: Iterable[str] = (), what: str = "",
                       fix: str = SCENARIO_FIX) -> str:
    """Return `address` if it is safe to contact; raise AddressRefused (a UserError) if not.

    `what` names the address for the message (e.g. "toxiproxy.url"); `fix` says how to
    allow the host (`{host}` is filled in)."""
    host = host_of(address)
    label = f"{what}: " if what else ""
    if not host:
        raise AddressRefused(f"{label}cannot find a host in {address!r}: write host:port or http://host:port")
    if is_loopback(host) or host in {h.strip().lower() for h in allowed_hosts}:
        return address
    raise AddressRefused(
        f"{label}{host} is outside loopback (127.0.0.0/8, ::1) and aftershock refuses it by default: "
        f"{fix.format(host=host)} if you mean to test it"
    )
