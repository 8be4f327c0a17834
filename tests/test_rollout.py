"""Model rollouts end to end: rollback_time against a scripted target whose truth the test
knows, the deploy hook's three kinds, and the shipped bad-rollout pair through the real
CLI (resilient passes, fragile fails) and as pytest items."""

from __future__ import annotations

import json
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from servers.scripted_rollout import ScriptedRollout
from tiny_target import write_dataset

from faults.lifecycle.deploy_hook import DeployHook, call, resolve
from harness.core.fault import FaultFailed

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 0.5


def aftershock(*args: str, cwd: Path = ROOT) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def scripted_scenario(folder: Path, name: str, url: str) -> Path:
    write_dataset(folder)
    path = folder / f"{name}.yaml"
    path.write_text(f"""\
name: {name}
target: {{url: {url}, protocol: oip-v2, model: m}}
load: {{users: 2, duration: 7s, window: {WINDOW}s, data: {{dataset: rows.npz, labels: true}}}}
timeline:
  baseline: 1.5s
  faults:
    - name: canary
      type: model.rollout
      at: 1.5s
      duration: 4.5s
      version: "2-bad"
      bad: true
      deploy: {{http: {{url: "{{target}}/admin/deploy"}}}}
      rollback: {{http: {{url: "{{target}}/admin/rollback"}}}}
slos:
  - {{name: rolled back, expect: rollback_time < 4s}}
""")
    return path


def result_of(output: Path, name: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    (run,) = (output / name).iterdir()
    events = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    return json.loads((run / "result.json").read_text()), events


def test_rollback_time_is_within_one_window_of_the_scripted_truth(tmp_path: Path) -> None:
    """Two runs at once: a target that takes the bad version back 1.5 s after the deploy,
    and one that never does (only the fault's own revert stops it): that one fails."""
    out = tmp_path / "reports"
    with ScriptedRollout(rollback_after=1.5) as rolls, ScriptedRollout(rollback_after=None) as stays:
        runs = [aftershock("run", str(scripted_scenario(tmp_path, n, s.url)), "-o", str(out))
                for n, s in (("rolls-back", rolls), ("stays", stays))]
        logs = [p.communicate(timeout=120)[0] for p in runs]
    assert [p.returncode for p in runs] == [0, 1], logs
    result, events = result_of(out, "rolls-back")
    (injected,) = [e for e in events if e["event"] == "fault.injected"]
    assert injected["bad_versions"] == ["2-bad"]
    rollout_at = injected["planned_at"] + injected["skew_s"]  # the span's start, as the SLI reads it
    assert rolls.stopped_at is not None
    truth = rolls.stopped_at - rollout_at
    (verdict,) = result["slos"]
    assert truth - 0.1 <= verdict["measured"] <= truth + WINDOW + 0.05, (truth, verdict)  # one window
    versions = {row["version"]: row for row in result["versions"]}
    assert versions["2-bad"]["bad"] and versions["2-bad"]["requests"] == rolls.served["2-bad"]
    assert versions["2-bad"]["failed"] == rolls.failed["2-bad"] > 0  # read from the 500s' bodies
    assert versions["1"]["accuracy"] == 1.0 and not versions["1"]["bad"]
    stayed, _ = result_of(out, "stays")
    (verdict,) = stayed["slos"]
    assert verdict["passed"] is False and verdict["measured"] is None
    assert "not rolled back" in verdict["detail"]


def test_deploy_hook_command_and_file_kinds(tmp_path: Path) -> None:
    values = {"version": "7", "share": 0.25, "degrade": {"label_noise": 0.1}, "target": "", "artifact": None}
    marker = tmp_path / "deployed.txt"
    hook = DeployHook(command=[sys.executable, "-c", "import sys; open(sys.argv[1], 'w').write(sys.argv[2])",
                               str(marker), "{version}@{share}"])
    call(resolve(hook, values, tmp_path))
    assert marker.read_text() == "7@0.25"
    (tmp_path / "models").mkdir()
    dropped = resolve(DeployHook(file={"dir": "models"}), values, tmp_path)
    call(dropped)
    assert json.loads((tmp_path / "models" / "7.json").read_text()) == {
        "version": "7", "share": 0.25, "degrade": {"label_noise": 0.1}, "artifact": None}
    call({"kind": "restore", "path": dropped["path"], "previous": None})
    assert not (tmp_path / "models" / "7.json").exists()
    failing = DeployHook(command=[sys.executable, "-c", "raise SystemExit('no such model')"])
    with pytest.raises(FaultFailed, match="no such model"):
        call(resolve(failing, values, tmp_path))
    with pytest.raises(FaultFailed, match="does not exist"):
        call(resolve(DeployHook(file={"dir": "nowhere"}), values, tmp_path))
    with pytest.raises(ValueError, match="exactly one of"):
        DeployHook(command=["true"], file={"dir": "models"})


def test_bad_rollout_pair_through_the_cli_and_as_pytest_items(tmp_path: Path) -> None:
    """The resilient run through the CLI and the fragile one as pytest items, at once."""
    resilient = aftershock("run", "scenarios/bad-rollout.yaml", "--quick", "-o", str(tmp_path / "cli"))
    junit = tmp_path / "junit.xml"
    fragile = subprocess.Popen(
        [sys.executable, "-m", "pytest", "scenarios/bad-rollout-fragile.yaml", "--aftershock-quick",
         "--aftershock-output", str(tmp_path / "items"), f"--junitxml={junit}", "-p", "no:cacheprovider"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    cli_log, items_log = resilient.communicate(timeout=300)[0], fragile.communicate(timeout=300)[0]
    assert resilient.returncode == 0, cli_log
    result, _ = result_of(tmp_path / "cli", "bad-rollout")
    by_name = {v["name"]: v for v in result["slos"]}
    assert by_name["the bad version is rolled back quickly"]["measured"] < 8
    assert {row["version"] for row in result["versions"] if row["bad"]} == {"2-bad"}
    assert fragile.returncode == 1, items_log
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    failed = {name for name, c in cases.items() if c.find("failure") is not None}
    assert failed == {"the bad version is rolled back quickly", "few requests see the bad version"}, items_log
