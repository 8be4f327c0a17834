"""What a CI job shows of a run without glue: one failure message per SLO, GitHub Actions
`::error` annotations on the scenario's SLO lines, and summary.md in the job summary.

The CLI (`aftershock run`) and the pytest plugin both use it, so a failure reads the same
in a terminal, a pytest report and an annotation."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, TextIO

from harness.reports.failures import slo_failure


def github_actions() -> bool:
    """True inside a GitHub Actions job (the runner sets GITHUB_ACTIONS=true)."""
    return os.environ.get("GITHUB_ACTIONS") == "true"


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def workspace_path(path: Path) -> str:
    """The path GitHub resolves an annotation against: relative to the checkout when inside it."""
    root = Path(os.environ.get("GITHUB_WORKSPACE") or Path.cwd()).resolve()
    full = path.resolve()
    return str(full.relative_to(root)) if full.is_relative_to(root) else str(full)


def annotation(result: dict[str, Any], v: dict[str, Any], scenario_file: Path, line: int, report: Path) -> str:
    """The `::error` workflow command for one SLO that did not hold, on the line of its `expect:`."""
    verdict = "failed" if v["passed"] is False else "had no data"
    title = _escape_property(f"{result['scenario']}: SLO {v['name']!r} {verdict}")
    message = _escape_data(f"{slo_failure(v, result)}\nreport: {report}")
    return f"::error file={_escape_property(workspace_path(scenario_file))},line={line},title={title}::{message}"


def run_annotation(result: dict[str, Any], scenario_file: Path, report: Path) -> str | None:
    """The `::error` for a run that did not complete (aborted, interrupted, errored), on the
    scenario's first line: its verdicts judged only part of the plan. None for a complete run."""
    if result.get("status") in ("passed", "failed"):
        return None
    title = _escape_property(f"{result.get('scenario', scenario_file.stem)}: run {result.get('status')}")
    message = _escape_data(f"{result.get('message') or result.get('status')} (exit code {result.get('exit_code')})"
                           f"\nreport: {report}")
    return f"::error file={_escape_property(workspace_path(scenario_file))},line=1,title={title}::{message}"


def problem_annotation(file: str, line: int, col: int, field: str, message: str) -> str:
    """The `::error` for one mistake in a file (`aftershock validate`), at its line and column."""
    title = _escape_property(f"{field}: invalid" if field else "invalid scenario")
    return (f"::error file={_escape_property(workspace_path(Path(file)))},line={line},col={col},"
            f"title={title}::{_escape_data(message)}")


def annotations(result: dict[str, Any], scenario_file: Path, slo_lines: list[int], report: Path) -> list[str]:
    """One `::error` for a run that did not complete, else one per SLO that did not hold."""
    if (incomplete := run_annotation(result, scenario_file, report)) is not None:
        return [incomplete]
    return [annotation(result, v, scenario_file, slo_lines[i] if i < len(slo_lines) else 1, report)
            for i, v in enumerate(result.get("slos") or []) if v.get("passed") is not True]


def write_annotations(stream: TextIO, result: dict[str, Any], scenario_file: Path, slo_lines: list[int],
                      report: Path) -> None:
    stream.writelines(line + "\n" for line in annotations(result, scenario_file, slo_lines, report))
    stream.flush()


def append_step_summary(summary_md: Path) -> Path | None:
    """Append the run's summary.md to the file GITHUB_STEP_SUMMARY names; the file it wrote, if any."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target or not summary_md.is_file():
        return None
    with open(target, "a", encoding="utf-8") as f:
        f.write(summary_md.read_text(encoding="utf-8").rstrip("\n") + "\n\n")
    return Path(target)
