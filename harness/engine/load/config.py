"""LoadConfig: what load to drive, how hard, against what, and how to measure it.

Validated in the harness process (pydantic, from YAML); handed to the Locust child as
JSON, where the same model is read back.
"""

from __future__ import annotations

from functools import cache
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.fault import UserError
from harness.core.units import Duration


@cache
def is_generative(protocol: str) -> bool:
    """The protocol's adapter generates text (openai-chat, openai-completions, or a third
    party's subclass of theirs): its load sends prompts, not dataset batches."""
    from harness.core.protocols.openai import OpenAIAdapter
    from harness.core.registry import PROTOCOLS

    try:
        return issubclass(PROTOCOLS.get(protocol), OpenAIAdapter)
    except UserError:  # unknown protocol: reported where the adapter is made
        return False


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ConstantShape(_Strict):
    """`users` users for the whole `duration` (spawned at `spawn_rate`)."""

    kind: Literal["constant"] = "constant"


class RampShape(_Strict):
    """Linear ramp from start_users to end_users over ramp_time, then hold."""

    kind: Literal["ramp"] = "ramp"
    start_users: int = Field(0, ge=0)
    end_users: int | None = Field(None, ge=0)  # default: LoadConfig.users
    ramp_time: Duration | None = None  # default: the whole duration


class StepShape(_Strict):
    """Add step_users every step_time, up to max_users."""

    kind: Literal["step"] = "step"
    step_users: int = Field(ge=1)
    step_time: Duration = Field(gt=0)
    max_users: int | None = Field(None, ge=1)  # default: LoadConfig.users


class SpikeShape(_Strict):
    """base_users, jumping to spike_users at `at` for spike_duration."""

    kind: Literal["spike"] = "spike"
    base_users: int = Field(ge=0)
    spike_users: int = Field(ge=0)
    at: Duration
    spike_duration: Duration = Field(gt=0)


class ArrivalRateShape(_Strict):
    """A constant arrival rate of `rate` requests/s, paced by a pool of LoadConfig.users users.

    Each user paces itself at rate/users requests/s (Locust's constant_throughput), so the
    rate holds while latency stays under users/rate seconds; beyond that, the pool is the
    limit (raise `users`).
    """

    kind: Literal["arrival_rate"] = "arrival_rate"
    rate: float = Field(gt=0)


class CustomShape(_Strict):
    """A user's LoadTestShape class: "package.module:Class" or "path/to/file.py:Class"."""

    kind: Literal["custom"] = "custom"
    class_path: str = Field(pattern=r"^.+:[A-Za-z_][A-Za-z0-9_]*$")


Shape = Annotated[
    ConstantShape | RampShape | StepShape | SpikeShape | ArrivalRateShape | CustomShape,
    Field(discriminator="kind"),
]


class LoadConfig(_Strict):
    target_url: str  # base URL, e.g. http://127.0.0.1:8080
    protocol: str = "oip-v2"
    protocol_options: dict[str, Any] = Field(default_factory=dict)
    model: str = "model"
    # payloads (harness.engine.datasets)
    dataset: str | None = None
    label: str | None = "label"
    features: list[str] | None = None
    stack_as: str | None = None
    batch_size: int = Field(1, ge=1)
    # generative targets (protocol openai-*): prompts instead of a dataset
    prompts: str | None = None  # JSONL of prompts (harness.engine.load.prompts); None: generated
    seed: int = 0  # for generated prompts
    stream: bool | None = None  # default: stream (SSE) for generative protocols
    max_tokens: int | None = Field(None, ge=1)
    stall_timeout: Duration | None = Field(None, gt=0)  # no data this long mid-stream: stream_stalled; default request_timeout
    # how hard
    users: int = Field(1, ge=1)
    spawn_rate: float | None = Field(None, gt=0)  # users/s; default: all at once
    duration: Duration = Field(gt=0)
    shape: Shape = Field(default_factory=ConstantShape)
    think_time: Duration = 0.0  # wait between one user's requests
    # scale
    processes: int = Field(1, ge=1)  # Locust --processes
    expect_workers: int = Field(0, ge=0)  # > 0: distributed; the master waits for this many
    master_host: str = "127.0.0.1"  # where the master listens for workers
    master_port: int = Field(0, ge=0, le=65535)  # 0: a free port
    expect_workers_timeout: Duration = 60.0
    # measurement
    request_timeout: Duration = Field(10.0, gt=0)
    window: Duration = Field(1.0, ge=0.1, le=60)
    stop_timeout: Duration | None = None  # let in-flight tasks finish; default request_timeout
    # bring your own
    locustfile: str | None = None
    locust_args: list[str] = Field(default_factory=list)  # passed through to locust

    @model_validator(mode="after")
    def _consistent(self) -> LoadConfig:
        if self.processes > 1 and self.expect_workers:
            raise ValueError(
                "use either processes (one machine) or expect_workers (distributed), not both"
            )
        if self.locustfile is None and self.dataset is None and not self.generative:
            raise ValueError("set `dataset` (the payloads to send) or bring your own `locustfile`")
        return self

    @property
    def generative(self) -> bool:
        """The target generates text (an OpenAI-compatible protocol): prompts, not a dataset."""
        return is_generative(self.protocol)

    @property
    def streams(self) -> bool:
        return self.generative and self.stream is not False

    @property
    def stall_after(self) -> float:
        return self.stall_timeout if self.stall_timeout is not None else self.request_timeout

    @property
    def graceful_stop(self) -> float:
        return self.stop_timeout if self.stop_timeout is not None else self.request_timeout
