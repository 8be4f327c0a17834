"""The public Python API, for programs that embed aftershock (re-exported by `harness`).

    import harness
    result = harness.run_scenario("scenarios/feature-store-latency.yaml", quick=True)

A bad scenario raises `UserError` (its message names file:line:col, the field and a fix);
a run that happened returns a `RunResult` whatever its verdicts.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# re-exported by `harness` (its __all__): the registries, and the errors a caller catches
from harness.core.fault import UserError  # noqa: F401
from harness.core.registry import ATTACKS, FAULTS, PROBES, PROTOCOLS, PluginError, Registry  # noqa: F401
from harness.engine.runner import Runner, RunOptions
from harness.engine.scenario.loader import LoadedScenario
from harness.engine.scenario.loader import load_scenario as _load_and_validate


@dataclass(frozen=True)
class Verdict:
    """One SLO's outcome. `passed` and `measured` are None when it could not be measured."""

    name: str
    expect: str
    passed: bool | None
    measured: float | None
    detail: str


@dataclass(frozen=True)
class RunResult:
    """What a run decided and where it left its artefacts."""

    status: str  # passed | failed | aborted | interrupted | error
    exit_code: int  # as the CLI's: 0 held, 1 an SLO failed, 3 aborted, 4 harness failure
    verdicts: list[Verdict]
    run_dir: Path  # journal.jsonl, result.json, summary.md, report.html
    report_path: Path | None  # report.html, None if the run wrote none
    message: str

    @property
    def passed(self) -> bool:
        return self.exit_code == 0


def load_scenario(path: str | os.PathLike[str], allow_hosts: Sequence[str] = ()) -> LoadedScenario:
    """Read and fully validate a scenario file (every problem at once, as `aftershock validate`);
    UserError if it is not valid. `allow_hosts` adds non-loopback hosts, as --allow-host."""
    return _load_and_validate(path, allow_hosts=tuple(allow_hosts))


def run_scenario(
    path: str | os.PathLike[str],
    quick: bool = False,
    output_dir: str | os.PathLike[str] | None = None,
    allow_hosts: Sequence[str] = (),
    toxiproxy_url: str | None = None,
) -> RunResult:
    """Run a scenario as `aftershock run` does (every fault undone on every way out) and
    return its verdicts; UserError if the scenario is not valid."""
    loaded = load_scenario(path, allow_hosts)
    options = RunOptions(quick=quick, output_dir=Path(output_dir) if output_dir is not None else None,
                         toxiproxy_url=toxiproxy_url)
    outcome = Runner(loaded, options).run()
    report = outcome.run_dir / "report.html"
    return RunResult(outcome.status, outcome.exit_code, [_verdict(v) for v in outcome.result.get("slos", [])],
                     outcome.run_dir, report if report.is_file() else None, outcome.message)


def _verdict(v: dict[str, Any]) -> Verdict:
    return Verdict(v["name"], v["expect"], v.get("passed"), v.get("measured"), v.get("detail") or "")
