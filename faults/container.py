"""Container faults through the Docker SDK: kill, stop, pause, restart, network_disconnect.

Containers are picked by `container:` (a name or id) or by `label:` (`key=value` or
`key`, one or a list, all must match); `count` / `percent` narrow a label match down.
Only containers this run started (labelled `aftershock.run=<run id>`) can be picked,
unless the fault says `scope: any`: a label alone could match another run's containers,
or a production one on a shared daemon.

Every action is checked: the container is seen exited, paused, restarted or off the
network, and after the undo running, unpaused or back on it; if not, FaultFailed.
The undo restores what the fault did: a killed or stopped container is started again,
a paused one unpaused, a disconnected one reconnected. The undo record holds the
container ids, so `replay_undo` needs nothing else.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from typing import Any, Literal, NoReturn

from pydantic import Field, model_validator

from faults.process import SignalName
from faults.selection import SelectorParams, select
from harness.core.containers import RUN_LABEL, docker_client
from harness.core.fault import Fault, FaultFailed, FaultParams, UserError
from harness.core.polling import wait_until
from harness.core.units import Duration

SETTLE_S = 10.0  # how long dockerd may take to show a container's new state


class ContainerParams(SelectorParams):
    container: str | None = Field(None, description="container name or id")
    label: str | list[str] | None = Field(None, description="`key=value` or `key`; a list must all match")
    docker_host: str | None = Field(None, description="e.g. unix:///var/run/docker.sock; default DOCKER_HOST")
    scope: Literal["run", "any"] = Field(
        "run", description="run: only containers this run started (label aftershock.run); any: any container")

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

    def run_label(self) -> str | None:
        """`aftershock.run=<id>` every picked container must carry; None with `scope: any`."""
        if self.params.scope == "any":
            return None
        if self.ctx.run_id is None:
            raise UserError(f"{self.type}: `scope: run` needs a run to pick its containers; "
                            "say `scope: any` to act on containers outside a run")
        return f"{RUN_LABEL}={self.ctx.run_id}"

    def containers(self) -> list[Any]:
        from docker.errors import NotFound

        client = self.client()
        if self._ids is None:
            run_label = self.run_label()
            outside = ("; only containers this run started can be hit: start it as a dependency "
                       "with `container:`, or say `scope: any`")
            if self.params.container is not None:
                try:
                    found = [client.containers.get(self.params.container)]
                except NotFound:
                    raise UserError(f"{self.type}: no container named {self.params.container!r}") from None
                if run_label is not None and f"{RUN_LABEL}={found[0].labels.get(RUN_LABEL)}" != run_label:
                    raise UserError(f"{self.type}: container {self.params.container!r} does not carry the "
                                    f"label {run_label}{outside}")
            else:
                labels = [self.params.label] if isinstance(self.params.label, str) else self.params.label
                found = client.containers.list(filters={"label": [*labels, *filter(None, [run_label])]})
                if not found:
                    where = f" among this run's containers ({run_label}){outside}" if run_label else ""
                    raise UserError(f"{self.type}: no running container has label(s) {', '.join(labels)}{where}")
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
            before = c.attrs["State"].get("StartedAt")
            self.hit(c)
            self.await_state(c, lambda c, before=before: self.in_effect(c, before), self.effect, self.settle_s())

    @abstractmethod
    def hit(self, c: Any) -> None:
        """Apply the fault to one container."""

    effect: str  # what a hit container is, e.g. "exited": journaled and named when it is not

    def in_effect(self, c: Any, started_before: str | None) -> bool:
        """Whether the fault shows on the (reloaded) container."""
        return c.status == self.effect

    def settle_s(self) -> float:
        return SETTLE_S

    def restored(self, c: Any) -> bool:
        """Whether the undo shows on the (reloaded) container."""
        return c.status == "running"

    def await_state(self, c: Any, ok: Callable[[Any], bool], effect: str, timeout: float) -> None:
        """Reload `c` until `ok(c)`; FaultFailed (journaled) if it does not happen in time."""
        from docker.errors import NotFound

        def reached() -> bool:
            try:
                c.reload()
            except NotFound:
                self.fail(c, f"container {c.name} is gone; expected it {effect}")
            return ok(c)

        if not wait_until(reached, timeout, interval=0.1):
            self.fail(c, f"container {c.name} is {c.status} {timeout:g}s later; expected it {effect}")
        self.note("verified", c, effect=effect)

    def fail(self, c: Any, message: str) -> NoReturn:
        self.ctx.journal("fault.failed", fault=self.name, type=self.type, container=c.name, error=message)
        raise FaultFailed(f"{self.type} {self.name}: {message}")

    def revert(self) -> None:
        from docker.errors import NotFound

        if self._ids is None:
            return
        for line in self._undo(self.client(), self.undo_record()):
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="undo", done=line)
        for cid in self._ids:
            try:
                c = self.client().containers.get(cid)
            except NotFound:
                continue  # removed meanwhile (by its owner): nothing to bring back
            self.await_state(c, self.restored, "restored", SETTLE_S)

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
    exit_timeout: Duration = Field(
        10.0, description="the container must have exited this long after the signal, or the fault fails")
    restart_on_revert: bool = Field(True, description="start it again when the fault ends")


class ContainerKill(ContainerFault):
    type = "container.kill"
    Params = KillParams
    action = "kill"
    effect = "exited"

    def settle_s(self) -> float:
        return self.params.exit_timeout

    def restored(self, c: Any) -> bool:
        return c.status == "running" or not self.params.restart_on_revert

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
    effect = "exited"

    def hit(self, c: Any) -> None:
        c.stop(timeout=max(0, round(self.params.timeout)))
        self.note("stop", c)


class ContainerPause(ContainerFault):
    """Freeze every process of the container (cgroup freezer); revert unpauses."""

    type = "container.pause"
    action = "pause"
    effect = "paused"

    def hit(self, c: Any) -> None:
        c.pause()
        self.note("pause", c)


class ContainerRestart(ContainerFault):
    type = "container.restart"
    Params = StopParams
    action = "restart"
    effect = "running again"

    def in_effect(self, c: Any, started_before: str | None) -> bool:
        return c.status == "running" and c.attrs["State"].get("StartedAt") != started_before

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

    @property
    def effect(self) -> str:
        return f"off network {self.params.network}"

    def in_effect(self, c: Any, started_before: str | None) -> bool:
        return self.params.network not in c.attrs["NetworkSettings"]["Networks"]

    def restored(self, c: Any) -> bool:
        return self.params.network in c.attrs["NetworkSettings"]["Networks"]

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
