"""One real run of the flagship scenario (--quick) exported three ways at once: scraped by a
real Prometheus, pushed to a real Pushgateway, and sent over OTLP/HTTP to a receiver that
decodes the protobuf payloads. Each test reads one of them and checks it against the run's
own result.json and journal."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.export import GRAFANA_DASHBOARD
from harness.engine.journal import read_journal
from harness.core.processes import free_port
from tests.otlp_receiver import OtlpReceiver

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "feature-store-latency"
IMPOSSIBLE = "impossible latency"  # an SLO the run must fail: the failed form of every verdict series

pytestmark = pytest.mark.skipif(not (shutil.which("prometheus") and shutil.which("prometheus-pushgateway")),
                                reason="needs Debian's prometheus and prometheus-pushgateway (.ci/run installs them)")


@dataclass
class ExportedRun:
    result: dict[str, Any]
    journal: list[dict[str, Any]]
    exit_code: int
    prometheus: str  # its HTTP API base URL
    pushgateway: str
    otlp: OtlpReceiver


def _serve(args: list[str], ready: str, workdir: Path, name: str) -> subprocess.Popen:
    log = (workdir / f"{name}.log").open("w")
    proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(ready, timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        assert proc.poll() is None, (workdir / f"{name}.log").read_text()
        time.sleep(0.2)
    proc.kill()
    raise AssertionError(f"{name} never became ready: {(workdir / f'{name}.log').read_text()}")


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ExportedRun]:
    work = tmp_path_factory.mktemp("export")
    metrics_port, prom_port, push_port = free_port(), free_port(), free_port()
    (work / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: aftershock\n    static_configs: [{{targets: ['127.0.0.1:{metrics_port}']}}]\n",
        encoding="utf-8")
    procs = []
    otlp = OtlpReceiver()
    try:
        procs.append(_serve(["prometheus-pushgateway", f"--web.listen-address=127.0.0.1:{push_port}"],
                            f"http://127.0.0.1:{push_port}/-/ready", work, "pushgateway"))
        procs.append(_serve(["prometheus", f"--config.file={work / 'prometheus.yml'}",
                             f"--storage.tsdb.path={work / 'tsdb'}", f"--web.listen-address=127.0.0.1:{prom_port}"],
                            f"http://127.0.0.1:{prom_port}/-/ready", work, "prometheus"))
        scenario = work / f"{SCENARIO}.yaml"
        text = (ROOT / "scenarios" / f"{SCENARIO}.yaml").read_text(encoding="utf-8")
        text = text.replace("slos:\n", f"slos:\n  - name: {IMPOSSIBLE}\n    expect: p95(latency) < 0.001ms\n", 1)
        scenario.write_text(text, encoding="utf-8")
        pushgateway = f"http://127.0.0.1:{push_port}"
        proc = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(scenario), "--quick", "-o", str(work / "reports"),
             "--metrics-port", str(metrics_port), "--pushgateway", pushgateway, "--otlp-endpoint", otlp.url],
            check=False, cwd=ROOT, capture_output=True, text=True, timeout=300)
        (run_dir,) = sorted((work / "reports" / SCENARIO).iterdir())
        result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
        yield ExportedRun(result, read_journal(run_dir / "journal.jsonl"), proc.returncode,
                          f"http://127.0.0.1:{prom_port}", pushgateway, otlp)
    finally:
        otlp.close()
        for p in procs:
            p.terminate()
            p.wait(timeout=30)


def _promql(run: ExportedRun, query: str) -> list[dict[str, Any]]:
    reply = httpx.get(f"{run.prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
    assert reply["status"] == "success", reply
    return reply["data"]["result"]


def _samples(run: ExportedRun, selector: str) -> dict[float, float]:
    """Every scraped sample of one series over the last 10 minutes, by scrape time."""
    (series,) = _promql(run, f"{selector}[10m]")
    return {float(t): float(v) for t, v in series["values"]}


def _measured_requests(run: ExportedRun) -> int:
    """The truth: every request the journal's window records hold from the run's clock start on."""
    start = next(e["start"] for e in run.journal if e["event"] == "phase")
    return sum(e["record"]["requests"] for e in run.journal
               if e["event"] == "window" and e["record"]["index"] * e["record"]["size"] >= start - 1e-9)


def test_the_run_failed_only_the_impossible_slo(run: ExportedRun) -> None:
    failed = [s["name"] for s in run.result["slos"] if s["passed"] is not True]
    assert run.exit_code == 1 and failed == [IMPOSSIBLE], (run.exit_code, run.result["slos"])


def test_promql_p95_matches_result_json_per_window(run: ExportedRun) -> None:
    """The p95 Prometheus scraped for a window is the p95 result.json reports for it.

    Tolerance 1 %: both come from the same HDR histogram (≤ 0.1 % error), so an exact
    window matches to the digit; a request slower than the settling delay (two windows)
    lands in its window after it was shown, which moves that window's p95 a little, so
    at least 80 % of the windows must match (all do on a quiet machine)."""
    selector = f'{{scenario="{SCENARIO}"}}'
    p95 = _samples(run, f'aftershock_window_latency_seconds{{quantile="0.95",scenario="{SCENARIO}"}}')
    starts = _samples(run, f"aftershock_window_start_timestamp_seconds{selector}")
    size = run.result["window_s"]
    origin = next(e["start"] for e in run.journal if e["event"] == "phase")
    by_index = {round((origin + w["t_s"]) / size): w for w in run.result["windows"]}
    shown = {round(starts[t] / size): p95[t] * 1000 for t in p95 if t in starts}
    pairs = [(ms, by_index[i]["p95_ms"]) for i, ms in shown.items() if i in by_index]
    assert len(pairs) >= 5, (shown, sorted(by_index))
    close = [a for a, b in pairs if abs(a - b) <= 0.01 * b]
    print(f"{len(close)} of {len(pairs)} scraped windows match result.json within 1 %")
    assert len(close) >= 0.8 * len(pairs), pairs


def test_prometheus_saw_the_fault_the_phases_and_the_live_slos(run: ExportedRun) -> None:
    fault = _promql(run, f'max_over_time(aftershock_fault_active{{fault="slow-feature-store",scenario="{SCENARIO}"}}[10m])')
    assert [float(s["value"][1]) for s in fault] == [1.0]
    phases = {s["metric"]["phase"] for s in _promql(run, "max_over_time(aftershock_run_phase[10m]) == 1")}
    assert {"baseline", "fault", "recovery"} <= phases, phases
    requests = _promql(run, f'max_over_time(aftershock_requests_total{{scenario="{SCENARIO}"}}[10m])')
    assert 0 < float(requests[0]["value"][1]) <= _measured_requests(run)
    # the impossible SLO was judged failing live, before its final verdict: passed + final == 0
    one = f'{{slo="{IMPOSSIBLE}",scenario="{SCENARIO}"}}'
    live = _promql(run, f"min_over_time((aftershock_slo_passed{one} + aftershock_slo_final{one})[10m:1s])")
    assert [float(s["value"][1]) for s in live] == [0.0]


def test_pushgateway_holds_the_final_verdicts(run: ExportedRun) -> None:
    text = httpx.get(f"{run.pushgateway}/metrics", timeout=10).text
    pushed: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.labels.get("job") == "aftershock" and sample.labels.get("scenario") == SCENARIO:
                pushed.setdefault(sample.name, {})[sample.labels.get("slo", "")] = sample.value
    for slo in run.result["slos"]:
        assert pushed["aftershock_slo_passed"][slo["name"]] == float(slo["passed"]), slo
        assert pushed["aftershock_slo_final"][slo["name"]] == 1.0
        if slo["measured"] is not None:
            assert pushed["aftershock_slo_value"][slo["name"]] == pytest.approx(slo["measured"], rel=1e-9)
    assert pushed["aftershock_slo_passed"][IMPOSSIBLE] == 0.0
    assert pushed["aftershock_run_exit_code"][""] == float(run.exit_code) == 1.0
    assert "aftershock_window_latency_seconds" not in pushed  # only the final figures are pushed


def test_otlp_trace_has_the_run_its_fault_at_the_real_times_and_the_verdicts(run: ExportedRun) -> None:
    """Fault span times equal the journal's injection and revert times to 50 ms (they are
    taken from the journal's own numbers; 50 ms allows the float rounding of skew_s)."""
    assert not run.otlp.rejected
    spans = run.otlp.spans()
    (root,) = [s for s in spans if not s.parent_span_id]
    assert root.name == f"aftershock run {SCENARIO}"
    (fault,) = [s for s in spans if s.name == "fault slow-feature-store"]
    assert fault.parent_span_id == root.span_id and fault.trace_id == root.trace_id
    attrs = {a.key: a.value for a in fault.attributes}
    assert attrs["aftershock.fault.type"].string_value == "network.latency"
    assert attrs["aftershock.fault.param.latency"].WhichOneof("value") is not None
    injected = next(e for e in run.journal if e["event"] == "fault.injected")
    reverted = next(e for e in run.journal if e["event"] == "fault.reverted")
    assert abs(fault.start_time_unix_nano / 1e9 - (injected["planned_at"] + injected["skew_s"])) < 0.05
    assert injected["planned_at"] - 0.05 < fault.start_time_unix_nano / 1e9 <= injected["t"]
    assert abs(fault.end_time_unix_nano / 1e9 - reverted["t"]) < 0.05
    verdicts = {}
    for event in root.events:
        if event.name == "slo.verdict":
            a = {x.key: x.value for x in event.attributes}
            verdicts[a["aftershock.slo.name"].string_value] = a["aftershock.slo.passed"].bool_value
    assert verdicts == {s["name"]: s["passed"] for s in run.result["slos"]}
    assert root.start_time_unix_nano < fault.start_time_unix_nano < fault.end_time_unix_nano < root.end_time_unix_nano


