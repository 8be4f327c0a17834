"""Prometheus exposition of a run (`--metrics-port`) and the final verdicts' push (`--pushgateway`).

A custom collector renders `RunState` at each scrape, so what Prometheus stores is what
the journal said at that moment, with no second copy to keep in step. Every series
carries the scenario's name as the `scenario` label. A figure that is not measured is
NaN, never 0.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from harness.export.run_state import PHASES, RunState

PUSH_JOB = "aftershock"

# name -> help; the README's table and the Grafana dashboard test read this
LIVE_METRICS = {
    "aftershock_window_start_timestamp_seconds": "start of the window the aftershock_window_* series describe",
    "aftershock_window_latency_seconds": "latency percentile of successful requests in the window (label quantile)",
    "aftershock_window_error_ratio": "failed / all requests in the window",
    "aftershock_window_failures": "failed requests in the window by failure kind (label kind)",
    "aftershock_window_throughput_requests_per_second": "requests per second in the window",
    "aftershock_window_accuracy_ratio": "correct / labelled predictions in the window",
    "aftershock_window_fallback_ratio": "responses served by a fallback / flagged responses in the window",
    "aftershock_requests_total": "requests measured so far",
    "aftershock_failures_total": "failed requests so far by failure kind (label kind)",
    "aftershock_fault_active": "1 while a fault (label fault, type) acts",
    "aftershock_attack_active": "1 while an attack (label attack, type) runs",
    "aftershock_run_phase": "1 for the run's current phase (label phase: starting, baseline, fault, attack, between faults, recovery, load, teardown, ended)",
}
SLO_METRICS = {
    "aftershock_slo_value": "an SLO's measured value so far, in its unit (labels slo, scope, unit)",
    "aftershock_slo_threshold": "an SLO's threshold, in its unit",
    "aftershock_slo_passed": "1 the SLO holds (so far), 0 it fails, NaN not measured",
    "aftershock_slo_final": "1 once the SLO's verdict is the run's final one",
    "aftershock_run_exit_code": "the run's exit code (0 passed, 1 an SLO failed, 3 aborted, ...); NaN while running",
}
METRIC_NAMES = tuple(LIVE_METRICS) + tuple(SLO_METRICS)


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


class RunCollector:
    """Renders a `RunState` as Prometheus metric families; `final_only`: the SLO and exit series."""

    def __init__(self, state: RunState, final_only: bool = False, clock: Callable[[], float] = time.time) -> None:
        self.state = state
        self.final_only = final_only
        self.clock = clock  # the phase is judged at scrape time

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        s = self.state
        name = [s.name]

        def gauge(metric: str, labels: Iterable[str] = ()) -> Any:
            return GaugeMetricFamily(metric, {**LIVE_METRICS, **SLO_METRICS}[metric], labels=["scenario", *labels])

        with s.lock:
            if not self.final_only:
                yield from self._live(gauge, CounterMetricFamily)
            value, threshold = gauge("aftershock_slo_value", ["slo", "scope", "unit"]), gauge("aftershock_slo_threshold", ["slo"])
            passed, final = gauge("aftershock_slo_passed", ["slo"]), gauge("aftershock_slo_final", ["slo"])
            for slo in s.slos.values():
                value.add_metric([*name, slo.name, slo.scope, slo.unit], _nan(slo.value))
                threshold.add_metric([*name, slo.name], _nan(slo.threshold))
                passed.add_metric([*name, slo.name], math.nan if slo.passed is None else float(slo.passed))
                final.add_metric([*name, slo.name], float(slo.final))
            exit_code = gauge("aftershock_run_exit_code")
            exit_code.add_metric(name, _nan(s.exit_code))
            yield from (value, threshold, passed, final, exit_code)

    def _live(self, gauge: Any, counter_family: Any) -> Iterator[Any]:
        s = self.state
        name = [s.name]
        w, slis = s.settled, s.settled_slis
        start = gauge("aftershock_window_start_timestamp_seconds")
        latency = gauge("aftershock_window_latency_seconds", ["quantile"])
        errors, throughput = gauge("aftershock_window_error_ratio"), gauge("aftershock_window_throughput_requests_per_second")
        accuracy, fallback = gauge("aftershock_window_accuracy_ratio"), gauge("aftershock_window_fallback_ratio")
        failures = gauge("aftershock_window_failures", ["kind"])
        if w is not None:
            start.add_metric(name, w.start)
            for q, key in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms")):
                ms = slis.get(key)
                latency.add_metric([*name, q], math.nan if ms is None else ms / 1000)
            errors.add_metric(name, _nan(slis.get("error_rate")))
            throughput.add_metric(name, w.requests / w.size)
            accuracy.add_metric(name, _nan(slis.get("accuracy")))
            fallback.add_metric(name, _nan(slis.get("fallback_rate")))
            for kind, n in w.failures.items():
                failures.add_metric([*name, kind], n)
        yield from (start, latency, errors, failures, throughput, accuracy, fallback)
        requests = counter_family("aftershock_requests", LIVE_METRICS["aftershock_requests_total"], labels=["scenario"])
        requests.add_metric(name, s.requests)
        failed = counter_family("aftershock_failures", LIVE_METRICS["aftershock_failures_total"], labels=["scenario", "kind"])
        for kind, n in s.failures.items():
            failed.add_metric([*name, kind], n)
        yield from (requests, failed)
        faults, attacks = gauge("aftershock_fault_active", ["fault", "type"]), gauge("aftershock_attack_active", ["attack", "type"])
        active = {(a.kind, a.name) for a in s.active_spans()}
        for entry in s.scenario.timeline.faults:
            faults.add_metric([*name, entry.name, entry.type], float(("fault", entry.name) in active))
        for entry in s.scenario.timeline.attacks:
            attacks.add_metric([*name, entry.name, entry.type], float(("attack", entry.name) in active))
        yield from (faults, attacks)
        phase = gauge("aftershock_run_phase", ["phase"])
        now = s.phase(self.clock())
        for p in PHASES:
            phase.add_metric([*name, p], float(p == now))
        yield phase


class MetricsServer:
    """Serves the run's metrics on http://HOST:PORT/metrics while it lives."""

    def __init__(self, state: RunState, host: str, port: int) -> None:
        import prometheus_client

        self.registry = prometheus_client.CollectorRegistry(auto_describe=False)
        self.registry.register(RunCollector(state))
        self._server, self._thread = prometheus_client.start_http_server(port, host, self.registry)
        self.port = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def push_final(state: RunState, gateway: str, timeout: float = 10.0) -> None:
    """Push the final SLO values, verdicts and exit code to a Pushgateway, grouped by scenario
    (each run replaces the scenario's previous push)."""
    import prometheus_client

    registry = prometheus_client.CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(state, final_only=True))
    prometheus_client.push_to_gateway(gateway, PUSH_JOB, registry, grouping_key={"scenario": state.name},
                                      timeout=timeout)
