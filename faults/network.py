"""Network faults on a named dependency, as toxics on its proxy (embedded or a real Toxiproxy).

Each fault adds toxics named `aftershock-<fault name>-<stream>` to the dependency's proxy
and removes them on revert; `network.down` disables the proxy instead. Each action is
read back from the proxy (the toxic is there with its type, stream, toxicity and
attributes; the proxy is disabled; after the revert, neither): a proxy that did not
take the change fails the fault (FaultFailed). Everything needed to undo a fault after
a crash is in its `undo_record()`.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any, ClassVar, Literal, NoReturn

from pydantic import Field, field_validator, model_validator

from faults.proxy.client import (
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyNotFound,
    ToxiproxyUnreachable,
)
from harness.core.fault import Fault, FaultFailed, FaultParams, UserError
from harness.core.units import ByteSize, Duration, Percent

Stream = Literal["upstream", "downstream", "both"]


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _same(got: Any, want: Any) -> bool:
    """Equal, numbers compared as floats (a server may echo 250 as 250.0)."""
    if isinstance(want, dict):
        return isinstance(got, dict) and all(_same(got.get(k), v) for k, v in want.items())
    if isinstance(want, int | float) and isinstance(got, int | float):
        return abs(float(got) - float(want)) <= 1e-9 * max(1.0, abs(float(want)))
    return got == want


class DependencyParams(FaultParams):
    dependency: str = Field(description="name of the dependency (under `dependencies:`) to hit")


class StreamParams(DependencyParams):
    stream: Stream = Field(
        "downstream", description="downstream = replies to the target; upstream = its requests"
    )
    toxicity: Percent = Field(
        1.0, description="share of connections affected, 0..1 or a percentage"
    )


class LatencyParams(StreamParams):
    latency: Duration
    jitter: Duration = 0.0


class BandwidthParams(StreamParams):
    rate: ByteSize = Field(description="bytes per second, e.g. 100KB (at least 1KB)")

    @field_validator("rate")
    @classmethod
    def _at_least_1kb(cls, value: int) -> int:
        if value < 1000:
            raise ValueError("rate must be at least 1KB (per second); Toxiproxy counts in KB/s")
        return value


class TimeoutParams(StreamParams):
    timeout: Duration = Field(
        0.0, description="close the connection after this long without data; 0 = hold it open"
    )


class ResetParams(StreamParams):
    timeout: Duration = Field(0.0, description="reset this long after the first data")


class SlowCloseParams(StreamParams):
    delay: Duration


class SlicerParams(StreamParams):
    average_size: ByteSize
    size_variation: ByteSize = 0
    delay: Duration = 0.0


class LimitDataParams(StreamParams):
    bytes: ByteSize


class HttpErrorParams(DependencyParams):
    status: int = Field(503, ge=100, le=599)
    rate: Percent = Field(1.0, description="share of requests answered with `status`")
    body: str = ""


class HttpDelayParams(DependencyParams):
    delay: Duration
    rate: Percent = Field(1.0, description="share of requests delayed")


class HttpStreamParams(DependencyParams):
    mode: Literal["stall", "slow", "cut", "corrupt"] = Field(
        description="stall: hold the stream once; slow: delay every chunk; cut: close it; "
        "corrupt: mangle one chunk into invalid JSON")
    after_chunks: int = Field(
        0, ge=0, description="chunks/SSE events of each response passed untouched before it acts")
    stall: Duration | None = Field(None, description="with mode: stall — how long the stream holds")
    delay_per_chunk: Duration | None = Field(
        None, description="with mode: slow — added before each chunk/SSE event")
    toxicity: Percent = Field(
        1.0, description="share of connections affected, 0..1 or a percentage"
    )

    @model_validator(mode="after")
    def _mode_has_its_setting(self) -> HttpStreamParams:
        needs = {"stall": "stall", "slow": "delay_per_chunk"}
        example = {"stall": "2s", "slow": "50ms"}
        for mode, setting in needs.items():
            given = getattr(self, setting) is not None
            if self.mode == mode and not (given and getattr(self, setting) > 0):
                raise ValueError(f"mode {mode} needs `{setting}` above 0, e.g. {setting}: {example[mode]}")
            if self.mode != mode and given:
                raise ValueError(f"`{setting}` applies to mode {mode} only; remove it or set mode: {mode}")
        return self


def _check_dependency(fault_type: str, params: FaultParams, dependencies: set[str]) -> None:
    name = params.dependency
    if name not in dependencies:
        declared = ", ".join(sorted(dependencies)) or "none"
        raise UserError(
            f"{fault_type}: dependency {name!r} is not declared (declared: {declared}); "
            "declare it under `dependencies:` or fix the name"
        )


class ProxyFault(Fault):
    """Base for faults that act on a dependency's proxy."""

    @classmethod
    def check(cls, params: FaultParams, dependencies: set[str], processes: set[str]) -> None:
        _check_dependency(cls.type, params, dependencies)

    @property
    def proxy_name(self) -> str:
        dependency = self.params.dependency
        try:
            return self.ctx.dependencies[dependency].proxy_name
        except KeyError:
            raise UserError(f"{self.type}: dependency {dependency!r} is not declared") from None

    def client(self) -> ToxiproxyClient:
        return ToxiproxyClient(self.ctx.toxiproxy_url, allowed_hosts=self.ctx.allowed_hosts)

    def fail(self, message: str) -> NoReturn:
        self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=message)
        raise FaultFailed(f"{self.type} {self.name}: {message}")

    def verified(self, effect: str) -> None:
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="verified",
                         proxy=self.proxy_name, effect=effect)


