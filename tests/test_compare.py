"""`aftershock compare`: the shift statistics against known truths, SLO rows (verdict, margin,
tolerance by SLO and SLI name), run-to-run noise that must not count, real changes that
must, older result.json files, the Markdown table and exit codes, and real runs against a
local OIP v2 server."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from report_journals import write_journal
from tiny_target import write_scenario

from harness.engine.load.reference_server import ReferenceServer, Reply
from harness.reports.writers import render_run
from harness.engine.runner import Runner, RunOptions
from harness.engine.scenario.loader import load_scenario
from harness.workflows.compare import (
    IMPROVED,
    OK,
    REGRESSION,
    CompareError,
    Tolerance,
    Tolerances,
    compare,
    load_result,
    markdown,
    parse_tolerance,
    shift_of,
    window_samples,
)

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


def _row(cmp, kind: str, name: str, scope: str | None = None):
    return next(r for r in cmp.rows if r.kind == kind and r.name == name and (scope is None or r.scope == scope))


# --- the statistics ---------------------------------------------------------------------


def test_shift_recovers_a_known_shift_and_its_interval_covers_it() -> None:
    rnd = random.Random(1)
    base = [rnd.lognormvariate(3, 0.5) for _ in range(30)]
    cur = [rnd.lognormvariate(3, 0.5) + 40 for _ in range(30)]
    s = shift_of(base, cur, 0.95)
    assert s is not None and s.low is not None and s.high is not None
    assert s.low < 40 < s.high and abs(s.estimate - 40) < 8
    assert s.cliffs_delta > 0.9 and (s.n_baseline, s.n_current) == (30, 30)
    same = shift_of(base, base, 0.95)
    assert same.estimate == 0 and same.low < 0 < same.high and same.cliffs_delta == 0


def test_interval_coverage_matches_its_confidence() -> None:
    """Over many draws from one distribution, the 95 % interval holds the true shift (0) about
    95 % of the time; with too few windows there is no interval at all."""
    rnd = random.Random(2)
    draws = 400
    covered = 0
    for _ in range(draws):
        base = [rnd.expovariate(1 / 20) for _ in range(8)]
        cur = [rnd.expovariate(1 / 20) for _ in range(12)]
        s = shift_of(base, cur, 0.95)
        covered += s.low <= 0 <= s.high
    assert 0.92 <= covered / draws <= 0.995
    assert shift_of([1.0, 2.0, 3.0], [4.0, 5.0, 6.0], 0.95).low is None  # 3 vs 3: never 95 % sure
    assert shift_of([], [1.0], 0.95) is None


# --- journals of known content ---------------------------------------------------------------


def test_same_system_different_noise_has_no_regression(tmp_path: Path) -> None:
    a, b = load_result(_run(tmp_path / "a", seed=7)), load_result(_run(tmp_path / "b", seed=8))
    cmp = compare(a, b)
    assert cmp.regressions == [] and cmp.notes == []
    assert {r.kind for r in cmp.rows} == {"slo", "sli"}
    p95 = _row(cmp, "sli", "p95(latency)", "baseline")
    assert p95.baseline != p95.current  # the noise is real: different figures, same system
    assert p95.shift is not None and p95.shift.low <= 0 <= p95.shift.high


def test_slower_fault_window_regresses_slo_and_slis(tmp_path: Path) -> None:
    base = load_result(_run(tmp_path / "base", slow_s=0.1))  # p95 ~130 ms during the fault: SLO holds
    cur = load_result(_run(tmp_path / "cur", slow_s=0.3, seed=8))  # ~330 ms: SLO fails
    cmp = compare(base, cur)
    slo = _row(cmp, "slo", "p95 under 250 ms")
    assert slo.flag == REGRESSION and slo.note == "held before, fails now"
    assert slo.passed == (True, False) and 110 < slo.margin[0] < 130 and -90 < slo.margin[1] < -70
    p95 = _row(cmp, "sli", "p95(latency)", "slow-fs")
    assert p95.flag == REGRESSION and p95.shift.low < 200 < p95.shift.high  # the truth: +200 ms
    flagged = {(r.name, r.scope) for r in cmp.regressions if r.kind == "sli"}
    assert ("p95(latency)", "baseline") not in flagged and ("error_rate", "run") not in flagged
    back = compare(cur, base)
    assert back.regressions == [] and _row(back, "sli", "p95(latency)", "slow-fs").shift.high < -150
    assert _row(back, "slo", "p95 under 250 ms").flag == IMPROVED


def test_an_slo_that_holds_in_both_runs_is_not_a_regression(tmp_path: Path) -> None:
    """p95 during the fault goes from ~30 ms to ~130 ms against a 250 ms limit: the SLO row
    shows the shrinking margin and stays ok; the SLI row reports the real slowdown."""
    base = load_result(_run(tmp_path / "base", slow_s=0.0))
    cur = load_result(_run(tmp_path / "cur", slow_s=0.1, seed=8))
    cmp = compare(base, cur)
    slo = _row(cmp, "slo", "p95 under 250 ms")
    assert slo.flag == OK and slo.passed == (True, True) and slo.margin[0] > slo.margin[1] > 100
    assert _row(cmp, "sli", "p95(latency)", "slow-fs").flag == REGRESSION


def _with_accuracy_slo(result: dict, measured: float) -> dict:
    result = json.loads(json.dumps(result))
    result["slos"].append({"name": "fallback keeps accuracy", "expect": "accuracy >= 0.9 during slow-fs",
                           "passed": measured >= 0.9, "measured": measured, "unit": "fraction",
                           "threshold": 0.9, "scope": "slow-fs", "detail": ""})
    return result


def test_tolerances_apply_to_slo_rows_by_slo_and_sli_name(tmp_path: Path) -> None:
    run = load_result(_run(tmp_path / "a"))
    base, cur = _with_accuracy_slo(run, 0.91), _with_accuracy_slo(run, 0.89)
    row = _row(compare(base, cur), "slo", "fallback keeps accuracy")
    assert row.flag == OK and "within tolerance" in row.note  # 2 points: inside the default 5
    for key in ("accuracy", "fallback keeps accuracy", "rate"):
        strict = Tolerances(dict([parse_tolerance(f"{key}=0.01")]))
        row = _row(compare(base, cur, strict), "slo", "fallback keeps accuracy")
        assert row.flag == REGRESSION and row.tolerance == pytest.approx(0.01), key
    # an SLI tolerance by name reaches the SLI rows too
    loose = Tolerances(dict([parse_tolerance("p95(latency)=10s")]))
    slow = load_result(_run(tmp_path / "slow", slow_s=0.3, seed=8))
    assert ("p95(latency)", "slow-fs") not in {(r.name, r.scope) for r in compare(run, slow, loose).regressions}


def test_error_rate_rise_is_a_regression_beyond_tolerance(tmp_path: Path) -> None:
    base = load_result(_run(tmp_path / "base", fail_share=0.05))
    cur = load_result(_run(tmp_path / "cur", fail_share=0.5, seed=8))
    cmp = compare(base, cur)
    err = _row(cmp, "sli", "error_rate", "slow-fs")
    assert err.flag == REGRESSION and err.shift.low < 0.45 < err.shift.high
    assert _row(cmp, "slo", "availability").flag == REGRESSION
    loose = compare(base, cur, Tolerances(dict([parse_tolerance("rate=0.9")])))
    assert not any(r.kind == "sli" for r in loose.regressions)


def test_parse_tolerance() -> None:
    assert parse_tolerance("p95(latency)=15%") == ("p95(latency)", Tolerance(relative=0.15))
    assert parse_tolerance("p95 under 250 ms=20ms") == ("p95 under 250 ms", Tolerance(absolute=20, unit="ms"))
    assert Tolerances(dict([parse_tolerance("time=500ms")])).of(["recovers"], "s").absolute == 0.5
    with pytest.raises(CompareError, match="KEY=VALUE"):
        parse_tolerance("p95=fast")


def test_cli_prints_markdown_writes_file_and_exits_1_on_regression(tmp_path: Path) -> None:
    base = _run(tmp_path / "base", slow_s=0.1)
    cur = _run(tmp_path / "cur", slow_s=0.3, seed=8)
    same = _cli(str(base), str(base / "result.json"))
    assert same.returncode == 0 and "no regression" in same.stdout
    proc = _cli(str(base), str(cur), "--markdown", str(tmp_path / "cmp.md"))
    assert proc.returncode == 1, proc.stderr
    assert "## aftershock compare: REGRESSION" in proc.stdout
    assert "| p95 under 250 ms | slow-fs | PASS 12" in proc.stdout and "| ❌ regression | held before, fails now |" in proc.stdout
    assert "Mann–Whitney" in proc.stdout and "| p95(latency) | slow-fs |" in proc.stdout
    assert (tmp_path / "cmp.md").read_text().strip() == proc.stdout.strip()
    bad = _cli(str(base), str(tmp_path / "nowhere"))
    assert bad.returncode == 2 and "no such file or folder" in bad.stderr and "Traceback" not in bad.stderr
    badtol = _cli(str(base), str(cur), "-t", "p95=fast")
    assert badtol.returncode == 2 and "KEY=VALUE" in badtol.stderr


def test_folder_of_runs_and_older_result_files(tmp_path: Path) -> None:
    _run(tmp_path / "scn" / "20250101T000000Z", slow_s=0.1)
    _run(tmp_path / "scn" / "20250102T000000Z", slow_s=0.3, seed=8)
    newest = load_result(tmp_path / "scn")
    assert newest["slos"][0]["passed"] is False
    old = json.loads((tmp_path / "scn" / "20250101T000000Z" / "result.json").read_text())
    # windows without their scopes (older result.json): the scopes come from the timeline
    undated = json.loads(json.dumps(old))
    for w in undated["windows"]:
        del w["scopes"]
    assert window_samples(undated)[("p95(latency)", "slow-fs")] == window_samples(old)[("p95(latency)", "slow-fs")]
    assert window_samples(undated)[("p95(latency)", "baseline")] == window_samples(old)[("p95(latency)", "baseline")]
    # no windows at all: SLI rows are shown but not judged
    undated.pop("windows")
    cmp = compare(undated, newest)
    assert any("not judged" in n for n in cmp.notes)
    assert all(r.flag != REGRESSION for r in cmp.rows if r.kind == "sli")
    old.pop("slis")
    cmp = compare(old, newest)
    assert any("per-SLI deltas skipped" in n for n in cmp.notes) and "per-SLI deltas skipped" in markdown(cmp)


# --- real runs ---------------------------------------------------------------------------------


def test_real_runs_same_server_is_not_and_slower_server_is_a_regression(tmp_path: Path) -> None:
    """Three real runs of one scenario: twice against a 2 ms server, once against 40 ms."""
    results = []
    for name, delay in (("fast", 0.002), ("again", 0.002), ("slow", 0.040)):
        folder = tmp_path / name
        folder.mkdir()
        with ReferenceServer(lambda n, d=delay: Reply(delay=d)) as srv:
            scenario = write_scenario(folder, "tiny", srv.url, duration="4s")
            res = Runner(load_scenario(scenario), RunOptions(output_dir=folder / "reports")).run()
        assert res.status == "passed", res.message
        results.append(load_result(res.run_dir))
    assert compare(results[0], results[1]).regressions == []
    cmp = compare(results[0], results[2])
    flagged = {(r.name, r.scope) for r in cmp.regressions}
    assert ("p50(latency)", "run") in flagged and ("p95(latency)", "run") in flagged
    p50 = _row(cmp, "sli", "p50(latency)", "run")
    # the truth: the server waits 38 ms more per request (a sleep overshoots by a little)
    assert abs(p50.shift.estimate - 38) < 2 + 0.05 * 38 and p50.shift.low < p50.shift.estimate < p50.shift.high
    assert _row(cmp, "slo", "fast enough").flag == OK  # 40 ms is still far inside 500 ms
