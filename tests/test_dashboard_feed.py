"""The dashboard without a browser: the at-risk rule, the fold of a journal into the page's
messages (live SLO standings judged against the journal's known figures), and the server's
guards on real sockets (Stop needs its header, a foreign Host is refused, a non-loopback bind
needs --allow-host, a busy port is a clear error)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from report_journals import T0, write_journal

from harness.dashboard.feed import RunFeed, SloSpec
from harness.dashboard.server import STOP_HEADER, Dashboard, DashboardError
from harness.dashboard.slo_status import AT_RISK, FAILING, HELD, NOT_MEASURED, margin_of, standing
from harness.engine.journal import read_journal
from harness.engine.record.events import windows_from_events
from harness.core.safety import AddressRefused
from harness.engine.slo import parse_slo

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("comparator, unit, measured, threshold, passed, state", [
    ("<", "ms", 199.0, 250.0, True, HELD),  # 79.6 % of the limit
    ("<", "ms", 200.0, 250.0, True, AT_RISK),  # 80 %: at risk
    ("<", "ms", 260.0, 250.0, False, FAILING),
    ("<=", "fraction", 0.009, 0.01, True, AT_RISK),  # error rate 0.9 % against 1 %
    (">=", "fraction", 0.9995, 0.995, True, HELD),  # 10 % of the allowed 0.5 % missing
    (">=", "fraction", 0.996, 0.995, True, AT_RISK),  # 80 % of it missing
    (">=", "fraction", 0.99, 0.995, False, FAILING),
    (">=", "req/s", 130.0, 100.0, True, HELD),
    (">=", "req/s", 120.0, 100.0, True, AT_RISK),  # within 25 % above the limit
    ("==", "", 0.0, 0.0, True, HELD),  # no distance to fail by
    ("<", "s", None, 10.0, None, NOT_MEASURED),
    ("<", "s", None, 10.0, False, FAILING),  # never recovered
])
def test_the_at_risk_rule(comparator: str, unit: str, measured: float | None, threshold: float,
                          passed: bool | None, state: str) -> None:
    assert standing("s", "x", passed, measured, threshold, comparator, unit, final=False).state == state


def test_margin_is_positive_while_the_slo_holds() -> None:
    assert margin_of(200.0, 250.0, "<") == 50.0
    assert margin_of(0.99, 0.995, ">=") == pytest.approx(-0.005)
    assert margin_of(None, 250.0, "<") is None and margin_of(1.0, 1.0, "==") is None


def replayed(journal: Path, **kw: Any) -> tuple[RunFeed, list[dict[str, Any]]]:
    sent: list[dict[str, Any]] = []
    feed = RunFeed(sent.append, **kw)
    for e in read_journal(journal):
        feed.on_event(e)
    feed.drain()
    return feed, sent


def test_a_finished_run_folds_into_windows_spans_and_verdicts(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal, slow_s=0.3, fail_share=0.1)
    feed, _ = replayed(journal)
    snap = feed.snapshot()
    status = snap[0]
    assert status["phase"] == "ended: failed" and status["can_stop"] is False
    windows = [m for m in snap if m["type"] == "window"]
    assert len(windows) == len(windows_from_events(read_journal(journal))) == 20
    fault_windows = [w for w in windows if T0 + 8 <= w["start"] < T0 + 13]
    assert all(w["p50_ms"] > 300 for w in fault_windows)  # 300 ms added to 10..30 ms
    assert all(w["p99_ms"] < 35 for w in windows if w not in fault_windows)
    assert sum(w["errors"].get("timeout", 0) for w in fault_windows) > 0
    assert not any(w["errors"] for w in windows if w not in fault_windows)
    spans = {m["name"]: m for m in snap if m["type"] == "span"}
    assert spans["slow-fs"]["start"] == pytest.approx(T0 + 8.01) and spans["slow-fs"]["end"] == T0 + 13.02
    assert spans["fgsm"]["kind"] == "attack" and spans["fgsm"]["end"] == T0 + 17
    rows = {r["name"]: r for r in snap[-1]["rows"]}
    assert rows["p95 under 250 ms"]["state"] == FAILING and rows["p95 under 250 ms"]["final"]
    assert rows["recovers"]["state"] == HELD  # 1.5 s against 10 s


def test_a_malformed_event_is_skipped_not_fatal(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal)
    lines = journal.read_text().splitlines()
    lines.insert(3, '{"t": 1, "event": "window", "record": {"index": "not a number", "size": 1}}')
    journal.write_text("\n".join(lines) + "\n")
    feed, _ = replayed(journal)
    assert feed.wait_folded(timeout=1)
    assert len([m for m in feed.snapshot() if m["type"] == "window"]) == 20


def test_live_standings_are_judged_on_the_windows_so_far(tmp_path: Path) -> None:
    journal = tmp_path / "journal.jsonl"
    write_journal(journal, slow_s=0.3, fail_share=0.0)
    live = tmp_path / "live.jsonl"  # the run as it stands 15 s in: no verdicts yet
    live.write_text("".join(line + "\n" for line in journal.read_text().splitlines()
                            if '"slo.verdict"' not in line and '"run.ended"' not in line
                            and ('"window"' not in line or float(line.split(",")[0][6:]) < T0 + 15)))
    expects = {"p95 while slow": "p95(latency) < 250ms during slow-fs",
               "baseline p95": "p95(latency) < 35ms during baseline",
               "available": "availability >= 99%"}
    specs = [SloSpec(n, e, parse_slo(e, {"slow-fs", "fgsm"})) for n, e in expects.items()]
    feed, sent = replayed(live, slos=specs, planned_faults=1, can_stop=True)
    assert feed.snapshot()[0]["can_stop"] is True
    feed.evaluate_slos()
    rows = {r["name"]: r for r in sent[-1]["rows"]}
    assert rows["p95 while slow"]["state"] == FAILING and rows["p95 while slow"]["measured"] > 300
    assert rows["baseline p95"]["state"] == AT_RISK  # 10..30 ms: p95 about 29 ms of 35
    assert rows["available"]["state"] == HELD and rows["available"]["measured"] == 1.0
    assert not any(r["final"] for r in rows.values())


@pytest.fixture(scope="module")
def live_dashboard():
    stops: list[str] = []
    dash = Dashboard(port=0, on_stop=lambda: stops.append("stop"))
    url = dash.start()
    yield dash, url, stops
    dash.stop()


def test_stop_needs_its_header_and_a_loopback_host(live_dashboard) -> None:
    dash, url, stops = live_dashboard
    assert httpx.post(url + "stop").status_code == 400 and stops == []
    foreign = httpx.post(url + "stop", headers={STOP_HEADER: "stop", "Host": "attacker.example"})
    assert foreign.status_code == 400 and stops == []
    ok = httpx.post(url + "stop", headers={STOP_HEADER: "stop"})
    assert ok.status_code == 202 and ok.json()["reason"] == "stopped from the dashboard" and stops == ["stop"]
    dash.feed.on_event({"t": T0, "event": "run.ended", "status": "aborted", "exit_code": 3, "message": "m"})
    deadline = time.monotonic() + 10
    while dash.feed.can_stop and time.monotonic() < deadline:  # folded on the server's thread
        time.sleep(0.05)
    assert httpx.post(url + "stop", headers={STOP_HEADER: "stop"}).status_code == 409 and stops == ["stop"]
    js = httpx.get(url + "plotly.min.js")
    assert js.headers["content-type"].startswith("text/javascript") and b"Plotly" in js.content[:5000]


def test_a_finished_run_has_nothing_to_stop() -> None:
    dash = Dashboard(port=0)
    url = dash.start()
    try:
        assert httpx.post(url + "stop", headers={STOP_HEADER: "stop"}).status_code == 409
        assert 'id="stop"' not in httpx.get(url).text
    finally:
        dash.stop()


def test_a_non_loopback_bind_is_refused_unless_allowed() -> None:
    with pytest.raises(AddressRefused, match="--allow-host 10.1.2.3"):
        Dashboard("10.1.2.3", 0)
    Dashboard("10.1.2.3", 0, allowed_hosts=["10.1.2.3"])  # allowed: constructed (never bound here)


def test_a_busy_port_is_a_clear_error() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        with pytest.raises(DashboardError, match="pick another port"):
            Dashboard(port=busy.getsockname()[1]).start()


def test_cli_refuses_a_wildcard_bind_with_exit_2(tmp_path: Path) -> None:
    scenario = tmp_path / "s.yaml"
    scenario.write_text("name: s\ntarget: {url: 'http://127.0.0.1:9', model: m}\n"
                        "load: {users: 1, duration: 1s}\nslos: [{name: a, expect: availability >= 99%}]\n")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "--web", "--web-host", "0.0.0.0",
                           "-o", str(tmp_path)], check=False, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert "0.0.0.0 is outside loopback" in proc.stderr and "--allow-host 0.0.0.0" in proc.stderr
    assert "Traceback" not in proc.stderr
