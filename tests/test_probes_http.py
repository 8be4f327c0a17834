"""HTTP and Prometheus probes against real local HTTP servers (http.server in a thread)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

from harness.core.fault import UserError
from harness.core.safety import host_of
from harness.engine.probes import build_probe

Route = Callable[[str, dict[str, list[str]]], tuple[int, str, bytes]]


@contextmanager
def serve(route: Route) -> Iterator[str]:
    """A real server on a free loopback port; `route(path, query)` gives (status, type, body)."""
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            seen.append(self.path)
            status, ctype, body = route(parts.path, parse_qs(parts.query))
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def json_route(path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
    if path == "/health":
        return 200, "application/json", b'{"ok": true}'
    if path == "/model":
        doc = {
            "model": {"version": "3", "drift": {"score": 0.37, "alert": True}},
            "items": [{"v": 4}, {"v": 5}],
        }
        return 200, "application/json", json.dumps(doc).encode()
    if path == "/slow":
        time.sleep(0.3)
        return 200, "text/plain", b"late"
    if path == "/text":
        return 200, "text/plain", b"not json"
    return 503, "application/json", b'{"error": "down"}'


def test_http_status_latency_and_json_values() -> None:
    with serve(json_route) as base:
        status = build_probe({"name": "health", "type": "http", "url": f"{base}/health"})
        assert status.sample() == 200
        down = build_probe({"name": "down", "type": "http", "url": f"{base}/nope"})
        assert down.sample() == 503 and down.last_error is None
        slow = build_probe(
            {"name": "lat", "type": "http", "url": f"{base}/slow", "measure": "latency"}
        )
        assert 0.3 <= slow.sample() < 5
        score = build_probe(
            {
                "name": "drift",
                "type": "http",
                "url": f"{base}/model",
                "measure": "json",
                "json_path": "model.drift.score",
            }
        )
        assert score.sample() == pytest.approx(0.37)
        for path, expected in (
            ("model.drift.alert", 1.0),
            ("model.version", 3.0),
            ("items[1].v", 5.0),
        ):
            p = build_probe(
                {
                    "name": "j",
                    "type": "http",
                    "url": f"{base}/model",
                    "measure": "json",
                    "json_path": path,
                }
            )
            assert p.sample() == expected, p.last_error
        for p in (status, down, slow, score):
            assert [host_of(a) for a in p.hosts()] == ["127.0.0.1"]
            p.close()


def test_http_failures_return_none_and_record_the_error() -> None:
    with serve(json_route) as base:
        cases = [
            ({"url": f"{base}/nope", "measure": "json", "json_path": "x"}, "status 503"),
            (
                {"url": f"{base}/model", "measure": "json", "json_path": "missing"},
                "matched nothing",
            ),
            ({"url": f"{base}/text", "measure": "json", "json_path": "x"}, "JSONDecodeError"),
            ({"url": f"{base}/health", "expect_status": 204}, "status 200, expected 204"),
            ({"url": f"{base}/slow", "timeout": "50ms"}, "Timeout"),
        ]
        for fields, error in cases:
            probe = build_probe({"name": "p", "type": "http", **fields})
            assert probe.sample() is None
            assert error in probe.last_error, probe.last_error
            assert probe.error_count == 1
            probe.close()
    gone = build_probe({"name": "p", "type": "http", "url": base + "/health", "timeout": "1s"})
    assert gone.sample() is None and "ConnectError" in gone.last_error  # the server is stopped


def test_http_config_errors_are_user_errors() -> None:
    with pytest.raises(UserError, match="json_path"):
        build_probe({"name": "p", "type": "http", "url": "http://127.0.0.1:1/", "measure": "json"})
    with pytest.raises(UserError, match="invalid URL"):
        build_probe({"name": "p", "type": "http", "url": "127.0.0.1:80"})
    with pytest.raises(UserError, match="invalid JMESPath"):
        build_probe(
            {
                "name": "p",
                "type": "http",
                "url": "http://127.0.0.1:1/",
                "measure": "json",
                "json_path": "model.[",
            }
        )
    with pytest.raises(UserError, match="mode"):
        build_probe(
            {"name": "p", "type": "http", "url": "http://127.0.0.1:1/", "mode": "sometimes"}
        )
    with pytest.raises(UserError, match="invalid probe name"):
        build_probe({"name": "no spaces", "type": "http", "url": "http://127.0.0.1:1/"})


def metrics_text() -> bytes:
    registry = CollectorRegistry()
    requests = Counter("model_requests", "requests", ["code", "model"], registry=registry)
    requests.labels("200", "fraud").inc(90)
    requests.labels("500", "fraud").inc(7)
    requests.labels("500", "churn").inc(3)
    Gauge("drift_alert", "drift alert firing", registry=registry).set(1)
    return generate_latest(registry)


def prometheus_route(path: str, query: dict[str, list[str]]) -> tuple[int, str, bytes]:
    if path == "/metrics":
        return 200, "text/plain; version=0.0.4", metrics_text()
    if path == "/api/v1/query":
        q = query.get("query", [""])[0]
        if q == "bad(":
            body = {"status": "error", "errorType": "bad_data", "error": "parse error"}
            return 400, "application/json", json.dumps(body).encode()
        if q == "scalar(1)":
            body = {"status": "success", "data": {"resultType": "scalar", "result": [1.7e9, "2.5"]}}
        elif q == "absent_series":
            body = {"status": "success", "data": {"resultType": "vector", "result": []}}
        else:  # echo the query length so the test sees the query string arrived intact
            result = [
                {"metric": {"q": q}, "value": [1.7e9, str(len(q))]},
                {"metric": {}, "value": [1.7e9, "1"]},
            ]
            body = {"status": "success", "data": {"resultType": "vector", "result": result}}
        return 200, "application/json", json.dumps(body).encode()
    return 404, "text/plain", b""


def test_prometheus_scrape_with_label_matchers() -> None:
    with serve(prometheus_route) as base:

        def probe(**fields: object) -> float | None:
            p = build_probe({"name": "m", "type": "prometheus", "url": f"{base}/metrics", **fields})
            value = p.sample()
            assert value is not None or p.last_error
            return value

        assert probe(metric="model_requests_total") == 100
        assert probe(metric="model_requests") == 100  # a counter's base name works too
        assert probe(metric="model_requests_total", labels={"code": "500"}) == 10
        assert probe(metric="model_requests_total", labels={"code": "500", "model": "churn"}) == 3
        assert probe(metric="model_requests_total", labels={"code": "500"}, aggregate="max") == 7
        assert probe(metric="drift_alert") == 1
        missing = build_probe(
            {"name": "m", "type": "prometheus", "url": f"{base}/metrics", "metric": "model_request"}
        )
        assert missing.sample() is None and "similar: model_requests" in missing.last_error
        nolabel = build_probe(
            {
                "name": "m",
                "type": "prometheus",
                "url": f"{base}/metrics",
                "metric": "drift_alert",
                "labels": {"x": "y"},
            }
        )
        assert nolabel.sample() is None and "no sample of drift_alert" in nolabel.last_error


def test_prometheus_promql_query() -> None:
    with serve(prometheus_route) as base:
        q = 'sum(rate(model_requests_total{code=~"5.."}[30s]))'
        p = build_probe(
            {"name": "q", "type": "prometheus", "url": base, "query": q, "aggregate": "first"}
        )
        assert p.sample() == len(q)
        assert (
            build_probe({"name": "q", "type": "prometheus", "url": base, "query": q}).sample()
            == len(q) + 1
        )
        assert (
            build_probe(
                {"name": "q", "type": "prometheus", "url": base, "query": "scalar(1)"}
            ).sample()
            == 2.5
        )
        empty = build_probe(
            {"name": "q", "type": "prometheus", "url": base, "query": "absent_series"}
        )
        assert empty.sample() is None and "returned no series" in empty.last_error
        bad = build_probe({"name": "q", "type": "prometheus", "url": base, "query": "bad("})
        assert bad.sample() is None and "parse error" in bad.last_error


def test_prometheus_config_needs_exactly_one_source() -> None:
    with pytest.raises(UserError, match="exactly one of"):
        build_probe({"name": "q", "type": "prometheus", "url": "http://127.0.0.1:9090"})
    with pytest.raises(UserError, match="exactly one of"):
        build_probe(
            {
                "name": "q",
                "type": "prometheus",
                "url": "http://127.0.0.1:9090",
                "metric": "a",
                "query": "b",
            }
        )
