"""What a newcomer hit following the README: validate listing every mistake at once, help
that lists options in one style, probe-target/init errors naming the real cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

MISTAKES = """\
name: many-mistakes
target: {demo: fraud, protocol: oip-v2}
dependencies:
  feature-store: {upstream: demo}
load: {users: many, duration: 20s, data: {dataset: demo}}
timeline:
  baseline: 5s
  faults:
    - name: slow
      type: network.latenci
      dependency: feature-store
      at: 5s
      duration: 5s
slos:
  - name: latency
    expect: p95(latncy) < 250ms
  - name: availability
    expect: availabilty >= 99%
  - name: errors
    expect: error_rate < 1% during slwo
stop_when:
  - error_rat > 50% for 5s
"""


def cli(*args: str, cwd: Path = ROOT, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False, env=_plain_env())


def _plain_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "GITHUB_ACTIONS")}


def test_validate_reports_every_mistake_of_a_file_at_once(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(MISTAKES)
    r = cli("validate", str(bad))
    assert r.returncode == 2 and "Traceback" not in r.stderr
    located = [line for line in r.stderr.splitlines() if line.startswith(f"{bad}:")]
    assert [line.split(":")[1] for line in located] == ["5", "10", "16", "18", "20", "22"], r.stderr
    text = r.stderr
    assert "load.users" in text
    assert "unknown fault type 'network.latenci' (did you mean 'network.latency'?)" in text
    assert "p95() applies to latency only; did you mean 'latency'?" in text
    assert "did you mean 'availability'?" in text and "did you mean 'slow'?" in text
    assert "did you mean 'error_rate' or" in text


def test_validate_of_a_good_file_is_ok() -> None:
    r = cli("validate", "scenarios/feature-store-latency.yaml")
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr
