"""The live dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright):
a real `--quick` run of a tiny target whose model server sits behind a real Toxiproxy-compatible
proxy (its own process, so we can see what the run leaves on it), with a latency fault and a
request-flood attack. The page opens, the charts receive windows, the fault and attack spans
show, Stop aborts the run with exit 3 and the fault is rolled back; then `report --serve`
shows the finished run in the same page. One run, shared by the module."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tiny_target import write_dataset

from faults.proxy.client import ToxiproxyClient
from harness.core.processes import free_port

playwright = pytest.importorskip("playwright.sync_api")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
ROOT = Path(__file__).resolve().parents[1]

# --quick scales every duration by 0.25: the fault starts 2 s into the load and would last
# 50 s, the flood 3 s in; the test presses Stop long before either ends.
SCENARIO = """\
name: dash
target: {url: "http://{deps[model]}", protocol: oip-v2, model: m}
dependencies:
  model:
    start: {command: ["{python}", -m, harness.engine.load.reference_server, "{port}"]}
load: {users: 4, duration: 240s, window: 0.5s, data: {dataset: rows.npz, labels: true}}
timeline:
  baseline: 8s
  faults:
    - {name: slow-model, type: network.latency, dependency: model, at: 8s, duration: 200s, latency: 150ms}
  attacks:
    - {name: flood, type: abuse.flood, at: 12s, duration: 200s, rate: 20, concurrency: 2, max_queries: 5000}
slos:
  - name: fast enough
    expect: p95(latency) < 100ms during slow-model
  - name: available
    expect: availability >= 90%
