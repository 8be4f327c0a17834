"""`aftershock capacity` against a server of known capacity (tests/capacity_server.py).

The server serves K=2 requests at a time for S=200 ms each, every request reading its store
through the fault proxy; the SLO is p95(latency) < 500 ms (2.5·S). Truth: healthy, the p95
at N users is ceil(N/2)·200 ms, so the knee is 4 users (5 queue three rounds deep: 600 ms);
with a 200 ms latency fault on the store each slot lasts 400 ms, the knee is 2 users, and
the faults leave half the capacity. The search runs through the real CLI in a child process,
each trial a real run (Locust, proxy, target processes).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import pytest
from capacity_server import target_yaml
from tiny_target import write_dataset
from typer.testing import CliRunner

from harness.cli import app
from harness.workflows.capacity.search import BudgetSpent, KneeSearch, level_grid

ROOT = Path(__file__).resolve().parents[1]
SLOTS, SERVICE_MS = 2, 200
HEALTHY_KNEE, FAULT_KNEE = 2 * SLOTS, SLOTS

SCENARIO = f"""\
name: known-capacity
seed: 3
{target_yaml(SLOTS, SERVICE_MS)}load: {{users: 2, duration: 3s, warmup: 0.5s, window: 0.5s, data: {{dataset: rows.npz}}}}
timeline:
  faults:
    - {{name: slow-store, type: network.latency, dependency: store, at: 0s, duration: 3s, latency: {SERVICE_MS}ms}}
slos:
  - name: p95 under 2.5 service times
    expect: p95(latency) < {2.5 * SERVICE_MS:g}ms
  - name: available
    expect: availability >= 99%
