"""The public API: what `import harness` offers, and README's "Embedding aftershock" example,
run as written but for the scenario (a short one against the reference server)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import harness
from harness.engine.load.reference_server import ReferenceServerProcess, Reply
from tests.tiny_target import write_scenario

ROOT = Path(__file__).resolve().parents[1]
PUBLIC = ["ATTACKS", "FAULTS", "PROBES", "PROTOCOLS", "PluginError", "Registry", "RunResult", "UserError",
          "Verdict", "load_scenario", "run_scenario"]


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("## Embedding aftershock", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "README's Embedding section has no python example"
    return match.group(1)


def test_nothing_else_is_exported() -> None:
    assert sorted(harness.__all__) == sorted(PUBLIC)
    namespace: dict[str, object] = {}
    exec("from harness import *", namespace)  # noqa: S102 - what a star import takes is the point
    assert sorted(k for k in namespace if k != "__builtins__") == sorted(PUBLIC)
    assert dir(harness) == sorted(PUBLIC)


def test_importing_a_part_does_not_import_the_engine() -> None:
    code = "import sys, harness.core.units; print('harness.engine.runner' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "False"


def slow_answers(n: int) -> Reply:
    return Reply(delay=0.02)


def test_the_readme_example_runs(tmp_path: Path) -> None:
    example = readme_example()
    assert 'path = "scenarios/feature-store-latency.yaml"' in example
    with ReferenceServerProcess(slow_answers) as server:
        scenario = write_scenario(tmp_path, "embedded", server.url, p95_limit="10ms", duration="3s")
        code = example.replace('path = "scenarios/feature-store-latency.yaml"', f"path = {str(scenario)!r}")
        proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "embedded: 2 SLOs"
    # every answer takes 20 ms or more, so p95 < 10 ms fails; every one comes, so availability holds
    assert any(line.startswith("FAIL fast enough: p95(latency) < 10ms (measured ") for line in lines), lines
    assert "PASS available: availability >= 99% (measured 1.0)" in lines, lines
    (report,) = [line.removeprefix("report: ") for line in lines if line.startswith("report: ")]
    assert Path(report).is_file() and Path(report).is_relative_to(tmp_path / "reports" / "embedded")
    assert "network.latency" in lines[-1] and lines[-1].startswith("fault types: ")


def test_a_bad_scenario_is_a_user_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntarget: {url: 'http://127.0.0.1:9'}\nload: {users: 2, duration: 2s}\n"
                   "timeline:\n  faults:\n    - {name: f, type: network.latncy, dependency: x, at: 0s, duration: 1s}\n")
    with pytest.raises(harness.UserError) as caught:
        harness.load_scenario(bad)
    assert f"{bad}:6:" in str(caught.value) and "did you mean 'network.latency'" in str(caught.value)
