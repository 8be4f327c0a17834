"""`aftershock compare`: per-SLO and per-SLI deltas with tolerances, the Markdown table, and
exit 1 on a regression — on journals and on real runs against a local OIP v2 server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from report_journals import write_journal
from tiny_target import write_scenario

from harness.compare import (
    REGRESSION,
    CompareError,
    Tolerance,
    Tolerances,
    compare,
    load_result,
    markdown,
    parse_tolerance,
)
from harness.load.reference_server import ReferenceServer, Reply
from harness.report.writers import render_run
from harness.runner import Runner, RunOptions
from harness.scenario.loader import load_scenario

ROOT = Path(__file__).resolve().parents[1]


def _run(folder: Path, **kw) -> Path:
    write_journal(folder / "journal.jsonl", **kw)
    render_run(folder)
    return folder


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "compare", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_same_run_has_no_regression(tmp_path: Path) -> None:
    run = _run(tmp_path / "a")
    cmp = compare(load_result(run), load_result(run / "result.json"))
    assert cmp.regressions == [] and cmp.notes == []
    assert {r.kind for r in cmp.rows} == {"slo", "sli"}


def test_slower_fault_window_regresses_slo_and_slis(tmp_path: Path) -> None:
    base = load_result(
        _run(tmp_path / "base", slow_s=0.1)
    )  # p95 ~130 ms during the fault: SLO holds
    cur = load_result(_run(tmp_path / "cur", slow_s=0.3))  # ~330 ms: SLO fails
    cmp = compare(base, cur)
    slo = next(r for r in cmp.rows if r.kind == "slo" and r.name == "p95 under 250 ms")
    assert slo.flag == REGRESSION and slo.note == "held before, fails now" and 190 < slo.delta < 210
    flagged = {(r.name, r.scope) for r in cmp.regressions if r.kind == "sli"}
    assert ("p95(latency)", "slow-fs") in flagged and ("p95(latency)", "baseline") not in flagged
    assert ("error_rate", "run") not in flagged  # same failures: within tolerance
    back = compare(cur, base)
    assert back.regressions == [] and any(r.flag == "improved" for r in back.rows)


def test_tolerances_decide_what_counts(tmp_path: Path) -> None:
    base = load_result(_run(tmp_path / "base", fail_share=0.10))
    cur = load_result(_run(tmp_path / "cur", fail_share=0.16))
    assert any(r.name == "error_rate" for r in compare(base, cur).regressions)
    loose = compare(base, cur, Tolerances(dict([parse_tolerance("rate=0.1")])))
    assert not any(r.kind == "sli" for r in loose.regressions)
    # an SLO that held and now fails is a regression whatever the tolerance
    assert [(r.kind, r.name) for r in loose.regressions] == [("slo", "availability")]
    assert parse_tolerance("p95(latency)=15%") == ("p95(latency)", Tolerance(relative=0.15))
    assert Tolerances(dict([parse_tolerance("time=500ms")])).of("recovers", "s").absolute == 0.5
    with pytest.raises(CompareError, match="KEY=VALUE"):
        parse_tolerance("p95=fast")


def test_cli_prints_markdown_writes_file_and_exits_1_on_regression(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", slow_s=0.1)
    cur = _run(tmp_path / "cur", slow_s=0.3)
    same = _cli(str(base), str(base / "result.json"))
    assert same.returncode == 0 and "no regression" in same.stdout
    proc = _cli(str(base), str(cur), "--markdown", str(tmp_path / "cmp.md"))
    assert proc.returncode == 1, proc.stderr
    assert "## aftershock compare: REGRESSION" in proc.stdout
    assert (
        "| p95 under 250 ms | slow-fs | 129.1 ms | 329.1 ms | +200 ms | ❌ regression | held before, fails now |"
        in proc.stdout
    )
    assert (tmp_path / "cmp.md").read_text().strip() == proc.stdout.strip()
    bad = _cli(str(base), str(tmp_path / "nowhere"))
    assert (
        bad.returncode == 2
        and "no such file or folder" in bad.stderr
        and "Traceback" not in bad.stderr
    )


def test_folder_of_runs_uses_the_newest_and_older_results_skip_slis(tmp_path: Path) -> None:
    _run(tmp_path / "scn" / "20250101T000000Z", slow_s=0.1)
    _run(tmp_path / "scn" / "20250102T000000Z", slow_s=0.3)
    newest = load_result(tmp_path / "scn")
    assert newest["slos"][0]["passed"] is False
    old = json.loads((tmp_path / "scn" / "20250101T000000Z" / "result.json").read_text())
    old.pop("slis")
    cmp = compare(old, newest)
    assert any(
        "per-SLI deltas skipped" in n for n in cmp.notes
    ) and "per-SLI deltas skipped" in markdown(cmp)


def test_real_runs_slower_server_is_a_regression(tmp_path: Path) -> None:
    """Two real runs of one scenario: the server slowed from 2 ms to 40 ms per request."""
    results = []
    for name, delay in (("fast", 0.002), ("slow", 0.040)):
        folder = tmp_path / name
        folder.mkdir()
        with ReferenceServer(lambda n, d=delay: Reply(delay=d)) as srv:
            scenario = write_scenario(folder, "tiny", srv.url, duration="2s")
            res = Runner(load_scenario(scenario), RunOptions(output_dir=folder / "reports")).run()
        assert res.status == "passed", res.message
        results.append(res.run_dir)
    cmp = compare(load_result(results[0]), load_result(results[1]))
    flagged = {(r.name, r.scope) for r in cmp.regressions}
    assert ("p95(latency)", "run") in flagged and ("throughput", "run") in flagged
    p95 = next(r for r in cmp.rows if r.name == "p95(latency)" and r.scope == "run")
    assert p95.baseline < 30 and p95.current >= 38
