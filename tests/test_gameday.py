"""Game days: plan errors in the loader's file:line:col style, and real game days (real runs
against a local OIP v2 server) with prompted checkpoints, observations typed during a run over
a real pipe, derived action items and the one-timeline report; unattended through the CLI."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from rich.console import Console
from tiny_target import write_scenario

from harness.engine.load.reference_server import ReferenceServer, Reply
from harness.workflows.gameday import GameDay, PlanError, load_plan

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    with ReferenceServer(lambda n: Reply(delay=0.002)) as srv:
        yield srv


def _plan(folder: Path, body: str) -> Path:
    path = folder / "plan.yaml"
    path.write_text(body, encoding="utf-8")
    return path


def test_plan_errors_name_file_line_column_and_field(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url)
    plan = _plan(
        tmp_path,
        """\
name: gd
steps:
  - checkpoint: Tell the team
    scenario: steady.yaml
  - checkpont: typo
""",
    )
    with pytest.raises(PlanError) as exc:
        load_plan(plan)
    text = str(exc.value)
    assert f"{plan}:3:5: steps[0]: say exactly one of scenario:" in text
    assert (
        f"{plan}:5:5: steps[1].checkpont: unknown key 'checkpont' (did you mean 'checkpoint'?)"
        in text
    )

    plan = _plan(
        tmp_path,
        """\
name: gd
roles: {commander: Alice}
steps:
  - scenario: steady.yaml
    role: comander
  - scenario: missing.yaml
""",
    )
    with pytest.raises(PlanError) as exc:
        load_plan(plan)
    text = str(exc.value)
    assert f"{plan}:5:11: steps[0].role: unknown role 'comander'; roles: commander" in text
    assert f"{plan}:6:15: steps[1].scenario: scenario file 'missing.yaml' not found" in text


def test_bad_plan_through_the_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "name: gd\nsteps: []\n")
    proc = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "gameday", str(plan)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert f"{plan}:2:8: steps:" in proc.stderr and "Traceback" not in proc.stderr


def _wait_for(buf: io.StringIO, text: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while text not in buf.getvalue():
        assert time.monotonic() < deadline, f"never printed {text!r}:\n{buf.getvalue()}"
        time.sleep(0.05)


def test_attended_game_day_records_checkpoints_observations_and_actions(
    tmp_path: Path, server
) -> None:
    write_scenario(tmp_path, "steady", server.url)
    write_scenario(
        tmp_path, "strict", server.url, p95_limit="0.001ms"
    )  # cannot hold: the hypothesis fails
    plan = _plan(
        tmp_path,
        """\
name: tiny-gameday
hypothesis: The service answers within its SLOs.
roles: {commander: Alice, observer: Bob}
steps:
  - checkpoint: Announce the game day
    role: commander
  - scenario: steady.yaml
    hypothesis: steady load holds its SLOs
  - checkpoint: Did the dashboard show the run?
    role: observer
  - scenario: strict.yaml
    hypothesis: p95 under a microsecond
action_items: [Write the postmortem]
""",
    )
    read_fd, write_fd = os.pipe()
    stdin = os.fdopen(read_fd, "r")
    typed = os.fdopen(write_fd, "w")
    screen = io.StringIO()

    def facilitator() -> None:
        _wait_for(screen, "[checkpoint 1/4]")
        typed.write("\n")
        typed.flush()
        _wait_for(screen, "[scenario 2/4] steady")
        time.sleep(0.5)
        typed.write("p95 looks flat\naction: add a latency alert\n")
        typed.flush()
        _wait_for(screen, "[checkpoint 3/4]")
        typed.write("yes, the spike was visible\n")
        typed.close()

    helper = threading.Thread(target=facilitator, daemon=True)
    helper.start()
    out = tmp_path / "reports"
    gd = GameDay(
        load_plan(plan), output_dir=out, console=Console(file=screen, width=200), stdin=stdin
    )
    outcome = gd.run()
    helper.join(timeout=10)
    stdin.close()

    kinds = [(s.kind, s.status, s.hypothesis_held) for s in outcome.steps]
    assert kinds == [
        ("checkpoint", "done", None),
        ("scenario", "passed", True),
        ("checkpoint", "done", None),
        ("scenario", "failed", False),
    ], screen.getvalue()
    assert outcome.exit_code == 1
    obs = [(o.text, o.step, o.kind) for o in outcome.observations]
    assert ("p95 looks flat", 1, "observation") in obs
    assert ("action: add a latency alert", 1, "action") in obs
    assert ("yes, the spike was visible", 2, "checkpoint") in obs
    steady = outcome.steps[1]
    typed_at = next(o.t for o in outcome.observations if o.text == "p95 looks flat")
    assert steady.started <= typed_at <= steady.ended
    actions = [(a["text"], a["owner"], a["source"]) for a in outcome.action_items]
    assert ("Write the postmortem", None, "plan") in actions
    assert ("add a latency alert", None, "typed") in actions
    assert any(
        src == "derived" and "strict" in text and "fast enough" in text and owner == "Alice"
        for text, owner, src in actions
    ), actions

    d = outcome.report_dir
    assert d.parent == out / "gamedays" / "tiny-gameday"
    record = json.loads((d / "gameday.json").read_text())
    assert [s["status"] for s in record["steps"]] == ["done", "passed", "done", "failed"]
    md = (d / "gameday.md").read_text()
    assert (
        "1 of 2 hypotheses held" in md
        and "- [ ] Write the postmortem" in md
        and "p95 looks flat" in md
    )
    html = (d / "gameday.html").read_text()
    assert (
        'id="timeline"' in html
        and "data:image/png;base64," in html
        and "http://" not in html.split("<body>")[0]
    )
    for s in outcome.steps[1::2]:
        assert (Path(s.run_dir) / "report.html").is_file()


def test_unattended_game_day_through_the_cli(tmp_path: Path, server) -> None:
    write_scenario(tmp_path, "steady", server.url)
    plan = _plan(
        tmp_path,
        """\
name: nightly
steps:
  - checkpoint: Page the on-call
  - scenario: steady.yaml
""",
    )
    out = tmp_path / "reports"
    proc = subprocess.run(
        check=False,
        args=[
            sys.executable,
            "-m",
            "harness.cli",
            "gameday",
            str(plan),
            "--unattended",
            "-o",
            str(out),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert proc.returncode == 0, proc.stderr
    (d,) = (out / "gamedays" / "nightly").iterdir()
    record = json.loads((d / "gameday.json").read_text())
    assert [s["status"] for s in record["steps"]] == ["passed-over", "passed"]
    assert record["steps"][1]["hypothesis_held"] is True
    assert any(
        "Confirm checkpoint by hand: Page the on-call" in a["text"] for a in record["action_items"]
    )
