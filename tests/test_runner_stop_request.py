"""Runner.request_stop, the hook behind the dashboard's Stop button, on a real run of a tiny
target: asked from another thread mid-load, the run aborts like a stop condition (exit 3, the
reason in result.json and the journal) long before its planned end; asked before the run
starts, it aborts as soon as the load phase begins."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from tiny_target import write_scenario

from harness.engine.load.reference_server import ReferenceServer
from harness.engine.runner import EXIT_ABORTED, Runner, RunOptions
from harness.engine.scenario.loader import load_scenario


def test_a_stop_requested_mid_load_aborts_with_exit_3(tmp_path: Path) -> None:
    with ReferenceServer(fast=True) as srv:
        loaded = load_scenario(write_scenario(tmp_path, "stoppable", srv.url, duration="60s"))
        runner = Runner(loaded, RunOptions(output_dir=tmp_path / "out"))
        windows = threading.Event()
        runner.options.listeners.append(lambda e: windows.set() if e["event"] == "window" else None)

        def press_stop() -> None:
            windows.wait(timeout=120)
            runner.request_stop("stopped from the dashboard")

        threading.Thread(target=press_stop, daemon=True).start()
        started = time.monotonic()
        result = runner.run()
    assert result.exit_code == EXIT_ABORTED and result.status == "aborted", result.message
    assert result.message == "stopped from the dashboard"
    assert time.monotonic() - started < 45, "aborted long before the planned 60 s of load"
    saved = json.loads((result.run_dir / "result.json").read_text())
    assert saved["status"] == "aborted" and saved["message"] == "stopped from the dashboard"
    events = [json.loads(line) for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    aborted = [e for e in events if e["event"] == "run.aborted"]
    assert [e["reason"] for e in aborted] == ["stopped from the dashboard"]


def test_a_stop_requested_before_the_run_aborts_at_the_load_phase(tmp_path: Path) -> None:
    with ReferenceServer(fast=True) as srv:
        loaded = load_scenario(write_scenario(tmp_path, "early", srv.url, duration="60s"))
        runner = Runner(loaded, RunOptions(output_dir=tmp_path / "out"))
        runner.request_stop("stopped early")
        result = runner.run()
    assert result.exit_code == EXIT_ABORTED and result.message == "stopped early"
    events = [json.loads(line)["event"] for line in (result.run_dir / "journal.jsonl").read_text().splitlines()]
    assert "run.aborted" in events and "phase" not in events, "no load phase was started"
