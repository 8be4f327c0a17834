"""The attack scenarios end to end: each holds against the resilient demo and shows the
expected failure against its fragile twin (same scenario, `mode: fragile`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# scenario -> the SLO (by expression) that the fragile demo is expected to fail
CASES = {
    "attack-label-flip": "poison_rejection_rate >= 90% during label-flip",
    "attack-api-fuzz": "rate_limited_share > 0 during flood",
}


def run(scenario: Path, out: Path, quick: bool = True, cwd: Path = ROOT) -> tuple[int, dict, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), *(["--quick"] if quick else []),
                           "-o", str(out)],
                          check=False, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    runs = sorted((out / scenario.stem).glob("*/result.json"))  # file stem == scenario name
    result = json.loads(runs[-1].read_text()) if runs else {}
    return proc.returncode, result, proc.stdout + proc.stderr


# The demo's retrain (a child process) shares the 2-core box with the load and the twin's
# run, so the test runs these with lighter load to keep it inside the quick run's window.
LIGHT_LOAD = {"attack-label-flip": ("users: 8", "users: 2")}


@pytest.mark.parametrize("name", sorted(CASES))
def test_attack_scenario_resilient_holds_fragile_fails(tmp_path: Path, name: str) -> None:
    """The resilient run and its fragile twin at once (the CI's time)."""
    source = tmp_path / f"{name}.yaml"
    text = (ROOT / "scenarios" / f"{name}.yaml").read_text()
    if name in LIGHT_LOAD:
        assert LIGHT_LOAD[name][0] in text
        text = text.replace(*LIGHT_LOAD[name])
    source.write_text(text)
    fragile = tmp_path / "fragile" / f"{name}.yaml"
    fragile.parent.mkdir()
    assert "mode: resilient" in text
    # the fragile twin: patterns off, and no resilience flags passed to the demo either
    twin = "\n".join(line for line in text.splitlines() if not line.strip().startswith("args:"))
    fragile.write_text(twin.replace("mode: resilient", "mode: fragile"))
    with ThreadPoolExecutor(max_workers=2) as pool:
        resilient_run = pool.submit(run, source, tmp_path / "resilient")
        fragile_run = pool.submit(run, fragile, tmp_path / "fragile")
        (code, result, out), (fragile_code, fragile_result, fragile_out) = resilient_run.result(), fragile_run.result()
    assert code == 0, out
    assert all(v["passed"] is True for v in result["slos"]), result["slos"]
    assert "attack.result" in (next((tmp_path / "resilient" / name).iterdir()) / "journal.jsonl").read_text()
    assert fragile_code == 1, fragile_out
    verdicts = {v["expect"]: v for v in fragile_result["slos"]}
    assert verdicts[CASES[name]]["passed"] is False, verdicts[CASES[name]]


def test_evasion_resilient_refuses_the_probing_fragile_is_evaded(tmp_path: Path) -> None:
    code, result, out = run(ROOT / "scenarios" / "attack-evasion.yaml", tmp_path / "resilient")
    assert code == 0, out
    assert all(v["passed"] is True for v in result["slos"]), result["slos"]
    metrics = _attack_metrics(tmp_path / "resilient" / "attack-evasion")
    # the query guard refused the boundary search, and the real users were not refused
    assert metrics["refused_queries"] > 0 and metrics["refused_samples"] > 0
    assert metrics["samples"] >= 10 and metrics["server_errors"] == 0

    # The fragile twin runs the whole 80 s attack window: HopSkipJump then finishes about
    # 16 samples before its 2000-query budget runs out (a quick run, about 6), enough that
    # robust accuracy (about 0.45 for the plain model) is far from the 0.8 line.
    fragile = tmp_path / "attack-evasion.yaml"
    text = (ROOT / "scenarios" / "attack-evasion.yaml").read_text()
    assert "mode: resilient" in text
    fragile.write_text(text.replace("mode: resilient", "mode: fragile"))
    code, result, out = run(fragile, tmp_path / "fragile", quick=False)
    assert code == 1, out
    verdicts = {v["expect"]: v for v in result["slos"]}
    robust = verdicts["robust_accuracy >= 0.8 during hsj"]
    assert robust["passed"] is False and 0 <= robust["measured"] < 0.8, robust
    metrics = _attack_metrics(tmp_path / "fragile" / "attack-evasion")
    assert metrics["refused_queries"] == 0 and metrics["samples"] >= 10 and metrics["queries"] > 0


def _attack_metrics(scenario_out: Path) -> dict:
    journal = (next(scenario_out.iterdir()) / "journal.jsonl").read_text()
    (line,) = [x for x in journal.splitlines() if '"event": "attack.result"' in x]
    return json.loads(line)["metrics"]


def test_quick_fuzz_really_fuzzes_and_a_starved_attack_fails_its_slo(tmp_path: Path) -> None:
    """attack-api-fuzz in quick mode (a 5 s fuzz window), run from a folder with no
    `.hypothesis` cache, as in a fresh CI checkout: hypothesis's cold start once ate the
    whole window, the fuzz sent 0 cases and "no 5xx" passed. It must send cases, and a
    second fuzz whose window (0.25 ms) cannot fit one must leave its SLO not measured, which
    fails the run."""
    text = (ROOT / "scenarios" / "attack-api-fuzz.yaml").read_text()
    anchor = "    - name: flood\n"
    assert anchor in text and "slos:\n" in text and "duration: 70s" in text
    starved = "    - {name: starved, type: abuse.fuzz, at: 66s, duration: 1ms, examples: 20}\n"
    text = text.replace(anchor, starved + anchor).replace(
        "slos:\n", "slos:\n  - {name: starved fuzz, expect: server_errors == 0 during starved}\n")
    source = tmp_path / "attack-api-fuzz.yaml"
    source.write_text(text)
    code, result, out = run(source, tmp_path / "out", cwd=tmp_path)
    (run_dir,) = (tmp_path / "out" / "attack-api-fuzz").iterdir()
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    results = {e["attack"]: e for e in events if e["event"] == "attack.result"}
    fuzz = results["fuzz"]["metrics"]
    assert fuzz["fuzz_cases"] >= 10, (fuzz, out[-2000:])  # 250 at most: 5 s at 50/s
    assert fuzz["fuzz_cases"] == fuzz["client_errors"] + fuzz["accepted"] + fuzz["server_errors"] + fuzz["crashes"]
    assert results["starved"]["metrics"]["fuzz_cases"] == 0 and "server_errors" not in results["starved"]["metrics"]
    assert any(e["event"] == "attack.error" and e.get("attack") == "starved" for e in events)
    verdicts = {v["name"]: v for v in result["slos"]}
    assert verdicts["malformed requests never cause a 5xx"]["passed"] is True
    assert verdicts["malformed requests never cause a 5xx"]["measured"] == 0
    starved_verdict = verdicts["starved fuzz"]  # None: not measured, which fails the run
    assert starved_verdict["passed"] is None and starved_verdict["measured"] is None, starved_verdict
    assert "not measured" in starved_verdict["detail"], starved_verdict
    assert code == 1, out[-2000:]
