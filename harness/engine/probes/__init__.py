"""Probes: http, prometheus, command and file readings sampled into each window."""

from harness.core.probe import Probe, ProbeConfig, ProbeMode
from harness.engine.probes.registry import build_probe, parse_probe_config, probe_types

__all__ = ["Probe", "ProbeConfig", "ProbeMode", "build_probe", "parse_probe_config", "probe_types"]