class ToxicFault(ProxyFault):
    """A fault that is one toxic per stream."""

    toxic_type: ClassVar[str]

    @abstractmethod
    def attributes(self) -> dict[str, Any]:
        """The toxic's attributes, in Toxiproxy's units."""

    def streams(self) -> list[str]:
        stream = getattr(self.params, "stream", "upstream")
        return ["upstream", "downstream"] if stream == "both" else [stream]

    def toxicity(self) -> float:
        return float(getattr(self.params, "toxicity", 1.0))

    def toxic_names(self) -> list[str]:
        return [f"aftershock-{self.name}-{stream}" for stream in self.streams()]

    def undo_record(self) -> dict[str, Any]:
        return {
            "api_url": self.ctx.toxiproxy_url,
            "proxy": self.proxy_name,
            "toxics": self.toxic_names(),
        }

    def inject(self) -> None:
        client = self.client()
        for stream, name in zip(self.streams(), self.toxic_names()):
            toxic = {
                "type": self.toxic_type,
                "name": name,
                "stream": stream,
                "toxicity": self.toxicity(),
                "attributes": self.attributes(),
            }
            try:
                client.add_toxic(self.proxy_name, **toxic)
            except ToxiproxyConflict:  # left over from a run that died: replace it
                client.remove_toxic(self.proxy_name, name)
                client.add_toxic(self.proxy_name, **toxic)
        self.check_present()

    def wanted(self) -> dict[str, dict[str, Any]]:
        """The toxics this fault puts on the proxy, by name, as the proxy lists them."""
        return {name: {"type": self.toxic_type, "stream": stream, "toxicity": self.toxicity(),
                       "attributes": self.attributes()}
                for stream, name in zip(self.streams(), self.toxic_names())}

    def check_present(self) -> None:
        """Read the proxy's toxics back: each of this fault's must be there, as sent."""
        listed = {t.name: t for t in self.client().toxics(self.proxy_name)}
        for name, want in self.wanted().items():
            got = listed.get(name)
            if got is None:
                self.fail(f"toxic {name} is not on proxy {self.proxy_name} after it was added")
            differs = {k: getattr(got, k) for k, v in want.items() if not _same(getattr(got, k), v)}
            if differs:
                self.fail(f"toxic {name} on proxy {self.proxy_name} is not what was sent: "
                          f"{differs} (sent {want})")
        self.verified("toxics present")

    def revert(self) -> None:
        self.replay_undo(self.undo_record())
        try:
            left = set(self.toxic_names()) & {t.name for t in self.client().toxics(self.proxy_name)}
        except (ToxiproxyUnreachable, ToxiproxyNotFound):
            return  # the proxy (or its server) is gone, and its toxics with it
        if left:
            self.fail(f"toxic(s) {', '.join(sorted(left))} still on proxy {self.proxy_name} after removal")
        self.verified("toxics removed")

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        client = ToxiproxyClient(record["api_url"])
        removed = []
        try:
            for name in record["toxics"]:
                if client.remove_toxic(record["proxy"], name):
                    removed.append(name)
        except ToxiproxyUnreachable:
            return f"Toxiproxy at {record['api_url']} is not reachable: nothing left to undo"
        if not removed:
            return f"no toxics of this fault left on proxy {record['proxy']}"
        return f"removed toxics {', '.join(removed)} from proxy {record['proxy']}"


