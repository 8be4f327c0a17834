"""The Probe interface: a named value sampled on a schedule and put into each window.

A probe never raises into the runner: `sample()` returns None on any failure and keeps
the error in `last_error` (and counts it), so a flaky probe cannot fail a run.
Modes follow LitmusChaos: sampled once at the `start` or `end` of the run, `continuous`ly
every `interval`, or only while a fault is active (`on_fault`).
"""

from __future__ import annotations

import math
import re
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

import jmespath
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from harness.core.fault import UserError
from harness.core.registry import PROBES
from harness.core.units import Duration

# Same shape as a name in the SLO language, so `probe.<name>` always parses.
PROBE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:[.:-][A-Za-z0-9_]+)*")
ProbeMode = Literal["start", "end", "continuous", "on_fault"]


class ProbeConfig(BaseModel):
    """Fields every probe has; each probe type adds its own. Unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")

    name: str
    type: str
    mode: ProbeMode = "continuous"
    interval: Duration = Field(1.0, gt=0)  # between samples in continuous / on_fault mode
    timeout: Duration = Field(2.0, gt=0)  # bound on one sample

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not PROBE_NAME.fullmatch(v):
            raise ValueError(
                f"invalid probe name {v!r}: use letters, digits, _ and - (e.g. drift_alert)"
            )
        return v


def check_http_url(url: str, example: str) -> str:
    """Validator: an http(s) URL with a host; the error shows `example` to write instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"invalid URL {url!r}: write e.g. {example}")
    return url


def json_value(doc: Any, query: str) -> float:
    """The number that JMESPath `query` finds in a parsed JSON document (booleans read as 1/0)."""
    found = jmespath.search(query, doc)
    if found is None:
        raise LookupError(f"JSON query {query!r} matched nothing")
    return to_number(found, f"value at {query!r}")


def to_number(value: Any, what: str) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            pass
    raise ValueError(f"{what} is not a number: {value!r}")


class Probe(ABC):
    type: ClassVar[str]
    Config: ClassVar[type[ProbeConfig]]

    def __init__(self, config: ProbeConfig) -> None:
        self.config = config
        self.last_value: float | None = None
        self.last_error: str | None = None
        self.error_count = 0

    @property
    def name(self) -> str:
        return self.config.name

    def sample(self) -> float | None:
        """One reading, or None (the error is in `last_error`). Never raises an Exception:
        a probe must not break the run."""
        try:
            value = self.read()
            if not math.isfinite(value):
                raise ValueError(f"value is not finite: {value}")
        except Exception as e:  # noqa: BLE001
            self.last_error = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
            self.error_count += 1
            self.last_value = None
            return None
        self.last_error = None
        self.last_value = value
        return value

    @abstractmethod
    def read(self) -> float:
        """Take one reading within `config.timeout`; raise on any failure."""

    @classmethod
    def addresses_of(cls, config: Any) -> list[str]:
        """Network addresses (URLs or host:port) a probe with `config` contacts or listens on,
        for the loopback-only safety check; a classmethod, so validation starts nothing."""
        return []

    def hosts(self) -> list[str]:
        """This probe's addresses (see `addresses_of`), with its placeholders filled in."""
        return self.addresses_of(self.config)

    def close(self) -> None:
        """Release connections; the runner calls it at the end of the run."""


def probe_types() -> dict[str, type[Probe]]:
    """Every probe type, built-in and third-party, by YAML name."""
    return PROBES.types()


def parse_probe_config(data: dict[str, Any]) -> ProbeConfig:
    """Validate one probe's YAML mapping into its type's config; UserError names the problem."""
    if not isinstance(data, dict):
        raise UserError(f"a probe must be a mapping with name and type, got {type(data).__name__}")
    kind = data.get("type")
    if kind not in PROBES:
        raise UserError(
            f"probe {data.get('name', '?')!r}: unknown type {kind!r}; known types: {', '.join(PROBES.names())}"
        )
    cls = PROBES.get(kind)
    try:
        return cls.Config.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'probe'}: {err['msg']}" for err in e.errors()
        )
        raise UserError(f"probe {data.get('name', '?')!r}: {problems}") from None


def build_probe(config: ProbeConfig | dict[str, Any]) -> Probe:
    if isinstance(config, dict):
        config = parse_probe_config(config)
    return PROBES.get(config.type)(config)
