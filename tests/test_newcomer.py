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


def test_drift_test_counts_a_4xx_rejection_of_corrupted_data_right_and_keeps_earlier_tables(tmp_path: Path) -> None:
    """Every second request is rejected with 400: on corrupted data that is the right answer
    (column "mean, 4xx right"), on the clean data it stays wrong; a second run adds its own files."""
    import json

    from tiny_target import write_dataset

    from harness.load.reference_server import ReferenceServer, Reply

    data = write_dataset(tmp_path)
    out = tmp_path / "tables"
    with ReferenceServer(lambda n: Reply(status=400 if n % 2 == 1 else 200)) as srv:
        for _ in range(2):
            r = cli("drift-test", "--url", srv.url, "--dataset", str(data), "--model", "m", "--corruptions", "noise",
                    "--severities", "1,5", "--batch-size", "2", "-o", str(out), timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
    tables = sorted(out.glob("drift-test-*.json"))
    assert len(tables) == 2 and len(list(out.glob("drift-test-*.md"))) == 2  # the first run's table is kept
    doc = json.loads(tables[-1].read_text())
    clean = doc["clean"]
    assert clean["client_errors"] == 1 and clean["rejected_rows"] == 2
    assert clean["handled"] == clean["accuracy"] == clean["right"] / 4  # a rejected clean request stays wrong
    for cell in doc["cells"]:
        assert cell["client_errors"] == 1 and cell["rejected_rows"] == 2
        assert cell["accuracy"] == cell["right"] / 4
        assert cell["handled"] == (cell["right"] + 2) / 4 > cell["accuracy"]
    table = tables[-1].with_suffix(".md").read_text()
    assert "| mean | mean, 4xx right | 4xx | 5xx |" in table
