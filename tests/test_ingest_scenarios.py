"""The shipped replay-ingestion pair end to end, at once (two child processes): the resilient
demo through the real CLI passes, the fragile twin as pytest items fails its two ingestion
SLOs. Each figure is checked against what the run's own journal says was sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def journal_of(out: Path, name: str) -> list[dict[str, Any]]:
    (run,) = sorted((out / name).iterdir())
    return [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]


def test_replay_ingestion_resilient_passes_fragile_fails(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    junit = tmp_path / "fragile.xml"
    resilient = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "scenarios/replay-ingestion.yaml", "--quick", "-o", str(tmp_path / "r")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    fragile = subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios/replay-ingestion-fragile.yaml", "--aftershock-quick",
         "--aftershock-output", str(tmp_path / "f"), f"--junitxml={junit}", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    r_out, _ = resilient.communicate(timeout=300)
    f_out, _ = fragile.communicate(timeout=300)

    assert resilient.returncode == 0, r_out
    events = journal_of(tmp_path / "r", "replay-ingestion")
    (summary,) = [e for e in events if e["event"] == "ingest.summary"]
    acts = {e["fault"]: e["metrics"] for e in events if e["event"] == "fault.metrics"}
    assert summary["duplicate_effect"] == 0 and summary["failed_requests"] == 0
    assert min(a[k] for a in acts.values() for k in a) > 0  # every fault acted
    # the demo refused duplicates and late events itself (which reason a delivery gets depends on
    # timing: a duplicate of an event its guard refused is refused by the guard again)
    assert summary["refused"]["duplicate"] > 0 and summary["refused"]["late"] > 0
    assert summary["events_stored"] == summary["rows_read"]  # one row per stored event

    assert fragile.returncode == 1, f_out  # pytest: some items failed
    cases = {c.get("name"): c.find("failure") is None for c in ET.parse(junit).getroot().iter("testcase")}
    assert sorted(cases.values()) == [False, False, True], cases  # both ingestion SLOs fail, availability holds
    events = journal_of(tmp_path / "f", "replay-ingestion-fragile")
    (summary,) = [e for e in events if e["event"] == "ingest.summary"]
    acts = {e["fault"]: e["metrics"] for e in events if e["event"] == "fault.metrics"}
    assert summary["failed_requests"] == 0 and summary["held_at_end"] == 0
    # fragile stores every delivery: each second one is a row counted twice, no more, no less
    assert summary["duplicate_effect"] == acts["retries"]["duplicates_sent"] + acts["rewind"]["replays_sent"] > 0
    assert summary["max_ingest_lag_s"] >= 5.0  # the late events, stored 5 s after they happened
    verdicts = {v["expect"]: v for v in json.loads(next((tmp_path / "f" / "replay-ingestion-fragile").glob("*/result.json")).read_text())["slos"]}
    assert verdicts["duplicate_effect == 0"]["measured"] == summary["duplicate_effect"]
    assert verdicts["max(ingest_lag) < 3s"]["measured"] >= 5.0
