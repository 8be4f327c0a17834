"""report.html in a real headless Chromium (Debian's `chromium` package): it loads from
file:// without touching the network, logs no console error, and shows the timeline plot.
Driven over the DevTools protocol with websocket-client. Skips when chromium is absent."""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import websocket
from report_journals import write_journal

from harness.engine.report.writers import render_run

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


class DevTools:
    """The few DevTools protocol calls this test needs, over one page's websocket."""

    def __init__(self, ws_url: str) -> None:
        self.ws = websocket.create_connection(ws_url, timeout=30, suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict[str, Any]] = []

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        msg_id = next(self.ids)
        self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            self.events.append(msg)

    def wait_for(self, method: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            if time.monotonic() > deadline:
                raise AssertionError(f"no {method} within {timeout}s")
            self.events.append(json.loads(self.ws.recv()))

    def evaluate(self, expression: str) -> Any:
        out = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return out["result"].get("value")


@pytest.fixture
def browser(tmp_path: Path):
    profile = tmp_path / "profile"
    proc = subprocess.Popen(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ],
        stdout=subprocess.DEVNULL,
        stderr=(tmp_path / "chromium.log").open("w"),
    )
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.is_file() and port_file.read_text().strip()):
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"chromium did not start: {(tmp_path / 'chromium.log').read_text()[-2000:]}"
                )
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as r:
            pages = [t for t in json.load(r) if t["type"] == "page"]
        tools = DevTools(pages[0]["webSocketDebuggerUrl"])
        yield tools
        tools.ws.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _open(tools: DevTools, page: Path) -> list[str]:
    """Load `page`; return every console error, exception and non-local request seen."""
    for domain in ("Page", "Runtime", "Log", "Network"):
        tools.call(f"{domain}.enable")
    tools.call("Page.navigate", url=page.as_uri())
    tools.wait_for("Page.loadEventFired")
    problems = []
    for e in tools.events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            problems.append(f"console.{p['type']}: {p.get('args')}")
        elif m == "Runtime.exceptionThrown":
            problems.append(f"exception: {p.get('exceptionDetails', {}).get('text')}")
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            problems.append(f"log: {p['entry'].get('text')}")
        elif m == "Network.requestWillBeSent" and not p["request"]["url"].startswith(
            ("file:", "data:")
        ):
            problems.append(f"network request: {p['request']['url']}")
    return problems


def test_report_loads_without_errors_and_shows_the_plot(browser: DevTools, tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_journal(run / "journal.jsonl")
    render_run(run)
    assert _open(browser, run / "report.html") == []
    img = browser.evaluate("""(() => { const i = document.querySelector('img#timeline');
        if (!i) return null; const r = i.getBoundingClientRect();
        return {complete: i.complete, w: i.naturalWidth, h: i.naturalHeight, shownW: r.width, shownH: r.height}; })()""")
    assert img is not None and img["complete"], img
    assert img["w"] >= 600 and img["h"] >= 600 and img["shownW"] > 300 and img["shownH"] > 300, img
    text = browser.evaluate("document.body.innerText")
    for expected in (
        "Resilience score",
        "75.0 %",
        "Σ(weightᵢ × successᵢ)",
        "p95 under 250 ms",
        "FAIL",
        "robust_accuracy",
        "psi",
        "recovery",
        "3.11.9",
    ):
        assert expected in text, expected
    shot = browser.call("Page.captureScreenshot", format="png")
    assert len(shot["data"]) > 10_000


def test_partial_journal_of_a_crashed_run_renders_in_the_browser(
    browser: DevTools, tmp_path: Path
) -> None:
    run = tmp_path / "crashed"
    write_journal(run / "journal.jsonl", crash_at=11)
    render_run(run)
    assert _open(browser, run / "report.html") == []
    assert browser.evaluate("document.querySelector('img#timeline').naturalWidth") > 0
    assert "INCOMPLETE" in browser.evaluate("document.getElementById('status').innerText")
