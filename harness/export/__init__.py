"""Export a run to the monitoring stack people already run: Prometheus (scrape and
Pushgateway) and OpenTelemetry (OTLP/HTTP). Everything is fed from the run's journal
(`Journal.subscribe`); the CLI starts the exporters and closes them after the run.

Modules: `run_state` (the live state folded from journal events), `prometheus`, `otlp`,
and `grafana-dashboard.json` (a dashboard over the Prometheus metrics).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.export.run_state import RunState
from harness.core.fault import UserError
from harness.engine.journal import Listener
from harness.core.safety import check_host_allowed

GRAFANA_DASHBOARD = Path(__file__).with_name("grafana-dashboard.json")
FIX = "use a loopback address, or add the host to safety.allowed_hosts / --allow-host"


def metrics_address(value: str) -> tuple[str, int]:
    """`--metrics-port` as (host, port): `PORT` binds 127.0.0.1, `HOST:PORT` binds HOST."""
    host, _, port = value.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    if not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UserError(f"--metrics-port {value!r}: write a port (9464) or host:port (127.0.0.1:9464)")
    return host, int(port)


@dataclass
class RunExporters:
    """The exporters a run was asked for; `listeners` go to the runner's journal."""

    state: RunState
    pushgateway: str | None = None
    server: Any = None  # harness.export.prometheus.MetricsServer
    otlp: Any = None  # harness.export.otlp.OtlpExporter
    listeners: list[Listener] = field(default_factory=list)

    @classmethod
    def start(cls, scenario: Any, slos: list[Any], allowed_hosts: list[str], metrics_port: str | None = None,
              pushgateway: str | None = None, otlp_endpoint: str | None = None) -> RunExporters:
        """Check every address (loopback unless allowed), then start what was asked; UserError if refused."""
        allowed = [*allowed_hosts, *scenario.safety.allowed_hosts]
        bind = metrics_address(metrics_port) if metrics_port is not None else None
        if bind is not None:
            check_host_allowed(bind[0], allowed, "--metrics-port", FIX)
        if pushgateway is not None:
            check_host_allowed(pushgateway, allowed, "--pushgateway", FIX)
        if otlp_endpoint is not None:
            check_host_allowed(otlp_endpoint, allowed, "--otlp-endpoint", FIX)
        exporters = cls(RunState(scenario, slos), pushgateway)
        exporters.listeners.append(exporters.state)
        exporters.state.start_judging()
        if otlp_endpoint is not None:  # first: a missing extra must not leave a server behind
            from harness.export.otlp import OtlpExporter

            exporters.otlp = OtlpExporter(exporters.state, otlp_endpoint)
            exporters.listeners.append(exporters.otlp)
        if bind is not None:
            from harness.export.prometheus import MetricsServer

            try:
                exporters.server = MetricsServer(exporters.state, *bind)
            except OSError as exc:
                raise UserError(f"--metrics-port {metrics_port}: cannot listen there ({exc.strerror}): "
                                "pick a free port") from None
        return exporters

    def close(self) -> list[str]:
        """Push the final verdicts, flush OTLP, stop serving; the problems met, one line each."""
        problems = []
        self.state.close()
        if self.pushgateway is not None:
            from harness.export.prometheus import push_final

            try:
                push_final(self.state, self.pushgateway)
            except OSError as exc:
                problems.append(f"could not push the verdicts to the Pushgateway {self.pushgateway}: {exc}")
        if self.otlp is not None:
            problems += self.otlp.close()
        if self.server is not None:
            self.server.close()
        return problems
