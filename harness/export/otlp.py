"""OpenTelemetry export of a run (`--otlp-endpoint`, or OTEL_EXPORTER_OTLP_ENDPOINT): a trace and metrics.

The trace: the run is the root span; each fault and attack is a child span that starts
and ends at its real injection and revert (times from the journal, not from when the
event reached us); each SLO verdict is an event on the root span. The metrics are the
live SLIs of `RunState`, observed at each export. Both go through the official SDK
and its OTLP/HTTP protobuf exporter, to `ENDPOINT/v1/traces` and `ENDPOINT/v1/metrics`.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

from harness.export.run_state import RunState
from harness.core.extras import import_extra

FEATURE = "--otlp-endpoint"
EXPORT_INTERVAL_MS = 5000  # metrics; OTEL_METRIC_EXPORT_INTERVAL overrides
EXPORT_TIMEOUT_S = 5.0  # per export, retries included: bounds the wait for a dead endpoint at the end
Primitive = str | bool | int | float


def attributes(prefix: str, values: Mapping[str, Any]) -> dict[str, Primitive | list[Any]]:
    """`values` as span attributes named `prefix.key`: OTel takes primitives and flat lists
    of one type, so anything else (a mapping, a mixed list) goes as its JSON text."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, Primitive) or (
            isinstance(value, list) and value and len({type(v) for v in value}) == 1 and isinstance(value[0], Primitive)
        ):
            out[f"{prefix}.{key}"] = value
        else:
            out[f"{prefix}.{key}"] = json.dumps(value, default=str, sort_keys=True)
    return out


def _ns(seconds: float) -> int:
    return int(seconds * 1e9)


def _counting(exporter_class: type) -> type:
    """`exporter_class` that counts its exports and failures, so that a run whose telemetry
    never arrived says so once at the end (instead of the SDK's log line per retry)."""

    class Counting(exporter_class):  # type: ignore[misc,valid-type]
        exports = failures = 0

        def export(self, *args: Any, **kwargs: Any) -> Any:
            result = super().export(*args, **kwargs)
            self.exports += 1
            self.failures += result.name != "SUCCESS"
            return result

    return Counting


