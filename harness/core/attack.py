"""The Attack interface: what every attack family implements, and what it is given.

An attack is a timeline entry with a `type:` (e.g. `evasion.hopskipjump`). The runner
builds it from its validated params, then calls `run(ctx, deadline)` in a worker
thread; the attack talks to the live target only through `ctx` (base URL, protocol
adapter, model name) and returns named metrics that SLOs can refer to
(`robust_accuracy`, `attack_success_rate`, `poison_rejection_rate`, ...).
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, WithJsonSchema

from harness.core.fault import UserError
from harness.core.protocols import ProtocolAdapter
from harness.core.registry import ATTACKS

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*/\s*(s|sec|second|m|min|minute)\s*$")


def parse_rate(value: Any) -> float | None:
    """Requests per second from `50/s`, `600/m` or a bare number (per second); None = unlimited."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError("expected a rate like 50/s or 600/m, got a boolean")  # noqa: TRY004 (pydantic wants ValueError)
    if isinstance(value, (int, float)):
        rate = float(value)
    elif isinstance(value, str):
        m = _RATE.match(value)
        if not m:
            raise ValueError(f"invalid rate {value!r}: write requests per time, e.g. 50/s or 600/m")
        rate = float(m.group(1)) / (1.0 if m.group(2).startswith("s") else 60.0)
    else:
        raise ValueError(f"expected a rate like 50/s, got {type(value).__name__}")  # noqa: TRY004
    if rate <= 0:
        raise ValueError("rate must be more than 0 requests per second")
    return rate


_RATE_SCHEMA = {  # for `aftershock schema`: the forms parse_rate accepts
    "anyOf": [{"type": "number", "exclusiveMinimum": 0}, {"type": "string", "pattern": _RATE.pattern}, {"type": "null"}]
}
Rate = Annotated[float | None, BeforeValidator(parse_rate), WithJsonSchema(_RATE_SCHEMA, mode="validation")]


class AttackParams(BaseModel):
    """Params every attack has, besides the timeline's name/type/at/duration."""

    model_config = ConfigDict(extra="forbid")

    samples: int = Field(20, ge=1, le=100_000, description="dataset rows the attack works on")
    max_queries: int = Field(
        2000, ge=1, description="model evaluations (rows sent to the endpoint) at most"
    )
    rate_limit: Rate = Field(None, description="endpoint requests per second at most, e.g. 50/s")
    batch_size: int = Field(64, ge=1, le=4096, description="rows per request at most")
    input: str | None = Field(
        None, description="the dataset array the attack perturbs (default: the float 2-D one)"
    )
    request_timeout: float = Field(10.0, gt=0, description="seconds per endpoint request")


@dataclass
class AttackContext:
    """Everything an attack may use. Attacks never import the runner."""

    base_url: str  # e.g. http://127.0.0.1:8080
    adapter: ProtocolAdapter
    model: str
    dataset: dict[str, np.ndarray]  # named input arrays sharing their first axis (rows)
    labels: np.ndarray | None = None  # true class per row, where known
    seed: int = 0
    journal: Callable[..., None] = lambda event, **fields: None
    workdir: str | None = None  # where an attack may write files (defaults to a temp dir)


@dataclass
class AttackResult:
    """Named figures (what SLOs read) and free-form details (for the report)."""

    metrics: dict[str, float]
    details: dict[str, Any] = field(default_factory=dict)


class Attack(ABC):
    type: ClassVar[str]  # the YAML `type:`
    Params: ClassVar[type[AttackParams]] = AttackParams

    def __init__(self, name: str, params: AttackParams) -> None:
        self.name = name
        self.params = params

    def prepare(self, ctx: AttackContext) -> None:
        """One-time set-up the runner calls before the run's clock starts (blocking, in a
        worker thread): a cost paid here is not taken out of the attack's own window."""

    @abstractmethod
    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        """Attack until done, out of budget, or `deadline` (a time.monotonic() value).

        Blocking: the runner calls it in a worker thread. It stops by itself at the
        deadline and returns what it measured so far.
        """


def seconds_left(deadline: float) -> float:
    return deadline - time.monotonic()


def attacked_input(ctx: AttackContext, name: str | None) -> str:
    """Name of the array to perturb: `name`, or the dataset's only float 2-D array."""
    if name is not None:
        if name not in ctx.dataset:
            raise UserError(
                f"input {name!r} is not in the dataset; it has {', '.join(ctx.dataset)}"
            )
        return name
    floats = [k for k, a in ctx.dataset.items() if a.ndim == 2 and a.dtype.kind == "f"]
    if len(floats) != 1:
        raise UserError(
            "cannot tell which dataset array to attack; set `input:` to one of "
            + ", ".join(ctx.dataset)
        )
    return floats[0]


def require_labels(ctx: AttackContext, attack: str) -> np.ndarray:
    if ctx.labels is None:
        raise UserError(f"{attack} needs labelled data: give the load a dataset with labels")
    return np.asarray(ctx.labels)


def pick_rows(n_rows: int, count: int, seed: int) -> np.ndarray:
    """`count` distinct row indices (all rows, shuffled, when there are fewer)."""
    rng = np.random.default_rng(seed)
    return rng.permutation(n_rows)[: min(count, n_rows)]


# ART 1.20 attacks that fail under numpy 2 (or are image-only in a way tabular data cannot use).
REFUSED = {
    "evasion.geoda": "GeoDA in ART 1.20 breaks under numpy 2 (it uses removed numpy APIs)",
    "evasion.pixel": "PixelAttack in ART 1.20 breaks under numpy 2",
    "evasion.threshold": "ThresholdAttack in ART 1.20 breaks under numpy 2",
    "evasion.laser": "LaserAttack in ART 1.20 breaks under numpy 2 (and is image-only)",
}
REFUSED_ADVICE = "use evasion.hopskipjump or evasion.boundary (labels only), or evasion.square or evasion.simba (scores)"


def attack_types() -> dict[str, type[Attack]]:
    """Every attack type that can be imported here (the ml extra brings the built-in ones)."""
    return ATTACKS.types()


def attack_class(type_name: str) -> type[Attack]:
    """The class registered as `type_name`; UserError (with a suggestion) if none is."""
    if type_name in REFUSED:
        raise UserError(f"attack type {type_name!r} is not supported: {REFUSED[type_name]}; {REFUSED_ADVICE}")
    return ATTACKS.get(type_name)


def make_attack(name: str, type_name: str, params: dict[str, Any]) -> Attack:
    """Build an attack from a timeline entry's extra keys; UserError on bad params."""
    cls = attack_class(type_name)
    try:
        validated = cls.Params(**params)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '(params)'}: {e['msg']}" for e in exc.errors()
        )
        raise UserError(f"attack {name!r} ({type_name}): {problems}") from None
    return cls(name, validated)
