"""Probes: http, prometheus, command and file readings sampled into each window."""

from harness.probes.base import Probe, ProbeConfig, ProbeMode
from harness.probes.registry import build_probe, parse_probe_config, probe_types

__all__ = ["Probe", "ProbeConfig", "ProbeMode", "build_probe", "parse_probe_config", "probe_types"]
