"""What a newcomer hit following the README: validate listing every mistake at once, help
that lists options in one style, probe-target/init errors naming the real cause."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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
    assert "p95() applies to latency, ttft, itl, tokens_per_s, output_tokens only; did you mean 'latency'?" in text
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

    from harness.engine.load.reference_server import ReferenceServer, Reply

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


@pytest.fixture(scope="module")
def demo_url(tmp_path_factory: pytest.TempPathFactory):
    """`aftershock demo` as the README starts it (resilient, its own free port)."""
    from harness.demo.launcher import free_port, wait_ready

    port = free_port()
    log = tmp_path_factory.mktemp("demo") / "demo.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "demo", "--port", str(port)], cwd=ROOT,
                                stdout=out, stderr=subprocess.STDOUT, env=_plain_env())
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/v2/health/ready", proc, timeout=180)
        yield url
    finally:
        proc.terminate()  # the launcher stops both servers on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_probe_target_defaults_work_against_the_demo(demo_url: str) -> None:
    r = cli("probe-target", demo_url, "--protocol", "oip-v2")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"oip-v2 at {demo_url} (model fraud)" in r.stdout  # the one model the server lists


def test_a_wrong_model_name_is_named_as_the_cause(demo_url: str) -> None:
    r = cli("probe-target", demo_url, "--protocol", "oip-v2", "--model", "model")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "does not describe its inputs" not in r.stderr
    assert (f"error: the server at {demo_url} has no model named 'model' (GET /v2/models/model/ready answered 404); "
            "it serves: fraud: pass --model NAME") in r.stderr


def test_init_defaults_write_a_scenario_for_the_demo(demo_url: str, tmp_path: Path) -> None:
    data = tmp_path / "demo.npz"
    subprocess.run([sys.executable, "-m", "harness.demo", "export-data", "--out", str(data), "--n", "50"],
                   cwd=ROOT, check=True, capture_output=True, timeout=120)
    r = cli("init", demo_url, "--protocol", "oip-v2", "--data", str(data), cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    written = tmp_path / "scenario.yaml"
    assert "model: fraud" in written.read_text()
    assert cli("validate", str(written)).returncode == 0


def test_demo_help_lists_its_options() -> None:
    r = cli("demo", "--help")
    assert r.returncode == 0, r.stderr
    for option in ("--mode", "--host", "--port", "--feature-store-port", "--state-dir", "--seed", "--ready-timeout"):
        assert option in r.stdout, (option, r.stdout)


def test_one_help_style_across_commands() -> None:
    """Every command has a one-sentence summary; every option and argument a help text in
    sentence case, without a closing full stop (`--help` itself is typer's)."""
    import typer.main

    from harness.cli import app

    group = typer.main.get_command(app)
    bad = []
    for name, command in group.commands.items():
        summary = (command.help or "").strip().splitlines()[0] if command.help else ""
        if not summary or not summary[0].isupper() or not summary.endswith("."):
            bad.append(f"{name}: summary {summary!r}")
        for param in command.params:
            if param.name == "help":
                continue
            text = getattr(param, "help", None) or ""
            if not text or not text[0].isupper() or text.endswith("."):
                bad.append(f"{name} {param.opts[0] if param.opts else param.name}: help {text!r}")
    assert not bad, "\n".join(bad)


def test_drift_test_help_lists_every_option_in_sentence_case() -> None:
    from harness.workflows.drift_test import parser

    for action in parser()._actions:
        if action.dest != "help":
            assert action.help and action.help[0].isupper(), (action.dest, action.help)
    r = cli("drift-test", "--help")
    assert r.returncode == 0 and "--corruptions" in r.stdout and "--severities" in r.stdout


def test_validate_in_github_actions_annotates_each_mistake(tmp_path: Path) -> None:
    import os

    bad = tmp_path / "bad.yaml"
    bad.write_text(MISTAKES)
    env = {**_plain_env(), "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": str(tmp_path)}
    r = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(bad)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2
    errors = [line for line in r.stdout.splitlines() if line.startswith("::error ")]
    assert [e.split(",")[1] for e in errors] == ["line=5", "line=10", "line=16", "line=18", "line=20", "line=22"]
    assert errors[0].startswith("::error file=bad.yaml,line=5,col=15,title=load.users%3A invalid::")
    assert os.sep not in errors[0].split(",")[0]  # relative to the workspace, as GitHub resolves it
    assert cli("validate", str(bad)).stdout.count("::error") == 0  # outside GitHub Actions: none
