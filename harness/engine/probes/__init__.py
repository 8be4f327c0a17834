"""Probes: http, prometheus, command, file and webhook readings sampled into each window.

The engine finds them, built-in or third-party, through the registry (`aftershock.probes`).
"""

from harness.core.probe import (
    Probe,
    ProbeConfig,
    ProbeMode,
    build_probe,
    parse_probe_config,
    probe_types,
)

__all__ = ["Probe", "ProbeConfig", "ProbeMode", "build_probe", "parse_probe_config", "probe_types"]