"""


def aftershock(*args: str, log: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=ROOT,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, text=True)


def wait_for(what: str, check, timeout: float, proc: subprocess.Popen | None = None, log: Path | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.2)
    raise AssertionError(f"{what} within {timeout}s; log: {log.read_text()[-3000:] if log else ''}")


def url_in(log: Path) -> str | None:
    found = re.search(r"dashboard: (http://127\.0\.0\.1:\d+/)", log.read_text())
    return found.group(1) if found else None


def small_png(source: Path, target: Path) -> None:
    """A copy of a screenshot small enough to commit (64 colours)."""
    from PIL import Image

    with Image.open(source) as im:
        im.convert("RGB").quantize(colors=64).save(target, optimize=True)


def toxics_on(url: str) -> list[str]:
    return [t.name for p in ToxiproxyClient(url).proxies().values() for t in p.toxics]


def plotted(page: Any, chart: str) -> int:
    """How many points the chart's first trace holds (read from Plotly's own graph data)."""
    return page.evaluate("id => { const g = document.getElementById(id);"
                         " return g && g.data && g.data[0] ? g.data[0].x.length : 0; }", chart)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def stopped_run(tmp_path_factory: pytest.TempPathFactory, browser: Any) -> dict[str, Any]:
    """Run the scenario with --web, watch it in the page, press Stop; the facts before/after."""
    folder = tmp_path_factory.mktemp("dashboard")
    write_dataset(folder)
    (folder / "dash.yaml").write_text(SCENARIO, encoding="utf-8")
    proxy_port = free_port()
    proxy = aftershock("proxy", "--port", str(proxy_port), log=folder / "proxy.log")
    proxy_url = f"http://127.0.0.1:{proxy_port}"
    run_log = folder / "run.log"
    run = None
    try:
        wait_for("the proxy answers", lambda: ToxiproxyClient(proxy_url, timeout=1.0).running(), 30, proxy)
        run = aftershock("run", str(folder / "dash.yaml"), "--quick", "-o", str(folder / "out"), "--web",
                         "--web-port", "0", "--toxiproxy-url", proxy_url, log=run_log)
        url = wait_for("the dashboard's URL is printed", lambda: url_in(run_log), 60, run, run_log)
        page = browser.new_page(viewport={"width": 1400, "height": 820})
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("request", lambda r: None if r.url.startswith(url) else problems.append(f"request {r.url}"))
        page.on("dialog", lambda d: d.accept())
        page.goto(url)
        wait_for("the fault and the attack show as active",
                 lambda: "slow-model" in page.inner_text("#faults") and "flood" in page.inner_text("#attacks"),
                 120, run, run_log)
        toxics_before = toxics_on(proxy_url)
        # windows under the fault: the latency chart has points past the fault's start
        wait_for("windows under the fault reach the chart", lambda: page.evaluate(
            """(() => { const g = document.getElementById('latency'), s = (g.layout.shapes || []).filter(r => r.type === 'rect');
                 if (s.length < 2 || !g.data[1]) return false;
                 const start = Math.min(...s.map(r => r.x0));
                 return g.data[1].x.filter((x, i) => x >= start && g.data[1].y[i] != null).length >= 3; })()"""),
            60, run, run_log)
        wait_for("live SLO standings", lambda: page.locator("#slos tbody tr").count() == 2, 30, run, run_log)
        before = {
            "toxics": toxics_before,
            "points": {c: plotted(page, c) for c in ("latency", "errors", "throughput", "quality")},
            "shapes": page.evaluate("document.getElementById('latency').layout.shapes.filter(s => s.type === 'rect').length"),
            "slo_line": page.evaluate("document.getElementById('latency').layout.shapes.filter(s => s.type === 'line').map(s => s.y0)"),
            "fault_p95": page.evaluate(
                """(() => { const g = document.getElementById('latency'), s = g.layout.shapes.filter(r => r.type === 'rect');
                     const start = Math.min(...s.map(r => r.x0));
                     const ys = g.data[1].y.filter((y, i) => y != null && g.data[1].x[i] > start + 1);
                     return ys.length ? Math.max(...ys) : null; })()"""),
            "slo_rows": page.inner_text("#slos tbody"),
            "phase": page.inner_text("#phase"),
        }
        page.screenshot(path=str(folder / "dashboard-mid-run.png"))
        if target := os.environ.get("AFTERSHOCK_SCREENSHOTS"):  # refresh README's picture from this run
            small_png(folder / "dashboard-mid-run.png", Path(target) / "dashboard.png")
        page.click("#stop")
        run.wait(timeout=120)
        wait_for("the page shows the end", lambda: page.inner_text("#ended"), 30)
        after_page = {"ended": page.inner_text("#ended"), "stop_disabled": page.is_disabled("#stop")}
        page.screenshot(path=str(folder / "dashboard-stopped.png"))
        run_dir = next((folder / "out" / "dash").iterdir())
        return {
            "folder": folder, "code": run.returncode, "log": run_log.read_text(), "before": before,
            "after_page": after_page, "problems": problems, "run_dir": run_dir,
            "toxics_after": toxics_on(proxy_url), "proxies_after": ToxiproxyClient(proxy_url).proxies(),
            "result": json.loads((run_dir / "result.json").read_text()),
            "events": [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()],
        }
    finally:
        for proc in (run, proxy):
            if proc is not None and proc.poll() is None:
                proc.terminate()  # the run rolls back and writes its reports first
                try:
                    proc.wait(timeout=90)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def test_the_page_streams_windows_spans_and_slos_during_the_run(stopped_run: dict[str, Any]) -> None:
    before = stopped_run["before"]
    assert stopped_run["problems"] == []
    assert before["toxics"], "the latency fault is on the proxy while the page shows it"
    assert all(n >= 3 for n in before["points"].values()), before["points"]
    assert before["shapes"] >= 2, "a span for the fault and one for the attack"
    assert before["slo_line"] == [100], "the p95 SLO's limit, dotted on the latency chart"
    # the truth the test controls: 150 ms of latency on every answer of the model server
    assert before["fault_p95"] is not None and before["fault_p95"] >= 140, before["fault_p95"]
    assert "fast enough" in before["slo_rows"] and "failing" in before["slo_rows"], before["slo_rows"]
    assert before["phase"] in ("fault", "attack"), before["phase"]
    assert (stopped_run["folder"] / "dashboard-mid-run.png").stat().st_size > 20_000


def test_stop_aborts_with_exit_3_and_rolls_the_fault_back(stopped_run: dict[str, Any]) -> None:
    assert stopped_run["code"] == 3, stopped_run["log"][-3000:]
    result = stopped_run["result"]
    assert result["status"] == "aborted" and result["message"] == "stopped from the dashboard"
    events = stopped_run["events"]
    kinds = [e["event"] for e in events]
    aborted = kinds.index("run.aborted")
    assert events[aborted]["reason"] == "stopped from the dashboard"
    assert aborted < kinds.index("fault.reverted"), "rolled back after the stop, not at the planned end"
    (fault,) = result["timeline"]["faults"]
    assert fault["reverted_at_s"] is not None and fault["reverted_at_s"] < 45  # planned: 52 s
    assert stopped_run["toxics_after"] == [] and stopped_run["proxies_after"] == {}
    assert "aborted (exit 3)" in stopped_run["after_page"]["ended"]
    assert stopped_run["after_page"]["stop_disabled"]


def test_report_serve_shows_the_finished_run(stopped_run: dict[str, Any], browser: Any) -> None:
    log = stopped_run["folder"] / "serve.log"
    proc = aftershock("report", str(stopped_run["run_dir"]), "--serve", "--web-port", "0", log=log)
    try:
        url = wait_for("the page's URL is printed", lambda: url_in(log), 60, proc, log)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        wait_for("the run's verdicts", lambda: "verdict" in page.inner_text("#slos tbody"), 30)
        journal_windows = {e["record"]["index"] for e in stopped_run["events"] if e["event"] == "window"}
        wait_for("every window drawn", lambda: plotted(page, "latency") == len(journal_windows), 30)
        assert page.evaluate("document.getElementById('latency').layout.shapes.filter(s => s.type === 'rect').length") == 2
        assert "aborted (exit 3): stopped from the dashboard" in page.inner_text("#ended")
        assert page.locator("#stop").count() == 0, "nothing to stop in a finished run"
        assert errors == []
        page.screenshot(path=str(stopped_run["folder"] / "dashboard-report-serve.png"))
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    assert proc.returncode == 0, log.read_text()