class NetworkLatency(ToxicFault):
    type = "network.latency"
    toxic_type = "latency"
    Params = LatencyParams

    def attributes(self) -> dict[str, Any]:
        return {"latency": _ms(self.params.latency), "jitter": _ms(self.params.jitter)}


class NetworkBandwidth(ToxicFault):
    type = "network.bandwidth"
    toxic_type = "bandwidth"
    Params = BandwidthParams

    def attributes(self) -> dict[str, Any]:
        return {"rate": self.params.rate // 1000}


class NetworkTimeout(ToxicFault):
    type = "network.timeout"
    toxic_type = "timeout"
    Params = TimeoutParams

    def attributes(self) -> dict[str, Any]:
        return {"timeout": _ms(self.params.timeout)}


class NetworkReset(ToxicFault):
    type = "network.reset"
    toxic_type = "reset_peer"
    Params = ResetParams

    def attributes(self) -> dict[str, Any]:
        return {"timeout": _ms(self.params.timeout)}


class NetworkSlowClose(ToxicFault):
    type = "network.slow_close"
    toxic_type = "slow_close"
    Params = SlowCloseParams

    def attributes(self) -> dict[str, Any]:
        return {"delay": _ms(self.params.delay)}


class NetworkSlicer(ToxicFault):
    type = "network.slicer"
    toxic_type = "slicer"
    Params = SlicerParams

    def attributes(self) -> dict[str, Any]:
        return {
            "average_size": self.params.average_size,
            "size_variation": self.params.size_variation,
            "delay": round(self.params.delay * 1e6),  # microseconds
        }


class NetworkLimitData(ToxicFault):
    type = "network.limit_data"
    toxic_type = "limit_data"
    Params = LimitDataParams

    def attributes(self) -> dict[str, Any]:
        return {"bytes": self.params.bytes}


class HttpError(ToxicFault):
    """Answer `status` to a share of the requests sent to an HTTP dependency."""

    type = "http.error"
    toxic_type = "http_error"
    Params = HttpErrorParams

    def attributes(self) -> dict[str, Any]:
        return {"status": self.params.status, "rate": self.params.rate, "body": self.params.body}


class HttpDelay(ToxicFault):
    """Delay the response headers of a share of the requests sent to an HTTP dependency."""

    type = "http.delay"
    toxic_type = "http_delay"
    Params = HttpDelayParams

    def attributes(self) -> dict[str, Any]:
        return {"delay": _ms(self.params.delay), "rate": self.params.rate}


class HttpStream(ToxicFault):
    """Stall, slow, cut or corrupt the streamed responses (SSE events, chunks) of an HTTP dependency."""

    type = "http.stream"
    Params = HttpStreamParams

    @property
    def toxic_type(self) -> str:  # type: ignore[override]  # one toxic type per mode
        return f"http_stream_{self.params.mode}"

    def streams(self) -> list[str]:
        return ["downstream"]  # it acts on responses

    def attributes(self) -> dict[str, Any]:
        attributes: dict[str, Any] = {"after_chunks": self.params.after_chunks}
        if self.params.mode == "stall":
            attributes["stall"] = _ms(self.params.stall)
        elif self.params.mode == "slow":
            attributes["delay"] = _ms(self.params.delay_per_chunk)
        return attributes


class NetworkDown(ProxyFault):
    """The dependency is unreachable: its proxy stops listening and drops its connections."""

    type = "network.down"
    Params = DependencyParams

    def undo_record(self) -> dict[str, Any]:
        return {"api_url": self.ctx.toxiproxy_url, "proxy": self.proxy_name, "enable": True}

    def inject(self) -> None:
        self.client().set_enabled(self.proxy_name, False)
        self.check_enabled(False)

    def check_enabled(self, enabled: bool) -> None:
        if self.client().get_proxy(self.proxy_name).enabled is not enabled:
            self.fail(f"proxy {self.proxy_name} is not {'enabled' if enabled else 'disabled'} "
                      "after it was told to be")
        self.verified("enabled" if enabled else "disabled")

    def revert(self) -> None:
        self.replay_undo(self.undo_record())
        try:
            self.check_enabled(True)
        except (ToxiproxyUnreachable, ToxiproxyNotFound):
            pass  # the proxy (or its server) is gone: nothing is left disabled

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        client = ToxiproxyClient(record["api_url"])
        try:
            client.set_enabled(record["proxy"], True)
        except ToxiproxyUnreachable:
            return f"Toxiproxy at {record['api_url']} is not reachable: nothing left to undo"
        except ToxiproxyNotFound:
            return f"proxy {record['proxy']} no longer exists: nothing left to undo"
        return f"re-enabled proxy {record['proxy']}"
