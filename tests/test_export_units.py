"""The exporters' pieces without a run: RunState folds journal events as the runner means them,
the Prometheus collector renders them (NaN for not measured), the Grafana dashboard names
only metrics the exporter really exposes, and bad flags are refused before anything starts."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from harness.export import GRAFANA_DASHBOARD, metrics_address
from harness.export.prometheus import METRIC_NAMES, RunCollector
from harness.export.run_state import RunState
from harness.core.fault import UserError
from harness.core.processes import free_port
from harness.engine.scenario.loader import load_scenario
from harness.core.windows import Window
from tests.tiny_target import write_scenario

ROOT = Path(__file__).resolve().parents[1]
SIZE = 0.5
START = 1_000_000.0  # a window boundary: 2_000_000 windows of 0.5 s


def window(index: int, latencies_ms: list[float], failures: dict[str, int] | None = None) -> dict:
    w = Window(index=index, size=SIZE, requests=len(latencies_ms) + sum((failures or {}).values()),
               failures=dict(failures or {}))
    for ms in latencies_ms:
        w.latency.record_value(int(ms * 1000))
    return {"event": "window", "t": w.end, "record": w.to_record()}


@pytest.fixture
def state(tmp_path: Path) -> RunState:
    path = write_scenario(tmp_path, "units", "http://127.0.0.1:9", p95_limit="50ms", duration="10s")
    text = path.read_text(encoding="utf-8") + (
        "timeline:\n  faults:\n    - {name: slow, type: network.latency, dependency: store, at: 2s, duration: 2s,"
        " latency: 10ms}\n")
    path.write_text(text.replace("target:", "dependencies:\n  store: {upstream: 127.0.0.1:9}\ntarget:"), encoding="utf-8")
    loaded = load_scenario(path)
    return RunState(loaded.scenario, loaded.slos)


def scrape(state: RunState, final_only: bool = False, at: float = START + 3) -> dict[tuple[str, tuple], float]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(state, final_only, clock=lambda: at))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    (v,) = [v for (n, ls), v in samples.items() if n == name and labels.items() <= dict(ls).items()]
    return v


def test_warmup_is_dropped_and_a_window_shows_once_two_later_arrive(state: RunState) -> None:
    base = int(START / SIZE)
    state(window(base - 1, [999.0]))  # warm-up: before the clock starts
    state({"event": "phase", "phase": "load", "t": START, "start": START, "duration": 10, "baseline": 2})
    assert state.requests == 0 and state.settled is None
    state(window(base, [10.0] * 19 + [40.0]))
    state(window(base + 1, [10.0], {"http_503": 3}))
    assert state.settled is None  # window `base` could still receive a slow request
    state(window(base, [40.0]))  # a late record: merged before it is shown
    state(window(base + 2, [10.0]))
    assert state.settled is not None and state.settled.index == base
    samples = scrape(state)
    # 21 samples: the 95th percentile is the 20th by nearest rank, one of the two 40 ms
    assert value(samples, "aftershock_window_latency_seconds", quantile="0.95") == pytest.approx(0.040, rel=1e-3)
    assert value(samples, "aftershock_window_latency_seconds", quantile="0.5") == pytest.approx(0.010, rel=1e-3)
    assert value(samples, "aftershock_window_start_timestamp_seconds") == START
    assert value(samples, "aftershock_requests_total") == 21 + 4 + 1
    assert value(samples, "aftershock_failures_total", kind="http_503") == 3
    assert math.isnan(value(samples, "aftershock_window_accuracy_ratio"))  # no labels: not measured, not 0
    assert value(samples, "aftershock_window_error_ratio") == 0.0
    # a record later still: the shown window is replaced by a merged copy, never changed in
    # place (the judge thread may be reading it)
    shown = state.settled
    state(window(base, [500.0] * 5))
    assert state.settled is not shown and state.settled.requests == shown.requests + 5 == 26
    assert value(scrape(state), "aftershock_window_latency_seconds", quantile="0.95") == pytest.approx(0.5, rel=1e-3)


def test_faults_phase_and_live_slo_follow_the_events(state: RunState) -> None:
    base = int(START / SIZE)
    state({"event": "phase", "phase": "load", "t": START, "start": START, "duration": 10, "baseline": 2})
    assert state.phase(START + 1) == "baseline"
    state({"event": "fault.injected", "t": START + 2.01, "fault": "slow", "type": "network.latency",
           "planned_at": START + 2, "skew_s": 0.005, "params": {"latency": 10}})
    assert state.phase(START + 2.5) == "fault"
    for i in range(6):
        state(window(base + i, [100.0] * 10))  # 100 ms > the 50 ms SLO: failing so far
    state.judge_now()  # what the judge thread does (start_judging) at most once a second
    samples = scrape(state)
    assert value(samples, "aftershock_fault_active", fault="slow") == 1.0
    assert value(samples, "aftershock_run_phase", phase="fault") == 1.0
    assert value(samples, "aftershock_slo_passed", slo="fast enough") == 0.0
    assert value(samples, "aftershock_slo_value", slo="fast enough") == pytest.approx(100.0, rel=1e-3)
    assert value(samples, "aftershock_slo_final", slo="fast enough") == 0.0
    state({"event": "fault.reverted", "t": START + 4, "fault": "slow", "type": "network.latency"})
    assert state.phase(START + 5) == "recovery" and state.phase(START + 11) == "teardown"
    state({"event": "slo.verdict", "t": START + 12, "name": "fast enough", "passed": False, "measured": 100.0,
           "threshold": 50.0, "scope": "run", "unit": "ms"})
    state({"event": "run.ended", "t": START + 12, "status": "failed", "exit_code": 1})
    final = scrape(state, final_only=True)
    assert value(final, "aftershock_slo_final", slo="fast enough") == 1.0
    assert value(final, "aftershock_slo_threshold", slo="fast enough") == 50.0
    assert value(final, "aftershock_run_exit_code") == 1.0
    assert not any(n.startswith("aftershock_window") for n, _ in final)
    assert value(scrape(state), "aftershock_run_phase", phase="ended") == 1.0


def dashboard_exprs() -> list[str]:
    data = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    exprs += [v["definition"] for v in data["templating"]["list"] if "definition" in v]
    return exprs


def test_every_dashboard_expr_names_a_metric_the_exporter_exposes(state: RunState) -> None:
    base = int(START / SIZE)
    state({"event": "phase", "phase": "load", "t": START, "start": START, "duration": 10, "baseline": 2})
    for i in range(4):
        state(window(base + i, [10.0], {"timeout": 1}))
    state({"event": "run.ended", "t": START + 12, "status": "failed", "exit_code": 1})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(state))
    exposed = set()  # every family served (one with no series yet too), as PromQL names its samples
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        exposed.add(f"{family.name}_total" if family.type == "counter" else family.name)
    assert exposed == set(METRIC_NAMES)
    exprs = dashboard_exprs()
    assert len(exprs) >= 10
    for expr in exprs:
        named = set(re.findall(r"\baftershock_[a-z_]+", expr))
        assert named and named <= exposed, (expr, named - exposed)


@pytest.mark.parametrize(("flag", "error"), [
    (["--metrics-port", "http"], "--metrics-port 'http': write a port"),
    (["--metrics-port", "10.1.2.3:9464"], "--metrics-port: 10.1.2.3 is outside loopback"),
    (["--pushgateway", "http://10.1.2.3:9091"], "--pushgateway: 10.1.2.3 is outside loopback"),
    (["--otlp-endpoint", "http://192.168.1.1:4318"], "--otlp-endpoint: 192.168.1.1 is outside loopback"),
])
def test_bad_or_unsafe_export_flags_exit_2_before_the_run(tmp_path: Path, flag: list[str], error: str) -> None:
    path = write_scenario(tmp_path, "flags", "http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "-o", str(tmp_path / "out"), *flag],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert error in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "out").exists()  # refused before anything started


def test_the_otlp_endpoint_comes_from_the_standard_variable(tmp_path: Path) -> None:
    path = write_scenario(tmp_path, "flags", "http://127.0.0.1:9")
    env = {**os.environ, "OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.9.9.9:4318"}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "-o", str(tmp_path / "out")],
                          check=False, capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "--otlp-endpoint: 10.9.9.9 is outside loopback" in proc.stderr, proc.stderr


def test_metrics_address_reads_port_or_host_port() -> None:
    assert metrics_address("9464") == ("127.0.0.1", 9464)
    assert metrics_address("[::1]:9464") == ("::1", 9464)
    with pytest.raises(UserError):
        metrics_address("99999")


def test_readme_lists_every_metric() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert [n for n in METRIC_NAMES if f"`{n}`" not in readme] == []


def test_otlp_attack_span_and_a_fault_never_reverted(state: RunState) -> None:
    """Attack spans take the attack's own start/end and figures; a fault still open at the
    run's end is closed there, marked as an error, and the root carries the exit code."""
    from opentelemetry.proto.trace.v1.trace_pb2 import Status

    from harness.export.otlp import OtlpExporter
    from tests.otlp_receiver import OtlpReceiver

    receiver = OtlpReceiver()
    try:
        exporter = OtlpExporter(state, receiver.url)
        events = [
            {"event": "run.started", "t": START - 1, "file": "units.yaml", "run_id": "r1", "quick": True},
            {"event": "phase", "phase": "load", "t": START, "start": START, "duration": 10, "baseline": 2},
            {"event": "attack.started", "t": START + 1, "attack": "fuzz", "type": "abuse.fuzz",
             "params": {"rate": 5, "shapes": ["a", "b"], "nested": {"k": 1}, "none": None}},
            {"event": "attack.result", "t": START + 3.2, "attack": "fuzz", "type": "abuse.fuzz", "start": START + 1,
             "end": START + 3, "metrics": {"crash_rate": 0.25}},
            {"event": "fault.injected", "t": START + 4.1, "fault": "slow", "type": "network.latency",
             "planned_at": START + 4, "skew_s": 0.05, "params": {"latency": 10}},
            {"event": "fault.revert_failed", "t": START + 6, "fault": "slow", "type": "network.latency",
             "error": "proxy gone"},
            {"event": "run.ended", "t": START + 7, "status": "error", "exit_code": 4, "message": "NOT UNDONE: slow"},
        ]
        for event in events:
            state(event)
            exporter(event)
            if event["event"] == "attack.started":
                assert state.phase(START + 1.5) == "attack"
        exporter.close()
    finally:
        receiver.close()
    spans = {s.name: s for s in receiver.spans()}
    root, attack, fault = spans["aftershock run units"], spans["attack fuzz"], spans["fault slow"]
    assert (attack.start_time_unix_nano, attack.end_time_unix_nano) == (int((START + 1) * 1e9), int((START + 3) * 1e9))
    attrs = {a.key: a.value for a in attack.attributes}
    assert attrs["aftershock.attack.param.rate"].int_value == 5
    assert [v.string_value for v in attrs["aftershock.attack.param.shapes"].array_value.values] == ["a", "b"]
    assert attrs["aftershock.attack.param.nested"].string_value == '{"k": 1}'
    assert "aftershock.attack.param.none" not in attrs
    assert attrs["aftershock.attack.metric.crash_rate"].double_value == 0.25
    assert fault.start_time_unix_nano == int((START + 4 + 0.05) * 1e9)  # planned + skew: the span.start
    assert fault.end_time_unix_nano == int((START + 7) * 1e9) and fault.status.code == Status.STATUS_CODE_ERROR
    assert [e.name for e in fault.events] == ["revert failed"]
    assert root.status.code == Status.STATUS_CODE_ERROR
    assert {a.key: a.value.int_value for a in root.attributes}["aftershock.exit_code"] == 4
    assert attack.parent_span_id == fault.parent_span_id == root.span_id


def test_receivers_that_do_not_answer_fail_a_passing_run_loudly(tmp_path: Path) -> None:
    from harness.engine.load.reference_server import ReferenceServer

    with ReferenceServer() as srv:
        path = write_scenario(tmp_path, "nopush", srv.url, duration="1s")
        gone = f"http://127.0.0.1:{free_port()}"  # nothing listens there
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path), "-o", str(tmp_path / "out"),
                               "--pushgateway", gone, "--otlp-endpoint", gone],
                              check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 4, proc.stdout + proc.stderr
    assert f"error: could not push the verdicts to the Pushgateway {gone}" in proc.stderr
    assert f"error: trace export to the OTLP endpoint {gone} failed 1 of 1 times" in proc.stderr
    assert f"error: metrics export to the OTLP endpoint {gone} failed" in proc.stderr
    assert "Transient error" not in proc.stderr  # one line each, not the SDK's line per retry
    assert "PASS" in proc.stdout and "Traceback" not in proc.stderr  # the verdicts still stand and show
