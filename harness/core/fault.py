"""The Fault interface: what every fault family implements, and what it is given.

A fault is declared in a scenario's timeline with a `type:` (e.g. `network.latency`).
The runner builds it with its validated params and a FaultContext, writes its
`undo_record()` to the ledger, calls `inject()`, and later `revert()` — on every
path out. After a crash, `aftershock cleanup` calls the class's `replay_undo()` with
the ledger record alone (no context survives a SIGKILL).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from harness.core.errors import UserError  # noqa: F401 - its home before harness/core/errors.py: old imports keep working


class FaultParams(BaseModel):
    """Base for a fault family's params: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Dependency:
    """A dependency of the target, routed through a proxy listener."""

    name: str
    proxy_name: str  # the proxy's name on the (embedded or external) Toxiproxy server
    listen: str  # host:port the target connects to (the proxy's listener)
    upstream: str  # host:port of the real dependency


@dataclass
class FaultContext:
    """Everything a fault may touch. Faults never import the runner."""

    toxiproxy_url: str  # e.g. http://127.0.0.1:8474
    dependencies: dict[str, Dependency] = field(default_factory=dict)
    processes: dict[str, Any] = field(default_factory=dict)  # name -> ManagedProcess
    seed: int = 0
    journal: Callable[..., None] = lambda event, **fields: None
    load_dir: Path | None = None  # the load's work folder: data faults' control channel
    run_dir: Path | None = None  # this run's folder: relative paths in params resolve here
    allowed_hosts: tuple[str, ...] = ()  # safety.allowed_hosts: non-loopback hosts a fault may contact
    target_url: str | None = None  # the target's base URL (http://host:port), e.g. for a deploy hook

    @property
    def run_id(self) -> str | None:
        """The run's id: the value of the `aftershock.run` label on the containers it starts."""
        return self.run_dir.name if self.run_dir is not None else None


class FaultFailed(RuntimeError):
    """A fault could not act, or acted without effect (a killed process still serving,
    a paused one still running, a restarted one not ready): the run must not pass on it."""


class Fault(ABC):
    type: ClassVar[str]  # the YAML `type:`
    Params: ClassVar[type[FaultParams]]
    # names of the figures `metrics()` reports; SLOs may use them (e.g. `steps_lost <= 10`)
    metric_names: ClassVar[tuple[str, ...]] = ()

    def __init__(self, name: str, params: FaultParams, ctx: FaultContext) -> None:
        self.name = name
        self.params = params
        self.ctx = ctx

    @classmethod
    def check(cls, params: FaultParams, dependencies: set[str], processes: set[str]) -> None:
        """Raise UserError if params name something the scenario does not declare."""

    @abstractmethod
    def undo_record(self) -> dict[str, Any]:
        """JSON-able facts `replay_undo` needs to undo this fault after a crash."""

    @abstractmethod
    def inject(self) -> None:
        """Apply the fault and check that it took effect; FaultFailed if it did not."""

    @abstractmethod
    def revert(self) -> None:
        """Undo the fault and check the undo took effect (FaultFailed if not). Must be
        idempotent and safe to call if inject failed."""

    def bad_versions(self) -> list[str]:
        """Model versions this fault put out on purpose as bad (a degraded rollout, a tampered
        artifact), read after inject(); the runner journals them with `fault.injected`, and
        the SLIs bad_version_share and rollback_time count the responses that name them."""
        return []

    def metrics(self) -> dict[str, float]:
        """Figures this fault measured, read once after the load ends (default: none)."""
        return {}

    @classmethod
    @abstractmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        """Undo from a ledger record alone; returns what was done, for the user."""
