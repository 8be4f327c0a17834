"""A real OTLP/HTTP receiver on loopback: decodes the protobuf payloads an exporter POSTs to
/v1/traces and /v1/metrics with the opentelemetry-proto messages, and keeps them."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

MESSAGES = {
    "/v1/traces": (ExportTraceServiceRequest, ExportTraceServiceResponse),
    "/v1/metrics": (ExportMetricsServiceRequest, ExportMetricsServiceResponse),
}


class OtlpReceiver:
    """Serves on 127.0.0.1 (a free port) until closed; `traces` and `metrics` hold the decoded requests."""

    def __init__(self) -> None:
        self.traces: list[ExportTraceServiceRequest] = []
        self.metrics: list[ExportMetricsServiceRequest] = []
        self.rejected: list[str] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                kinds = MESSAGES.get(self.path)
                if kinds is None or self.headers.get("Content-Type") != "application/x-protobuf":
                    receiver.rejected.append(f"{self.path} {self.headers.get('Content-Type')}")
                    self.send_error(404 if kinds is None else 415)
                    return
                request_type, response_type = kinds
                request = request_type.FromString(body)  # raises on a payload that is not this message
                (receiver.traces if self.path == "/v1/traces" else receiver.metrics).append(request)
                reply = response_type().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *_args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def spans(self) -> list[Any]:
        return [span for request in self.traces for rs in request.resource_spans
                for ss in rs.scope_spans for span in ss.spans]

    def metric_points(self, name: str) -> list[Any]:
        """Every gauge or sum data point of metric `name` received."""
        points = []
        for request in self.metrics:
            for rm in request.resource_metrics:
                for sm in rm.scope_metrics:
                    for m in sm.metrics:
                        if m.name == name:
                            data = m.gauge if m.HasField("gauge") else m.sum
                            points.extend(data.data_points)
        return points

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
