"""scenarios/tampered-artifact.yaml end to end against the real demo: the resilient server
refuses the swapped artifact and never serves the tampered version (through the CLI), the
fragile twin loads and serves it (through the pytest face, one item per SLO). The two run
at once; each leaves the artifact's original bytes behind."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"


def only_run(out: Path, name: str) -> Path:
    (run_dir,) = (out / name).iterdir()
    return run_dir


def events(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    lines = (run_dir / "journal.jsonl").read_text().splitlines()
    return [e for e in map(json.loads, lines) if e["event"] == kind]


def verdicts(run_dir: Path) -> dict[str, dict[str, Any]]:
    return {v["expect"]: v for v in json.loads((run_dir / "result.json").read_text())["slos"]}


def assert_artifact_restored(run_dir: Path) -> None:
    artifact = run_dir / "artifacts" / "v2"
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert hashlib.sha256((artifact / "model.pt").read_bytes()).hexdigest() == manifest["sha256"]


def test_resilient_refuses_the_tampered_artifact_fragile_serves_it(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    kw: dict[str, Any] = {"cwd": ROOT, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT,
                          "text": True}
    cli = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(SCENARIOS / "tampered-artifact.yaml"),
                            "--quick", "-o", str(tmp_path / "resilient")], **kw)
    items = subprocess.Popen([sys.executable, "-m", "pytest", "scenarios/tampered-artifact-fragile.yaml", "-v",
                              "-p", "no:cacheprovider", "--aftershock-quick", "--aftershock-output",
                              str(tmp_path / "fragile")], **kw)
    cli_out, items_out = cli.communicate(timeout=400)[0], items.communicate(timeout=400)[0]

    assert cli.returncode == 0, cli_out[-3000:]
    resilient = only_run(tmp_path / "resilient", "tampered-artifact")
    served = verdicts(resilient)["tampered_served == 0"]
    assert served["passed"] is True and served["measured"] == 0, served  # measured: versions were named
    (deploy,) = events(resilient, "tamper.deploy")
    assert deploy["accepted"] is False and "422" in deploy["answer"] and "SHA-256" in deploy["answer"], deploy
    assert not events(resilient, "tamper.rolled_back")  # nothing was taken: nothing to take back
    assert_artifact_restored(resilient)

    assert items.returncode == 1, items_out[-3000:]
    # (its availability item is not judged here: with no timeouts, a starved 2-core box stalls it)
    assert "FAILED scenarios/tampered-artifact-fragile.yaml::the tampered version never answers" in items_out
    fragile = only_run(tmp_path / "fragile", "tampered-artifact-fragile")
    served = verdicts(fragile)["tampered_served == 0"]
    assert served["passed"] is False and served["measured"] > 0, served
    (deploy,) = events(fragile, "tamper.deploy")
    assert deploy["accepted"] is True, deploy
    assert len(events(fragile, "tamper.rolled_back")) == 1
    assert_artifact_restored(fragile)
