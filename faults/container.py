"""Container faults through the Docker SDK: kill, stop, pause, restart, network_disconnect.

Containers are picked by `container:` (a name or id) or by `label:` (`key=value` or
`key`, one or a list, all must match); `count` / `percent` narrow a label match down.
Containers are not the harness's own, so the undo restores them: a killed or stopped
container is started again, a paused one unpaused, a disconnected one reconnected.
The undo record holds the container ids, so `replay_undo` needs nothing else.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from pydantic import Field, model_validator

from faults.process import SignalName
from faults.selection import SelectorParams, select
from harness.containers import docker_client
from harness.fault import Fault, FaultParams, UserError
from harness.units import Duration


class ContainerParams(SelectorParams):
    container: str | None = Field(None, description="container name or id")
    label: str | list[str] | None = Field(None, description="`key=value` or `key`; a list must all match")
    docker_host: str | None = Field(None, description="e.g. unix:///var/run/docker.sock; default DOCKER_HOST")

    @model_validator(mode="after")
    def _one_target(self) -> ContainerParams:
        if (self.container is None) == (self.label is None):
            raise ValueError("give exactly one of `container` (a name or id) or `label`")
        return self


class ContainerFault(Fault):
    """Base: resolves the containers once, keeps their ids for the undo."""

    Params = ContainerParams
    action: str

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._ids: list[str] | None = None
        self._client: Any = None

    def client(self) -> Any:
        if self._client is None:
            self._client = docker_client(self.params.docker_host, self.ctx.allowed_hosts)
        return self._client

    def containers(self) -> list[Any]:
        from docker.errors import NotFound

        client = self.client()
        if self._ids is None:
            if self.params.container is not None:
                try:
                    found = [client.containers.get(self.params.container)]
                except NotFound:
                    raise UserError(f"{self.type}: no container named {self.params.container!r}") from None
            else:
                labels = [self.params.label] if isinstance(self.params.label, str) else self.params.label
                found = client.containers.list(filters={"label": labels})
                if not found:
                    raise UserError(f"{self.type}: no running container has label(s) {', '.join(labels)}")
            picked = select(found, self.params, f"{self.ctx.seed}:{self.name}", key=lambda c: c.name)
            self._ids = [c.id for c in picked]
        return [client.containers.get(cid) for cid in self._ids]

    def undo_record(self) -> dict[str, Any]:
        self.containers()
        return {"docker_host": self.params.docker_host, "action": self.action, "ids": self._ids,
                **self.extra_record()}

    def extra_record(self) -> dict[str, Any]:
        return {}

    def note(self, action: str, c: Any, **fields: Any) -> None:
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action=action,
                         container=c.name, id=c.id[:12], **fields)

    def inject(self) -> None:
        for c in self.containers():
            self.hit(c)

    @abstractmethod
    def hit(self, c: Any) -> None:
        """Apply the fault to one container."""

    def revert(self) -> None:
        if self._ids is None:
            return
        for line in self._undo(self.client(), self.undo_record()):
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="undo", done=line)

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        done = cls._undo(docker_client(record.get("docker_host")), record)
        return "; ".join(done) if done else "nothing left to undo"

    @classmethod
    def _undo(cls, client: Any, record: dict[str, Any]) -> list[str]:
        from docker.errors import NotFound

        done = []
        for cid in record["ids"]:
            try:
                c = client.containers.get(cid)
            except NotFound:
                done.append(f"container {cid[:12]} no longer exists")
                continue
            line = cls.restore(c, record)
            if line:
                done.append(line)
        return done

    @classmethod
    def restore(cls, c: Any, record: dict[str, Any]) -> str | None:
        """Start the container again if it is not running (kill, stop, restart)."""
        if c.status in ("exited", "created", "dead"):
            c.start()
            return f"started {c.name}"
        if c.status == "paused":
            c.unpause()
            return f"unpaused {c.name}"
        return None


class KillParams(ContainerParams):
    signal: SignalName = "SIGKILL"
    restart_on_revert: bool = Field(True, description="start it again when the fault ends")


class ContainerKill(ContainerFault):
    type = "container.kill"
    Params = KillParams
    action = "kill"

    def hit(self, c: Any) -> None:
        c.kill(signal=self.params.signal)
        self.note("kill", c, signal=self.params.signal)

    def extra_record(self) -> dict[str, Any]:
        return {"restart": self.params.restart_on_revert}

    @classmethod
    def restore(cls, c: Any, record: dict[str, Any]) -> str | None:
        return super().restore(c, record) if record.get("restart", True) else None


class StopParams(ContainerParams):
    timeout: Duration = Field(10.0, description="SIGTERM, then SIGKILL after this long")


class ContainerStop(ContainerFault):
    type = "container.stop"
    Params = StopParams
    action = "stop"

    def hit(self, c: Any) -> None:
        c.stop(timeout=max(0, round(self.params.timeout)))
        self.note("stop", c)


class ContainerPause(ContainerFault):
    """Freeze every process of the container (cgroup freezer); revert unpauses."""

    type = "container.pause"
    action = "pause"

    def hit(self, c: Any) -> None:
        c.pause()
        self.note("pause", c)


class ContainerRestart(ContainerFault):
    type = "container.restart"
    Params = StopParams
    action = "restart"

    def hit(self, c: Any) -> None:
        c.restart(timeout=max(0, round(self.params.timeout)))
        self.note("restart", c)


class DisconnectParams(ContainerParams):
    network: str = Field(description="the Docker network to take the container off")


class ContainerNetworkDisconnect(ContainerFault):
    """Disconnect the container from a network; revert reconnects it."""

    type = "container.network_disconnect"
    Params = DisconnectParams
    action = "network_disconnect"

    def extra_record(self) -> dict[str, Any]:
        return {"network": self.params.network}

    def hit(self, c: Any) -> None:
        from docker.errors import NotFound

        try:
            net = self.client().networks.get(self.params.network)
        except NotFound:
            raise UserError(f"{self.type}: no Docker network named {self.params.network!r}") from None
        net.disconnect(c, force=True)
        self.note("network_disconnect", c, network=self.params.network)

    @classmethod
    def restore(cls, c: Any, record: dict[str, Any]) -> str | None:
        from docker.errors import NotFound

        c.reload()
        if record["network"] in c.attrs["NetworkSettings"]["Networks"]:
            return None
        try:
            c.client.networks.get(record["network"]).connect(c)
        except NotFound:
            return f"network {record['network']} no longer exists"
        return f"reconnected {c.name} to {record['network']}"
