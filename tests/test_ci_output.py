"""CI-native output: unwrapped lines off a terminal, GitHub `::error` annotations on the SLO's
line, summary.md in the job summary, pasteable pytest node ids, failure kinds in messages."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

from tiny_target import write_dataset

from harness.workflows.ci_output import annotations
from harness.engine.load.reference_server import ReferenceServer, Reply
from harness.reports.failures import failure_kinds, fmt_kinds

ROOT = Path(__file__).resolve().parents[1]


def _ci_env(step_summary: Path, workspace: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    env.update(CI="true", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(step_summary),
               GITHUB_WORKSPACE=str(workspace))
    return env


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


def _annotated(stdout: str) -> dict[int, str]:
    """line -> message of each `::error` command for the scenario file."""
    found = {}
    for m in re.finditer(r"^::error file=([^,]+),line=(\d+),title=([^:]+)::(.*)$", stdout, re.MULTILINE):
        found[int(m.group(2))] = (m.group(1), m.group(4))
    return found


def test_failure_kinds_are_counted_in_the_slo_scope_only() -> None:
    result = {"windows": [
        {"scopes": ["run", "baseline"], "failure_kinds": {"timeout": 7}},
        {"scopes": ["run", "fault", "crash"], "failure_kinds": {"http_503": 200, "timeout": 3}},
        {"scopes": ["run", "fault", "crash"], "failure_kinds": {"http_503": 12}},
    ]}
    assert failure_kinds(result, "crash") == Counter(http_503=212, timeout=3)
    assert fmt_kinds(failure_kinds(result, "crash")) == "212 × http_503, 3 × timeout"
    assert fmt_kinds(failure_kinds(result, "run")) == "212 × http_503, 10 × timeout"
    assert failure_kinds(result, "recovery") == Counter()


def test_annotation_escapes_and_skips_held_slos(tmp_path: Path, monkeypatch) -> None:
    result = {"scenario": "s", "status": "failed", "windows": [], "slos": [
        {"name": "held", "expect": "x", "passed": True, "scope": "run", "detail": "ok"},
        {"name": "a, b: c", "expect": "availability >= 99%", "passed": False, "scope": "run",
         "detail": "availability over the run was 50%; expected >= 99%\nsecond line"},
    ]}
    (tmp_path / "s.yaml").write_text("x")
    monkeypatch.setenv("GITHUB_WORKSPACE", str(tmp_path))
    lines = annotations(result, tmp_path / "s.yaml", [3, 5], Path("/r/report.html"))
    expected = ("::error file=s.yaml,line=5,title=s%3A SLO 'a%2C b%3A c' failed::availability over the run "
                "was 50%25; expected >= 99%25%0Asecond line%0Areport: /r/report.html")
    assert lines == [expected]


def test_ci_like_run_is_unwrapped_annotated_and_summarised(tmp_path: Path) -> None:
    """`aftershock run --quick` of a real failing scenario as a GitHub job runs it: stdout and
    stderr to files, GITHUB_ACTIONS=true, a step summary file that already holds a step's text."""
    scenario = "scenarios/dependency-crash-fragile.yaml"
    step = tmp_path / "step-summary.md"
    step.write_text("earlier step\n")
    reports = tmp_path / ("a-reports-folder-whose-name-is-long-enough-that-any-wrapping-at-80-columns-would-cut-it")
    with open(tmp_path / "out.txt", "w") as out, open(tmp_path / "err.txt", "w") as err:
        r = subprocess.run([sys.executable, "-m", "harness.cli", "run", scenario, "--quick", "-o", str(reports)],
                           cwd=ROOT, env=_ci_env(step, ROOT), stdout=out, stderr=err, timeout=300, check=False)
    stdout, stderr = (tmp_path / "out.txt").read_text(), (tmp_path / "err.txt").read_text()
    assert r.returncode == 1, stdout + stderr
    run_dir = next((reports / "dependency-crash-fragile").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    # the report path is whole on one line
    assert f"report: {run_dir / 'report.html'}\n" in stderr
    # one annotation per SLO that did not hold, on its `expect:` line, and none for those that held
    text = (ROOT / scenario).read_text()
    expected = {_line_of(text, f"expect: {v['expect']}"): v for v in result["slos"] if v["passed"] is not True}
    found = _annotated(stdout)
    assert set(found) == set(expected), stdout
    assert "availability >= 99% during store-crash" in [v["expect"] for v in expected.values()]
    for file, message in found.values():
        assert file == scenario
        assert f"%0Areport: {run_dir / 'report.html'}" in message
    availability = _line_of(text, "expect: availability >= 99% during store-crash")
    assert re.search(r"failures seen: \d+ × http_503", found[availability][1]), found[availability]
    # the same fact once on stderr, unwrapped, with the kinds seen
    fails = [line for line in stderr.splitlines() if line.startswith("FAIL ")]
    assert len(fails) == len(expected)
    assert any(re.search(r"^FAIL still answering while the store is down: availability during store-crash "
                         r"was .*; failures seen: \d+ × http_503", line) for line in fails), stderr
    # the job summary keeps the earlier step's text and gains the run's summary.md
    summary = step.read_text()
    assert summary.startswith("earlier step\n")
    assert (run_dir / "summary.md").read_text().strip() in summary
    assert re.search(r"^- \*\*still answering while the store is down\*\*: availability during store-crash was "
                     r".*; failures seen: \d+ × http_503$", summary, re.MULTILINE), summary


def test_pasted_node_id_runs_exactly_that_item(tmp_path: Path) -> None:
    """`pytest 'FILE::NAME'` as a failure header shows it runs that one item; its message says the
    fact once with the failure kinds and the report path; in GitHub Actions it is annotated."""
    (tmp_path / "scenarios").mkdir()
    write_dataset(tmp_path / "scenarios")
    step = tmp_path / "step-summary.md"
    with ReferenceServer(lambda n: Reply(status=503 if n % 4 == 3 else 200)) as srv:
        scenario = tmp_path / "scenarios" / "flaky.yaml"
        scenario.write_text(
            f"name: flaky\ntarget: {{url: {srv.url}, protocol: oip-v2, model: m}}\n"
            "load: {users: 2, duration: 2s, window: 0.5s, data: {dataset: rows.npz}}\n"
            "slos:\n"
            "  - name: fast enough\n"
            "    expect: p95(latency) < 5s\n"
            "  - name: availability\n"
            "    expect: availability >= 99%\n")
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        junit = tmp_path / "junit.xml"
        r = subprocess.run([sys.executable, "-m", "pytest", "scenarios/flaky.yaml::availability", "-p", "no:cacheprovider",
                            "--aftershock-output", str(tmp_path / "reports"), f"--junitxml={junit}", "-rf"],
                           cwd=tmp_path, env=_ci_env(step, tmp_path), capture_output=True, text=True, timeout=300,
                           check=False)
    assert r.returncode == 1, r.stdout + r.stderr
    cases = ET.parse(junit).getroot().findall(".//testcase")
    assert [c.get("name") for c in cases] == ["availability"]  # exactly the pasted item
    assert "1 failed" in r.stdout and "passed" not in r.stdout.splitlines()[-1]
    # the failure header and the summary line are the node id to paste back
    assert "_ scenarios/flaky.yaml::availability _" in r.stdout
    assert "FAILED scenarios/flaky.yaml::availability - " in r.stdout
    run_dir = next((tmp_path / "reports" / "flaky").iterdir())
    failure = cases[0].find("failure")
    text = failure.text or failure.get("message", "")
    assert re.search(r"availability over the run was .*; expected >= 99%; failures seen: \d+ × http_503", text), text
    assert text.count("expected >= 99%") == 1 and f"report: {run_dir / 'report.html'}" in text
    line = _line_of(scenario.read_text(), "expect: availability >= 99%")
    assert re.search(rf"^::error file=scenarios/flaky\.yaml,line={line},title=flaky%3A SLO 'availability' failed::",
                     r.stdout, re.MULTILINE), r.stdout
    assert "## aftershock: flaky" in step.read_text()


def test_an_aborted_run_is_one_annotation_however_many_items_fail(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    with ReferenceServer(lambda n: Reply(status=500 if n >= 40 else 200)) as srv:
        (tmp_path / "aborts.yaml").write_text(
            f"name: aborts\ntarget: {{url: {srv.url}, protocol: oip-v2, model: m}}\n"
            "load: {users: 2, duration: 8s, window: 0.5s, data: {dataset: rows.npz}}\n"
            "slos:\n  - {name: fast enough, expect: p95(latency) < 2s}\n  - {name: some answers, expect: throughput > 0}\n"
            "stop_when:\n  - error_rate > 50% for 1s\n")
        (tmp_path / "pytest.ini").write_text("[pytest]\n")
        r = subprocess.run([sys.executable, "-m", "pytest", "aborts.yaml", "-p", "no:cacheprovider",
                            "--aftershock-output", str(tmp_path / "reports")], cwd=tmp_path,
                           env=_ci_env(tmp_path / "step.md", tmp_path), capture_output=True, text=True, timeout=300,
                           check=False)
    assert r.returncode == 1 and "2 failed" in r.stdout, r.stdout + r.stderr
    errors = [line for line in r.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 1, errors
    assert errors[0].startswith("::error file=aborts.yaml,line=1,title=aborts%3A run aborted::"), errors[0]
    assert "error_rate > 50%25 for 1s" in errors[0] and "(exit code 3)" in errors[0]  # % escaped as GitHub reads it


def test_a_bad_scenario_collected_in_github_actions_is_annotated_where_it_is_wrong(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\ntarget:\n  demo: fraud\nslos:\n  - name: a\n    expect: p95(latency) < 1ms\nload:\n  users: many\n")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    r = subprocess.run([sys.executable, "-m", "pytest", "bad.yaml", "-p", "no:cacheprovider"], cwd=tmp_path,
                       env=_ci_env(tmp_path / "step.md", tmp_path), capture_output=True, text=True, timeout=120,
                       check=False)
    assert r.returncode == 2, r.stdout + r.stderr
    assert re.search(r"^::error file=bad\.yaml,line=8,col=\d+,title=load\.users%3A invalid::", r.stdout, re.MULTILINE), \
        r.stdout
