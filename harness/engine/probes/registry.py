"""Probe types by name: the built-in ones, plus third-party ones from the
`aftershock.probes` entry-point group."""

from __future__ import annotations

from functools import cache
from importlib.metadata import entry_points
from typing import Any

from pydantic import ValidationError

from harness.core.fault import UserError
from harness.core.probe import Probe, ProbeConfig
from harness.engine.probes.command import CommandProbe
from harness.engine.probes.file import FileProbe
from harness.engine.probes.http import HttpProbe
from harness.engine.probes.prometheus import PrometheusProbe
from harness.engine.probes.webhook import WebhookProbe


@cache
def probe_types() -> dict[str, type[Probe]]:
    found: dict[str, type[Probe]] = {
        p.type: p for p in (HttpProbe, PrometheusProbe, CommandProbe, FileProbe, WebhookProbe)
    }
    for ep in entry_points(group="aftershock.probes"):
        cls = ep.load()
        found[getattr(cls, "type", ep.name)] = cls
    return found


def parse_probe_config(data: dict[str, Any]) -> ProbeConfig:
    """Validate one probe's YAML mapping into its type's config; UserError names the problem."""
    if not isinstance(data, dict):
        raise UserError(f"a probe must be a mapping with name and type, got {type(data).__name__}")
    kind = data.get("type")
    types = probe_types()
    if kind not in types:
        raise UserError(
            f"probe {data.get('name', '?')!r}: unknown type {kind!r}; known types: {', '.join(sorted(types))}"
        )
    try:
        return types[kind].Config.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(map(str, err['loc'])) or 'probe'}: {err['msg']}" for err in e.errors()
        )
        raise UserError(f"probe {data.get('name', '?')!r}: {problems}") from None


def build_probe(config: ProbeConfig | dict[str, Any]) -> Probe:
    if isinstance(config, dict):
        config = parse_probe_config(config)
    return probe_types()[config.type](config)
