"""All proxies of one server, with Toxiproxy's create / populate / update / reset rules."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from faults.proxy.address_policy import AddressPolicy
from faults.proxy.errors import (
    BAD_REQUEST_BODY,
    MISSING_FIELD,
    PROXY_ALREADY_EXISTS,
    PROXY_NOT_FOUND,
    ApiError,
    check_name,
)
from faults.proxy.proxy import Proxy


@dataclass
class ProxySpec:
    """A proxy as asked for in a request body (POST /proxies, /populate, a config file)."""

    name: str
    listen: str
    upstream: str
    enabled: bool = True
    toxics: list[Any] = field(default_factory=list)  # extension: toxics created with the proxy

    @classmethod
    def parse(cls, body: Any, where: str = "") -> ProxySpec:
        if not isinstance(body, dict):
            raise BAD_REQUEST_BODY.joined(f"expected a JSON object{where}")
        for key in ("name", "listen", "upstream"):
            if body.get(key) is not None and not isinstance(body[key], str):
                raise BAD_REQUEST_BODY.joined(f"{key}{where} must be a string")
        enabled = body.get("enabled", True)
        if enabled is None:
            enabled = True
        if not isinstance(enabled, bool):
            raise BAD_REQUEST_BODY.joined(f"enabled{where} must be true or false")
        toxics = body.get("toxics") or []
        if not isinstance(toxics, list):
            raise BAD_REQUEST_BODY.joined(f"toxics{where} must be a list")
        name = body.get("name") or ""
        upstream = body.get("upstream") or ""
        if not name:
            raise MISSING_FIELD.joined(f"name{where}")
        if not upstream:
            raise MISSING_FIELD.joined(f"upstream{where}")
        return cls(check_name(name, "proxy"), body.get("listen") or "127.0.0.1:0", upstream, enabled, toxics)


class ProxyCollection:
    def __init__(self, seed: int | None = None, policy: AddressPolicy | None = None) -> None:
        self.proxies: dict[str, Proxy] = {}
        self.seed = seed
        self.policy = policy or AddressPolicy()  # loopback only unless the server was started otherwise

    def check_addresses(self, listen: str, upstream: str) -> None:
        self.policy.check_listen(listen)
        self.policy.check_upstream(upstream)

    def get(self, name: str) -> Proxy:
        proxy = self.proxies.get(name)
        if proxy is None:
            raise PROXY_NOT_FOUND
        return proxy

    def _build(self, spec: ProxySpec) -> Proxy:
        """A proxy with all its toxics in place before it listens: no connection escapes them."""
        proxy = Proxy(spec.name, spec.listen, spec.upstream, self.seed)
        for body in spec.toxics:
            proxy.toxics.add(proxy.toxics.parse(body))
        return proxy

    async def _install(self, proxy: Proxy, enabled: bool) -> None:
        self.proxies[proxy.name] = proxy  # reserve the name while the listener starts
        if enabled:
            try:
                await proxy.start()
            except BaseException:
                self.proxies.pop(proxy.name, None)
                raise

    async def create(self, body: Any) -> Proxy:
        spec = ProxySpec.parse(body)
        self.check_addresses(spec.listen, spec.upstream)
        if spec.name in self.proxies:
            raise PROXY_ALREADY_EXISTS
        proxy = self._build(spec)
        await self._install(proxy, spec.enabled)
        return proxy

    async def populate(self, body: Any) -> tuple[list[Proxy], ApiError | None]:
        """Validate every entry first; then create each, keeping an existing proxy whose
        listen and upstream are unchanged. Returns what was applied and the first error."""
        if not isinstance(body, list):
            raise BAD_REQUEST_BODY.joined("expected a JSON list of proxies")
        specs: list[ProxySpec] = []
        built: list[Proxy] = []
        for i, item in enumerate(body):
            spec = ProxySpec.parse(item, f" at proxy {i + 1}")
            self.check_addresses(spec.listen, spec.upstream)
            if any(s.name == spec.name for s in specs):
                raise BAD_REQUEST_BODY.joined(f'duplicate proxy name "{spec.name}"')
            specs.append(spec)
            built.append(self._build(spec))  # validates its toxics; listens later
        applied: list[Proxy] = []
        for spec, proxy in zip(specs, built):
            existing = self.proxies.get(spec.name)
            if existing is not None:
                same_listen = spec.listen in (existing.listen, existing.requested_listen)
                if same_listen and spec.upstream == existing.upstream:
                    applied.append(existing)
                    continue
                self.delete(spec.name)
            try:
                await self._install(proxy, spec.enabled)
            except ApiError as exc:
                return applied, exc
            applied.append(proxy)
        return applied, None

    async def update(self, name: str, body: Any) -> Proxy:
        """Omitted fields keep their values; a new listen or upstream restarts the listener."""
        proxy = self.get(name)
        if not isinstance(body, dict):
            raise BAD_REQUEST_BODY.joined("expected a JSON object")
        listen = body.get("listen", proxy.listen)
        upstream = body.get("upstream", proxy.upstream)
        enabled = body.get("enabled", proxy.enabled)
        for key, value in (("listen", listen), ("upstream", upstream)):
            if not isinstance(value, str):
                raise BAD_REQUEST_BODY.joined(f"{key} must be a string")
        if not isinstance(enabled, bool):
            raise BAD_REQUEST_BODY.joined("enabled must be true or false")
        if listen != proxy.listen or upstream != proxy.upstream:
            self.check_addresses(listen, upstream)
        await proxy.update(listen, upstream, enabled)
        return proxy

    def delete(self, name: str) -> None:
        proxy = self.get(name)
        proxy.stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """Re-enable every proxy and remove every toxic; the proxies stay."""
        for proxy in list(self.proxies.values()):
            if not proxy.enabled:
                await proxy.start()
            proxy.toxics.reset()

    def close_all(self) -> None:
        for proxy in self.proxies.values():
            proxy.stop()