"""


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("capacity")
    write_dataset(folder)
    path = folder / "known-capacity.yaml"
    path.write_text(SCENARIO, encoding="utf-8")
    return path


def capacity(*args: str, timeout: float = 240) -> tuple[subprocess.CompletedProcess, float]:
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "harness.cli", "capacity", *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, check=False)
    return r, time.monotonic() - started


def test_finds_both_knees_and_the_headroom_a_latency_fault_costs(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r, _ = capacity(str(scenario), "--max-users", "6", "--step", "1", "--budget", "4m", "--no-confirm", "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((out / "capacity.json").read_text())
    healthy, fault = record["sweeps"]["healthy"], record["sweeps"]["fault"]
    assert abs(healthy["knee"] - HEALTHY_KNEE) <= 1, r.stderr
    assert abs(fault["knee"] - FAULT_KNEE) <= 1, r.stderr
    assert 0.3 <= record["headroom"] <= 0.75, record["headroom"]  # truth 0.5, knees within a step
    assert record["complete"] and record["plan"]["factor"] == 1.0  # a 4-minute budget fits the whole scenario
    for t in record["trials"]:  # each trial's figure against the server's truth, and its run kept
        rounds = math.ceil(t["level"] / SLOTS) * (2 if t["sweep"] == "fault" else 1)
        assert rounds * SERVICE_MS * 0.9 <= t["p95_ms"] <= rounds * SERVICE_MS * 1.35, t
        assert t["held"] == (rounds * SERVICE_MS < 2.5 * SERVICE_MS), t
        assert (Path(t["run_dir"]) / "result.json").is_file()
    page = (out / "capacity.html").read_text()
    assert "knee healthy" in page and "knee fault" in page and "50% of the healthy capacity" in r.stdout + page
    assert "knee, healthy" in (out / "summary.md").read_text() and "knee, healthy" in r.stdout


def test_a_tiny_budget_stops_cleanly_and_says_so(scenario: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    r, wall = capacity(str(scenario), "--max-users", "6", "--step", "1", "--budget", "20s", "-o", str(out))
    assert r.returncode == 1, r.stderr[-3000:]
    record = json.loads((out / "capacity.json").read_text())
    assert not record["complete"] and "time budget ran out" in record["note"]
    assert "time budget ran out" in r.stdout
    assert record["elapsed_s"] <= 20, record["elapsed_s"]
    assert wall <= 20 + 10, wall  # + the CLI's start and its last teardown on a busy box
    assert record["trials"] and record["sweeps"]["healthy"]["complete"] is False  # a bracket, not a knee


RATE_KNEES = {"healthy": SLOTS / (SERVICE_MS / 1000), "fault": SLOTS / (2 * SERVICE_MS / 1000)}  # requests/s
RATE_STEP = 4


def test_max_rate_finds_both_knees_in_requests_per_second(scenario: Path, tmp_path: Path) -> None:
    """Arrival rates, one request every 1/rate s: the server answers in S while the rate is
    under K/S = 10 requests/s (5 under the fault), and beyond it a queue grows for the whole
    trial (p95 far over 2.5·S). Levels 4, 8, 12, 16: the knees are 8 and 4."""
    out = tmp_path / "out"
    r, _ = capacity(str(scenario), "--max-rate", "16", "--step", str(RATE_STEP), "--budget", "3m", "--no-confirm",
                    "-o", str(out))
    assert r.returncode == 0, r.stderr[-3000:]
    record = json.loads((out / "capacity.json").read_text())
    assert record["load"] == "rate" and record["levels"] == [4, 8, 12, 16]
    for sweep, truth in RATE_KNEES.items():
        assert abs(record["sweeps"][sweep]["knee"] - truth) <= RATE_STEP, (sweep, r.stderr)
    assert 0.3 <= record["headroom"] <= 0.75, record["headroom"]  # truth 0.5
    for t in record["trials"]:
        capacity_rps = RATE_KNEES[t["sweep"]]
        assert t["held"] == (t["level"] < capacity_rps), t
        if t["held"]:  # the rate was sent, and met no queue: one service time, twice it under the fault
            assert 0.85 * t["level"] <= t["throughput"] <= 1.15 * t["level"], t
            service = SERVICE_MS * (2 if t["sweep"] == "fault" else 1)
            assert service * 0.9 <= t["p95_ms"] <= service * 1.35, t
        run = json.loads((Path(t["run_dir"]) / "result.json").read_text())
        assert run["slis"]["run"]["throughput"] is not None
    page = (out / "capacity.html").read_text()
    assert "load (requests\\u002fs)" in page and "load (users)" not in page  # the axis title, in plotly's JSON
    assert "knee, healthy: **8 requests/s" in r.stdout and "| sweep | requests/s |" in r.stdout


def test_a_rate_scenario_is_searched_by_rate(scenario: Path, tmp_path: Path) -> None:
    paced = tmp_path / "paced.yaml"
    paced.write_text(scenario.read_text().replace("load: {users: 2,", "load: {rate: 5, users: 2,"))
    (tmp_path / "rows.npz").write_bytes((scenario.parent / "rows.npz").read_bytes())
    r = CliRunner().invoke(app, ["capacity", str(paced), "--max-users", "4"])
    assert r.exit_code == 2 and "load.rate" in r.output and "--max-rate R" in r.output, r.output


@pytest.mark.parametrize(("args", "message"), [
    ([], "give one of --max-users N"),
    (["--max-users", "4", "--max-rate", "10"], "give one of --max-users N"),
    (["--max-rate", "0"], "--max-rate 0"),
    (["--max-rate", "10", "--step", "12"], "--step 12"),
    (["--max-users", "4", "--budget", "soon"], "--budget 'soon'"),
    (["--max-users", "4", "--budget", "0s"], "must be more than 0s"),
    (["--max-users", "4", "--step", "0"], "--step 0"),
    (["--max-users", "4", "--step", "8"], "--step 8"),
    (["--max-users", "0"], "--max-users 0"),
])
def test_bad_input_exits_2_with_a_clear_message(scenario: Path, args: list[str], message: str) -> None:
    r = CliRunner().invoke(app, ["capacity", str(scenario), *args])
    assert r.exit_code == 2, r.output
    assert message in r.output and "Traceback" not in r.output, r.output


def test_a_scenario_without_faults_or_file_is_bad_input(tmp_path: Path) -> None:
    r = CliRunner().invoke(app, ["capacity", str(tmp_path / "missing.yaml"), "--max-users", "4"])
    assert r.exit_code == 2 and "missing.yaml" in r.output, r.output
    plain = tmp_path / "plain.yaml"
    plain.write_text("name: plain\ntarget: {url: 'http://127.0.0.1:9'}\nload: {data: {dataset: rows.npz}}\n"
                     "slos:\n  - {name: up, expect: availability >= 99%}\n")
    r = CliRunner().invoke(app, ["capacity", str(plain), "--max-users", "4"])
    assert r.exit_code == 2 and "timeline.faults" in r.output, r.output


def scripted(verdicts: dict[float, list[bool]]) -> tuple[list[float], callable]:
    """A judge answering each level's trials in turn from `verdicts`; records what it was asked."""
    asked: list[float] = []

    def judge(level: float) -> bool:
        asked.append(level)
        return verdicts[level][asked.count(level) - 1]
    return asked, judge


