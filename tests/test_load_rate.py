"""`load.rate`: an open-loop arrival rate in a scenario, run through the real CLI against
tests/capacity_server.py (real sockets, Locust, child processes).

Truth: with 8 slots of 20 ms the server answers at once, so a pool of 4 users holds 20
requests/s; with answers of 300 ms a pool of 2 users sends at most 2 / 0.3 = 6.7 requests/s,
whatever the rate says, and the run must say so.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from capacity_server import target_yaml
from tiny_target import write_dataset
from typer.testing import CliRunner

from harness.cli import app
from harness.engine.runner import rate_shortfall

ROOT = Path(__file__).resolve().parents[1]
RATE, SECONDS = 20, 4


def scenario(name: str, service_ms: int, users: int, rate: str = f"{RATE}/s") -> str:
    return f"""\
name: {name}
{target_yaml(8, service_ms)}load: {{rate: {rate}, users: {users}, duration: {SECONDS}s, warmup: 0.5s, window: 0.5s, data: {{dataset: rows.npz}}}}
slos:
  - {{name: available, expect: availability >= 99%}}
"""


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("rate")
    write_dataset(path)
    return path


def test_a_rate_is_held_and_a_pool_too_small_for_it_is_reported(folder: Path) -> None:
    (folder / "held.yaml").write_text(scenario("held", service_ms=20, users=4))
    (folder / "short.yaml").write_text(scenario("short", service_ms=300, users=2))
    runs = {name: subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(folder / f"{name}.yaml"),
                                    "-o", str(folder / "out")], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True) for name in ("held", "short")}
    done = {name: (p.communicate(timeout=120), p.returncode) for name, p in runs.items()}
    throughput = {}
    for name, ((_, err), code) in done.items():
        assert code == 0, err[-3000:]
        result = json.loads(next((folder / "out" / name).glob("*/result.json")).read_text())
        throughput[name] = result["slis"]["run"]["throughput"]
    assert 0.85 * RATE <= throughput["held"] <= 1.1 * RATE, throughput
    assert "not held" not in done["held"][0][1]
    assert 5 <= throughput["short"] <= 2 / 0.3 * 1.1, throughput  # the pool's bound, not the rate
    assert f"load.rate {RATE}/s was not held" in done["short"][0][1] and "raise load.users" in done["short"][0][1]


@pytest.mark.parametrize(("rate", "message"), [
    ("0", "load.rate: rate must be more than 0"),
    ("fast", "load.rate: invalid rate 'fast'"),
    ("200000", "load.rate: rate must be at most 100000"),
])
def test_a_bad_rate_is_refused_where_it_is_written(folder: Path, rate: str, message: str) -> None:
    path = folder / "bad.yaml"
    path.write_text(scenario("bad", service_ms=20, users=4, rate=rate))
    r = CliRunner().invoke(app, ["validate", str(path)])
    assert r.exit_code == 2, r.output
    line = 1 + [row.startswith("load:") for row in path.read_text().splitlines()].index(True)
    assert f"bad.yaml:{line}:14: {message}" in r.output and "Traceback" not in r.output, r.output


def test_a_shortfall_is_a_rate_missed_by_more_than_two_requests() -> None:
    assert rate_shortfall(2, 10, {"throughput": 5 / 3}, 3) is None  # 5 of 6 requests: the count's own step
    assert rate_shortfall(2, 10, {"throughput": 3 / 3}, 3) is not None  # 3 of 6: under 90 % less two
    short = rate_shortfall(20, 2, {"throughput": 6.5}, 4)
    assert short is not None and "6.5 requests/s measured" in short and "pool of 2 users" in short
    assert rate_shortfall(None, 2, {"throughput": 1.0}, 4) is None  # closed loop: no rate to hold
    assert rate_shortfall(20, 2, {"throughput": None}, 4) is None  # not measured is no verdict
