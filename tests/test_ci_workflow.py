"""The GitHub Actions workflow of harness/reports/README.md, run here as far as it can be: its
`run:` steps in order, in bash, as GitHub runs them (`bash -e {0}`, `if: always()` honoured),
with one real flagship scenario in `scenarios/` and the baseline stored as the README says."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from test_docs_shell import fenced_blocks, workflow_steps

ROOT = Path(__file__).resolve().parents[1]
SCENARIO = "feature-store-latency"


def readme_workflow() -> list[dict]:
    text = (ROOT / "harness" / "reports" / "README.md").read_text(encoding="utf-8")
    steps = next(s for lang, _, body in fenced_blocks(text) if lang == "yaml" and (s := workflow_steps(body)))
    return [s for s in steps if "run" in s]


def test_readme_workflow_runs(tmp_path: Path) -> None:
    work = tmp_path / "repo"
    (work / "scenarios").mkdir(parents=True)
    shutil.copy(ROOT / "scenarios" / f"{SCENARIO}.yaml", work / "scenarios")
    summary = tmp_path / "step-summary.md"
    bin_dir = Path(sys.executable).parent  # where the venv's pytest and aftershock are
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "CI": "true",
           "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(work), "GITHUB_STEP_SUMMARY": str(summary)}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    failed = False
    ran = []
    for step in readme_workflow():
        script = step["run"]
        if script.startswith("pip install"):
            continue  # the package is installed here already; no network in tests
        if failed and "always()" not in str(step.get("if", "")):
            continue
        if "aftershock compare baselines/" in script and not (work / "baselines").exists():
            # the README: "Store a baseline by copying a good run's result.json to baselines/"
            (work / "baselines").mkdir()
            run_dir = max((work / "reports" / SCENARIO).iterdir())
            shutil.copy(run_dir / "result.json", work / "baselines" / f"{SCENARIO}.json")
        r = subprocess.run(["bash", "-e", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                           timeout=300, check=False)
        ran.append((step.get("name") or script[:40], r.returncode, r.stdout[-2000:] + r.stderr[-2000:]))
        failed = failed or r.returncode != 0
    assert len(ran) >= 3, ran
    assert not failed, "\n\n".join(f"{name}: exit {rc}\n{log}" for name, rc, log in ran)
    run_dir = max((work / "reports" / SCENARIO).iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["quick"] is True and result["status"] == "passed"
    assert (work / "reports" / "junit.xml").is_file()
    text = summary.read_text()
    assert f"## aftershock: {SCENARIO}" in text  # the pytest step appended summary.md
    assert (work / "reports" / "compare.md").read_text().strip() in text  # the comparison step


def test_the_workflow_installs_every_program_its_steps_call() -> None:
    """A fresh runner has only what the pip step installs: pytest is no dependency of aftershock."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    steps = [s["run"] for s in readme_workflow()]
    install = next(s for s in steps if s.startswith("pip install"))
    installed = " ".join(project["dependencies"])
    for extras in re.findall(r"\.\[([a-z0-9_,-]+)\]", install):
        installed += " " + " ".join(d for e in extras.split(",") for d in project["optional-dependencies"][e])
    installed += " " + install
    for program in ("pytest",):
        if any(re.search(rf"(^|\s){program}\s", s) for s in steps):
            assert re.search(rf"\b{program}\b", installed), f"a step runs {program}; `{install}` does not install it"
