"""The scenario schema (pydantic v2): what a YAML scenario may say.

Fault entries are validated in two steps: `FaultEntry` holds the fields every fault
has (name, type, at, duration); the remaining keys are checked against the fault
family's own Params model, looked up by `type` in the registry (see loader.py).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from harness.core.attack import Rate
from harness.core.units import Duration
from harness.engine.slo.settings import SloSettings

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
MAX_NAME = 100  # names become file, process, proxy and container names: keep far below 255
MAX_ENTRIES = 1000  # faults, attacks, SLOs, probes, ...: more is a generated file gone wrong


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_name(value: str) -> str:
    if len(value) > MAX_NAME:
        raise ValueError(f"name {value[:20]!r}... is {len(value)} characters long: use at most {MAX_NAME}")
    if not _NAME.match(value):
        raise ValueError(
            f"invalid name {value!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit"
        )
    return value


# a name used in paths, SLO scopes and CLI output (scenarios, faults, jobs, plans)
Name = Annotated[str, AfterValidator(_check_name)]


class ReadyCheck(Strict):
    path: str = "/v2/health/ready"
    timeout: Duration = 60.0


class StartCommand(Strict):
    """A process the harness starts, in its own process group, on a free port.

    `{port}` in the command or env is replaced by the port picked for it.
    """

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    ready: JobReady | None = None


    ready: ReadyCheck = Field(default_factory=ReadyCheck)


class Target(Strict):
    demo: Literal["fraud", "llm"] | None = None
    mode: Literal["resilient", "fragile"] = "resilient"
    url: str | None = None
    start: StartCommand | None = None
    protocol: str = "oip-v2"
    options: dict[str, Any] = Field(default_factory=dict)  # the protocol adapter's options
    model: str = "fraud"
    ready_timeout: Duration = 60.0
    feature_timeout: Duration | None = None  # demo only: the service's feature-store timeout
    args: list[str] = Field(default_factory=list)  # demo only: more `serve` flags, e.g. [--max-inflight, "16"]
    canary: str | None = None  # demo: llm only: the secret in its system prompt (default AFTERSHOCK-CANARY-7f3a9c)

    @model_validator(mode="after")
    def _one_way_to_reach(self) -> Target:
        ways = [w for w in ("demo", "url", "start") if getattr(self, w) is not None]
        if len(ways) != 1:
            raise ValueError("say exactly one of demo:, url: or start: to tell how to reach the target")
        if self.demo is None and (self.args or self.feature_timeout is not None):
            raise ValueError("args: and feature_timeout: are flags of the demo: use them with demo: fraud")
        if self.demo != "fraud" and self.feature_timeout is not None:
            raise ValueError("feature_timeout: is a flag of the fraud demo: use it with demo: fraud")
        if self.demo != "llm" and self.canary is not None:
            raise ValueError("canary: is a flag of the generative demo: use it with demo: llm")
        return self


class ContainerSpec(Strict):
    """A dependency the harness runs in a Docker container (host network), on a free port.

    `{port}`, `{python}` and `{deps[NAME]}` in the command and env are filled in, as for
    `start:`. `volumes` maps a host path to a container path, read-only unless the
    container path ends in `:rw`. `host_python: true` also mounts the host's interpreter,
    its packages and this project read-only at the same paths, so a bare image (busybox)
    can run `{python}`. The container is labelled `aftershock.run`, `aftershock.scenario`
    and `aftershock.dependency`; container faults pick it by those labels or by `name`.
    """

    image: str
    command: list[str] | None = Field(default=None, min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    volumes: dict[str, str] = Field(default_factory=dict)
    name: str | None = None  # default: aftershock-<dependency>-<run id>
    host_python: bool = False
    ready: ReadyCheck = Field(default_factory=ReadyCheck)
    docker_host: str | None = None  # default: DOCKER_HOST or the local socket

    @field_validator("name")
    @classmethod
    def _valid_name(cls, v: str | None) -> str | None:
        return v if v is None else _check_name(v)

    @field_validator("volumes")
    @classmethod
    def _absolute_paths(cls, v: dict[str, str]) -> dict[str, str]:
        for host, inside in v.items():
            path = inside.removesuffix(":rw").removesuffix(":ro")
            if not host.startswith("/") or not path.startswith("/"):
                raise ValueError(f"volume {host!r}: {inside!r}: both paths must be absolute (host path: container path[:rw])")
        return v


class DependencySpec(Strict):
    """A dependency of the target, routed through the fault proxy.

    `upstream: demo` is the demo's feature store; otherwise host:port of a running
    service, `start:` to have the harness start it, or `container:` to have the harness
    run it in a container. `upstream: demo` with `container:` runs the demo's feature
    store in that container (its command and the host's interpreter are filled in).
    """

    upstream: str | None = None
    start: StartCommand | None = None
    container: ContainerSpec | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DependencySpec:
        if self.upstream == "demo" and self.container is not None:
            if self.container.command is not None:
                raise ValueError("upstream: demo runs the demo's feature store: leave out container.command")
            return self
        if sum(w is not None for w in (self.upstream, self.start, self.container)) != 1:
            raise ValueError("say exactly one of upstream: (host:port or 'demo'), start: or container:")
        if self.container is not None and self.container.command is None:
            raise ValueError("container.command is required: the command that serves on {port}")
        return self


class JobReady(Strict):
    """When a job counts as started: the run's clock waits for it, so a fault at `8s`
    meets a job that is really working (a cold `import torch` can take seconds)."""

    file: str  # the job has written this file (placeholders as in `command`)
    contains: str | None = None  # ... and it holds this text (e.g. '"event": "step"')
    timeout: Duration = 120.0


class Job(Strict):
    """A process that runs beside the target (e.g. a training job), started after it.

    `{run_dir}`, `{target}` and `{deps[NAME]}` in the command and env are filled in;
    faults reach it by its name (e.g. `process: trainer`).
    """

    command: list[str] = Field(min_length=1)
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    ready: JobReady | None = None


class DataSpec(Strict):
    dataset: str = "demo"  # "demo" or a path to NPZ/CSV/JSONL/Parquet
    labels: bool = True
    label_field: str = "label"
    batch_size: int = Field(default=1, ge=1, le=10_000)


class LoadSpec(Strict):
    users: int = Field(default=10, ge=1, le=100_000)
    # open loop: this many requests/s (40, 40/s or 2400/m), each of the `users` paced at
    # rate/users (a locustfile's users too: the pacing replaces their wait_time); None:
    # closed loop, each user sends its next request when its last one ends
    rate: Rate = None
    spawn_rate: float | None = Field(default=None, gt=0, le=100_000)
    duration: Duration = 60.0
    # load sent before the clock starts and never measured: a server's cold start (JIT,
    # first-inference compilation, caches) is not its steady state
    warmup: Duration = 0.0
    request_timeout: Duration = Field(default=5.0, gt=0)
    window: Duration = 1.0
    processes: int = Field(default=1, ge=1, le=64)
    data: DataSpec = Field(default_factory=DataSpec)
    locustfile: str | None = None
    # generative targets (protocol openai-*): prompts instead of `data`
    prompts: str | None = None  # JSONL of {"messages": [...]} or {"prompt": ...}; default: generated from `seed`
    stream: bool = True  # read answers as SSE streams (TTFT, ITL); false: whole answers
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    stall_timeout: Duration | None = None  # a stream silent this long fails as stream_stalled; default request_timeout

    @field_validator("rate")
    @classmethod
    def _rate_range(cls, v: float | None) -> float | None:
        if v is not None and v > 100_000:
            raise ValueError("rate must be at most 100000 requests per second, e.g. 40/s")
        return v

    @field_validator("window")
    @classmethod
    def _window_range(cls, v: float) -> float:
        if not 0.1 <= v <= 60:
            raise ValueError("window must be between 100ms and 60s")
        return v

    @field_validator("duration")
    @classmethod
    def _duration_positive(cls, v: float) -> float:
        if v <= 0:
            raise ValueError("duration must be more than 0s")
        return v

    @field_validator("warmup")
    @classmethod
    def _warmup_range(cls, v: float) -> float:
        if not 0 <= v <= 600:
            raise ValueError("warmup must be between 0s and 10m")
        return v


class IngestSpec(Strict):
    """An event stream the harness produces into the target's ingestion endpoint, beside the
    load: rows of `load.data`'s dataset, each with an `event_id` and an `event_time`
    (README, Pipeline faults). It runs over the load's duration, at most `max_events`."""

    rate: Rate = Field(20.0, description="new events per second, e.g. 20/s")
    max_events: int = Field(5000, ge=1, le=1_000_000, description="new events at most, over the run")
    path: str = Field("/v2/models/{model}/ingest", description='POST {"rows": [event, ...]} here ({model}: target.model)')
    readback: str = Field("/v2/models/{model}/events",
                          description='GET ?after=N answers {"rows": n, "stored": [[event_id, stored_at], ...]}')
    settle: Duration = Field(1.0, description="after the last event, wait this long before the final read-back")

    @field_validator("rate")
    @classmethod
    def _rate_given(cls, v: float | None) -> float:
        if v is None or v > 1000:
            raise ValueError("rate must be a number of events per second up to 1000/s, e.g. 20/s")
        return v

    @field_validator("path", "readback")
    @classmethod
    def _a_path(cls, v: str) -> str:
        if not v.startswith("/") or "://" in v:
            raise ValueError(f"{v!r} is not a path on the target: write e.g. /v2/models/{{model}}/ingest")
        return v


class FaultEntry(BaseModel):
    """Fields every timeline fault has; the family's own params are the extra keys."""

    model_config = ConfigDict(extra="allow")

    name: Name
    type: str
    at: Duration
    duration: Duration

    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class Timeline(Strict):
    baseline: Duration = 0.0
    faults: list[FaultEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)
    attacks: list[FaultEntry] = Field(default_factory=list, max_length=MAX_ENTRIES)  # same fields; params are the attack's


class SloSpec(Strict):
    name: str
    expect: str
    weight: float = Field(default=1.0, gt=0, le=1e6)  # its share of the resilience score


class Safety(Strict):
    allowed_hosts: list[str] = Field(default_factory=list)


class Output(Strict):
    dir: str = "reports"


class ToxiproxySpec(Strict):
    url: str


class Scenario(Strict):
    name: Name
    description: str = ""
    seed: int = Field(0, ge=0, le=2**32 - 1)  # the range every RNG the run seeds accepts
    target: Target
    dependencies: dict[str, DependencySpec] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    jobs: dict[str, Job] = Field(default_factory=dict, max_length=MAX_ENTRIES)
    load: LoadSpec = Field(default_factory=LoadSpec)
    ingest: IngestSpec | None = None
    timeline: Timeline = Field(default_factory=Timeline)
    slos: list[SloSpec] = Field(default_factory=list, max_length=MAX_ENTRIES)
    stop_when: list[str] = Field(default_factory=list, max_length=MAX_ENTRIES)
    probes: list[dict[str, Any]] = Field(default_factory=list, max_length=MAX_ENTRIES)  # checked per type by the loader
    settings: SloSettings = Field(default_factory=SloSettings)
    safety: Safety = Field(default_factory=Safety)
    output: Output = Field(default_factory=Output)
    toxiproxy: ToxiproxySpec | None = None

    @field_validator("dependencies", "jobs")
    @classmethod
    def _dep_names(cls, v: dict[str, Any]) -> dict[str, Any]:
        for name in v:
            _check_name(name)
        return v

    def scaled(self, factor: float) -> Scenario:
        """A copy with every timeline and load duration scaled (for --quick)."""
        data = self.model_copy(deep=True)
        data.load.duration *= factor
        data.timeline.baseline *= factor
        for f in [*data.timeline.faults, *data.timeline.attacks]:
            f.at *= factor
            f.duration *= factor
        return data