class OtlpExporter:
    """Journal listener that turns the run's events into spans and its SLIs into metrics."""

    def __init__(self, state: RunState, endpoint: str) -> None:
        import_extra("opentelemetry.sdk", "observe", FEATURE)
        import_extra("opentelemetry.exporter.otlp.proto.http", "observe", FEATURE)
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        self.state = state
        self.endpoint = endpoint.rstrip("/")
        # failures are counted and reported once by close(); the SDK would log every retry
        logging.getLogger("opentelemetry.exporter.otlp.proto.http").setLevel(logging.CRITICAL)
        resource = Resource.create({"service.name": "aftershock", "aftershock.scenario": state.name})
        self.span_exporter = _counting(OTLPSpanExporter)(endpoint=f"{self.endpoint}/v1/traces", timeout=EXPORT_TIMEOUT_S)
        self.tracer_provider = TracerProvider(resource=resource)
        self.tracer_provider.add_span_processor(BatchSpanProcessor(self.span_exporter))
        self.tracer = self.tracer_provider.get_tracer("aftershock")
        interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") else EXPORT_INTERVAL_MS
        self.metric_exporter = _counting(OTLPMetricExporter)(endpoint=f"{self.endpoint}/v1/metrics",
                                                             timeout=EXPORT_TIMEOUT_S)
        reader = PeriodicExportingMetricReader(self.metric_exporter, export_interval_millis=interval)
        self.meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        self._instruments(self.meter_provider.get_meter("aftershock"))
        self.root: Any = None
        self.children: dict[tuple[str, str], Any] = {}

    # --- trace -----------------------------------------------------------------------

    def __call__(self, event: dict[str, Any]) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Status, StatusCode

        kind, t = event.get("event"), float(event.get("t") or 0)
        if kind == "run.started":
            self.root = self.tracer.start_span(
                f"aftershock run {self.state.name}", start_time=_ns(t),
                attributes=attributes("aftershock", {"scenario": self.state.name, "file": event.get("file"),
                                                     "run_id": event.get("run_id"), "quick": event.get("quick")}))
            return
        if self.root is None:
            return
        parent = trace.set_span_in_context(self.root)
        if kind in ("fault.injected", "attack.started"):
            what = "fault" if kind == "fault.injected" else "attack"
            name = event[what]
            start = float(event["planned_at"]) + float(event.get("skew_s") or 0) if what == "fault" else t
            attrs = {**attributes(f"aftershock.{what}", {"name": name, "type": event.get("type")}),
                     **attributes(f"aftershock.{what}.param", event.get("params") or {})}
            self.children[(what, name)] = self.tracer.start_span(f"{what} {name}", context=parent,
                                                                 start_time=_ns(start), attributes=attrs)
        elif kind == "fault.reverted" and ("fault", event["fault"]) in self.children:
            self.children.pop(("fault", event["fault"])).end(end_time=_ns(t))
        elif kind == "fault.revert_failed" and ("fault", event["fault"]) in self.children:
            self.children[("fault", event["fault"])].add_event("revert failed", {"error": str(event.get("error"))},
                                                               timestamp=_ns(t))
        elif kind in ("attack.result", "attack.error") and ("attack", event["attack"]) in self.children:
            span = self.children.pop(("attack", event["attack"]))
            span.set_attributes(attributes("aftershock.attack.metric", event.get("metrics") or {}))
            if kind == "attack.error":
                span.set_status(Status(StatusCode.ERROR, str(event.get("error"))))
            span.end(end_time=_ns(float(event.get("end") or t)))
        elif kind == "slo.verdict":
            fields = {k: event.get(k) for k in ("name", "expect", "passed", "measured", "unit", "threshold", "scope")}
            self.root.add_event("slo.verdict", attributes("aftershock.slo", fields), timestamp=_ns(t))
        elif kind == "run.aborted":
            self.root.add_event("run.aborted", attributes("aftershock", {"condition": event.get("condition"),
                                                                         "reason": event.get("reason")}), timestamp=_ns(t))
        elif kind == "run.ended":
            for span in self.children.values():  # a fault never reverted: its span ends, marked
                span.set_status(Status(StatusCode.ERROR, "not reverted when the run ended"))
                span.end(end_time=_ns(t))
            self.children.clear()
            self.root.set_attributes(attributes("aftershock", {"status": event.get("status"),
                                                               "exit_code": event.get("exit_code")}))
            if event.get("exit_code") not in (0, 1):
                self.root.set_status(Status(StatusCode.ERROR, str(event.get("message") or event.get("status"))))
            self.root.end(end_time=_ns(t))

    # --- metrics -----------------------------------------------------------------------

    def _instruments(self, meter: Any) -> None:
        window = [
            ("aftershock.window.latency", "s", "latency percentile of successful requests in the last settled window"),
            ("aftershock.window.error_ratio", "1", "failed / all requests in the window"),
            ("aftershock.window.throughput", "{request}/s", "requests per second in the window"),
            ("aftershock.window.accuracy", "1", "correct / labelled predictions in the window"),
            ("aftershock.window.fallback_ratio", "1", "fallback-served / flagged responses in the window"),
        ]
        for name, unit, description in window:
            meter.create_observable_gauge(name, [self._window_callback(name)], unit=unit, description=description)
        meter.create_observable_gauge("aftershock.slo.value", [self._slo_callback], unit="1",
                                      description="each SLO's measured value so far, in its unit (attribute unit)")
        meter.create_observable_counter("aftershock.requests", [self._requests_callback], unit="{request}",
                                        description="requests measured so far")

    def _window_callback(self, name: str) -> Any:
        from opentelemetry.metrics import Observation

        keys = {"aftershock.window.error_ratio": "error_rate", "aftershock.window.throughput": "throughput",
                "aftershock.window.accuracy": "accuracy", "aftershock.window.fallback_ratio": "fallback_rate"}

        def observe(_options: Any) -> Iterable[Observation]:
            with self.state.lock:
                slis = dict(self.state.settled_slis)
            labels = {"scenario": self.state.name}
            if name == "aftershock.window.latency":
                return [Observation(slis[k] / 1000, {**labels, "quantile": q})
                        for q, k in (("0.5", "p50_ms"), ("0.95", "p95_ms"), ("0.99", "p99_ms"))
                        if slis.get(k) is not None]
            value = slis.get(keys[name])
            return [] if value is None else [Observation(value, labels)]  # not measured: no point

        return observe

    def _slo_callback(self, _options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        with self.state.lock:
            slos = list(self.state.slos.values())
        return [Observation(s.value, {"scenario": self.state.name, "slo": s.name, "scope": s.scope, "unit": s.unit,
                                      "final": s.final})
                for s in slos if s.value is not None]

    def _requests_callback(self, _options: Any) -> Iterable[Any]:
        from opentelemetry.metrics import Observation

        with self.state.lock:
            return [Observation(self.state.requests, {"scenario": self.state.name})]

    def close(self) -> list[str]:
        """Export what is left (the final metrics too) and stop; the problems met, one line each."""
        self.meter_provider.force_flush()
        self.meter_provider.shutdown()
        self.tracer_provider.force_flush()
        self.tracer_provider.shutdown()
        return [f"{what} export to the OTLP endpoint {self.endpoint} failed {e.failures} of {e.exports} times"
                for what, e in (("trace", self.span_exporter), ("metrics", self.metric_exporter)) if e.failures]
