"""pytest plugin: `pytest scenarios/` runs each scenario once and reports one item per SLO.

A YAML file is collected when it has top-level `target:` and `slos:` keys. The run
happens when the first of its items runs; the other items read the same result.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

_ANNOTATIONS = pytest.StashKey[list[str]]()  # GitHub `::error` lines of the failed SLO items
_ANNOTATED_RUNS = pytest.StashKey[set[Path]]()  # incomplete runs already annotated
_RUN_DIRS = pytest.StashKey[list[Path]]()  # the run folders of this session, in run order
_SCENARIO_KEYS = (re.compile(r"^target\s*:", re.MULTILINE), re.compile(r"^slos\s*:", re.MULTILINE))


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("aftershock", "aftershock scenarios")
    group.addoption("--aftershock-quick", action="store_true", default=False,
                    help="scale every scenario duration down (x0.25), as `aftershock run --quick`")
    group.addoption("--aftershock-output", default=None, metavar="DIR",
                    help="reports folder (default: each scenario's output.dir)")
    group.addoption("--aftershock-allow-host", action="append", default=[], metavar="HOST",
                    help="allow a non-loopback host (repeatable)")


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix not in (".yaml", ".yml"):
        return None
    try:
        text = file_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if all(p.search(text) for p in _SCENARIO_KEYS):
        return ScenarioFile.from_parent(parent, path=file_path)
    return None


class ScenarioFile(pytest.File):
    _result: Any = None

    def collect(self):
        from harness.core.fault import UserError
        from harness.engine.scenario.loader import load_scenario

        try:
            self.loaded = load_scenario(self.path, allow_hosts=self.config.getoption("--aftershock-allow-host"))
        except UserError as exc:
            self._annotate_problems(exc)
            raise self.CollectError(f"bad scenario (exit code 2 from `aftershock run`):\n{exc}") from None
        from harness.engine.redaction import Redactor

        slos = self.loaded.scenario.slos
        if not slos:
            yield ScenarioSloItem.from_parent(self, name="run completes", slo_index=None)
        redactor = Redactor(self.loaded.secrets)  # item names reach the terminal and JUnit XML
        for i, slo in enumerate(slos):
            yield ScenarioSloItem.from_parent(self, name=redactor.text(slo.name), slo_index=i)

    def _annotate_problems(self, exc: Exception) -> None:
        from harness.workflows.ci_output import github_actions, problem_annotation

        if github_actions():
            self.config.stash.setdefault(_ANNOTATIONS, []).extend(
                problem_annotation(p.file, p.line, p.col, p.path, p.message) for p in getattr(exc, "problems", []))

    def result(self) -> Any:
        if self._result is None:
            from harness.engine.runner import Runner, RunOptions

            cfg = self.config
            output = cfg.getoption("--aftershock-output")
            opts = RunOptions(quick=cfg.getoption("--aftershock-quick"), output_dir=Path(output) if output else None)
            self._result = Runner(self.loaded, opts).run()
            self.config.stash.setdefault(_RUN_DIRS, []).append(self._result.run_dir)
        return self._result


class SloFailed(Exception):
    pass


# why a run that did not complete fails every item, by RunResult.status
_INCOMPLETE = {
    "aborted": "the run was aborted by a stop condition",
    "interrupted": "the run was interrupted",
    "error": "the run did not complete (error)",
}


class ScenarioSloItem(pytest.Item):
    def __init__(self, *, slo_index: int | None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.slo_index = slo_index

    def runtest(self) -> None:
        run = self.parent.result()
        self.user_properties.append(("run_dir", str(run.run_dir)))
        if run.status not in ("passed", "failed"):
            # An aborted, interrupted or errored run judged only part of its plan: an SLO
            # that "held" until the abort says nothing, so every item of the scenario fails.
            self._annotate_incomplete(run)
            raise SloFailed(f"{_INCOMPLETE.get(run.status, run.status)} (exit code {run.exit_code}): {run.message}\n"
                            f"run dir: {run.run_dir}")
        if self.slo_index is None:
            return
        v = run.result["slos"][self.slo_index]
        self.user_properties += [("expect", v["expect"]), ("measured", v["measured"]), ("unit", v["unit"]),
                                 ("scope", v["scope"])]
        if v["passed"] is True:
            return
        from harness.workflows.ci_output import annotation, github_actions
        from harness.reports.failures import slo_failure

        report = run.run_dir / "report.html"
        if github_actions():  # written after the session's tests (pytest_terminal_summary), outside capture
            line = self.parent.loaded.slo_lines[self.slo_index]
            self.config.stash.setdefault(_ANNOTATIONS, []).append(
                annotation(run.result, v, self.parent.loaded.path, line, report))
        raise SloFailed(f"{slo_failure(v, run.result)}\nreport: {report}")

    def _annotate_incomplete(self, run: Any) -> None:
        """One annotation per incomplete run, however many of its items fail."""
        from harness.workflows.ci_output import github_actions, run_annotation

        done = self.config.stash.setdefault(_ANNOTATED_RUNS, set())
        if github_actions() and run.run_dir not in done:
            done.add(run.run_dir)
            line = run_annotation(run.result, self.parent.loaded.path, run.run_dir / "report.html")
            if line:
                self.config.stash.setdefault(_ANNOTATIONS, []).append(line)

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException], style: Any = None) -> str:
        if isinstance(excinfo.value, SloFailed):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int | None, str]:
        # the node id: what a failure header shows can be pasted back into `pytest`
        line = None if self.slo_index is None else self.parent.loaded.slo_lines[self.slo_index] - 1
        return self.path, line, self.nodeid


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    """In a GitHub Actions job: the failed SLOs as `::error` annotations, and each run's
    summary.md appended to the job summary."""
    from harness.workflows.ci_output import append_step_summary, github_actions

    if not github_actions():
        return
    for line in config.stash.get(_ANNOTATIONS, []):
        terminalreporter.write_line(line)
    for run_dir in config.stash.get(_RUN_DIRS, []):
        append_step_summary(run_dir / "summary.md")
