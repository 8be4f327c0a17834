"""The generative demo's shipped scenarios, each pair through the real CLI with `--quick`:
the resilient gateway holds every SLO (exit 0), the fragile twin fails the SLO the
scenario is about (exit 1), read back from result.json. The two runs of a pair go
concurrently, as two child processes; the pairs one after another, so that the TTFT and
ITL figures measure the demo, not six runs fighting over two cores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# scenario -> the SLOs (their `expect:`) the fragile twin must fail
CASES = {
    "llm-stream-stall": ["p99(itl) < 1s during stall", "stream_error_rate <= 5% during stall"],
    "llm-prompt-injection": ["leak_rate == 0 during leak", "injection_success_rate <= 5% during inject"],
    "llm-preemption": ["availability >= 95% during preempt"],
}


def run_pair(name: str, output: Path) -> dict[str, tuple[int, dict, str]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    procs = {}
    for twin in (name, f"{name}-fragile"):
        procs[twin] = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", f"scenarios/{twin}.yaml", "--quick",
                                        "-o", str(output)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                       stderr=subprocess.STDOUT, text=True)
    results = {}
    for twin, proc in procs.items():
        out, _ = proc.communicate(timeout=600)
        (run_dir,) = (output / twin).iterdir()
        results[twin] = (proc.returncode, json.loads((run_dir / "result.json").read_text()), out)
    return results


@pytest.mark.parametrize("name", list(CASES))
def test_resilient_holds_fragile_fails(name: str, tmp_path: Path) -> None:
    results = run_pair(name, tmp_path)
    code, result, out = results[name]
    assert code == 0, out
    assert result["slos"] and all(v["passed"] for v in result["slos"]), out
    code, result, out = results[f"{name}-fragile"]
    assert code == 1, out
    verdicts = {v["expect"]: v["passed"] for v in result["slos"]}
    for expect in CASES[name]:
        assert verdicts[expect] is False, f"{expect} should fail against the fragile demo:\n{out}"