def test_otlp_metrics_carry_the_slis(run: ExportedRun) -> None:
    points = run.otlp.metric_points("aftershock.window.latency")
    quantiles = {next(a.value.string_value for a in p.attributes if a.key == "quantile") for p in points}
    assert quantiles == {"0.5", "0.95", "0.99"}
    p95s = [p.as_double * 1000 for p in points if any(a.value.string_value == "0.95" for a in p.attributes)]
    # the last export (after the run) shows the run's last window, settled: its p95 as result.json has it
    last = run.result["windows"][-1]["p95_ms"]
    assert p95s and abs(p95s[-1] - last) <= 1e-6 * last, (p95s, last)
    requests = run.otlp.metric_points("aftershock.requests")
    assert requests and max(p.as_int for p in requests) == _measured_requests(run)  # the last export is final


def test_every_grafana_panel_query_returns_data_from_the_run(run: ExportedRun) -> None:
    """The shipped dashboard's queries, as Grafana sends them, over what Prometheus scraped
    (a subquery: the run is over and its series went stale)."""
    data = json.loads(GRAFANA_DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in data["panels"] for t in p.get("targets", [])]
    failed = any(w["failures"] for w in run.result["windows"])
    for expr in exprs:
        query = expr.replace("$scenario", SCENARIO).replace("$__rate_interval", "5s")
        result = _promql(run, f"last_over_time(({query})[10m:1s])")
        if "aftershock_attack_active" in expr:  # the scenario has no attack
            continue
        if "failures" in expr and not failed:  # a series per failure kind: none seen, none shown
            assert not result, expr
            continue
        assert result, expr