def test_a_flipping_level_is_repeated_and_its_majority_kept() -> None:
    levels = level_grid(8, 1, integral=True)
    truth = {lv: [lv <= 5] * 3 for lv in levels}
    truth[6] = [True, False, False]  # held once by luck: the repeat flips it, the third decides
    asked, judge = scripted(truth)
    outcome = KneeSearch(levels, judge).run()
    assert outcome.knee == 5 and outcome.first_failure == 6 and outcome.complete
    assert asked.count(6) == 3 and outcome.flipped_levels == [6]
    assert asked.count(5) == 2  # the bracket's lower end confirmed once


def test_linear_search_steps_up_to_the_first_failure() -> None:
    levels = level_grid(8, 2, integral=True)
    assert levels == [2, 4, 6, 8]
    asked, judge = scripted({lv: [lv <= 4] * 2 for lv in levels})
    outcome = KneeSearch(levels, judge, kind="linear", confirm=False).run()
    assert asked == [2, 4, 6] and outcome.knee == 4


def test_a_spent_budget_leaves_the_bracket_found_so_far() -> None:
    levels = level_grid(16, 1, integral=True)
    calls = iter([True, False])  # 8 holds, 12 fails, then the budget is gone

    def judge(level: float) -> bool:
        try:
            return next(calls)
        except StopIteration:
            raise BudgetSpent from None

    outcome = KneeSearch(levels, judge).run()
    assert not outcome.complete and (outcome.knee, outcome.first_failure) == (8, 12)


def test_healthy_trials_drop_the_faults_and_the_slos_only_a_fault_gives_data_to() -> None:
    from harness.engine.scenario.loader import load_scenario
    from harness.workflows.capacity.trials import healthy_variant

    loaded = load_scenario(ROOT / "scenarios" / "feature-store-latency.yaml")
    healthy = healthy_variant(loaded)
    assert [s.name for s in healthy.scenario.slos] == ["availability"]  # `during slow-feature-store`, recovery_time out
    assert len(healthy.slos) == 1 and not healthy.scenario.timeline.faults and not healthy.faults
    assert len(loaded.scenario.slos) == 4 and loaded.scenario.timeline.faults  # the original is left alone


def test_short_trials_shorten_the_steady_state_and_keep_the_faults_as_written() -> None:
    from harness.engine.scenario.loader import load_scenario
    from harness.workflows.capacity.plan import fault_trial, healthy_trial, plan_trials
    from harness.workflows.capacity.trials import longest_recovery

    loaded = load_scenario(ROOT / "scenarios" / "feature-store-latency.yaml")  # 60 s, fault 15-35 s, recovery < 10s
    assert longest_recovery(loaded) == 10.0
    s = fault_trial(loaded.scenario, 0.2, longest_recovery(loaded))
    fault = s.timeline.faults[0]
    assert (s.load.warmup, s.timeline.baseline, fault.at, fault.duration) == (5.0, 5.0, 5.0, 20.0)
    assert s.load.duration - (fault.at + fault.duration) == 10.0 + 3 * 1.0  # the recovery + its confirming windows
    assert s.load.window == 1.0  # 38 s still holds 15 windows of the scenario's size
    h = healthy_trial(loaded.scenario, 0.1)
    assert (h.load.warmup, h.load.duration, h.load.window) == (5.0, 6.0, 0.5)  # 6 windows of 1 s: too few
    full = fault_trial(loaded.scenario, 1.0, 10.0)
    assert (full.load.duration, full.timeline.faults[0].at) == (60.0, 15.0)  # never longer than the scenario
    plan = plan_trials(loaded.scenario, 600, 14, 10.0)
    assert plan.factor < 1 and plan.fault_load_s == 5.0 + 38.0  # the fault trial's floor: warm-up + 5 + 20 + 13
