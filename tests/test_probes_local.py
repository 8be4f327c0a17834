"""Command and file probes with real child processes and real files; the probe registry."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

from harness.core.fault import UserError
from harness.engine.probes import Probe, ProbeConfig, build_probe, parse_probe_config, probe_types


def cmd(**fields: object) -> Probe:
    return build_probe({"name": "c", "type": "command", **fields})


def test_command_takes_a_number_from_stdout() -> None:
    assert cmd(command=[sys.executable, "-c", "print('queue depth: 42')"]).sample() == 42
    assert (
        cmd(command=[sys.executable, "-c", "print('a 1\\nb 2.5e1')"]).sample() == 25
    )  # last number
    probe = cmd(
        command=f"{sys.executable} -c \"print('p95=0.31 s, p99=0.5')\"", pattern=r"p95=([\d.]+)"
    )
    assert probe.sample() == pytest.approx(0.31)
    assert (
        cmd(command=[sys.executable, "-c", "import sys; sys.exit(3)"], measure="exit_code").sample()
        == 3
    )
    assert (
        cmd(
            command=[sys.executable, "-c", "import os; print(os.environ['LEVEL'])"],
            env={"LEVEL": "7"},
        ).sample()
        == 7
    )


def test_command_failures_return_none() -> None:
    fail = cmd(
        command=[sys.executable, "-c", "import sys; print('boom', file=sys.stderr); sys.exit(2)"]
    )
    assert fail.sample() is None and "exit code 2: boom" in fail.last_error
    no_number = cmd(command=[sys.executable, "-c", "print('nothing here')"])
    assert no_number.sample() is None and "no number" in no_number.last_error
    missing = cmd(command=["/nonexistent/probe-binary"])
    assert missing.sample() is None and "FileNotFoundError" in missing.last_error


def test_command_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    probe = cmd(command=[sys.executable, "-c", script], timeout="1s")
    started = time.monotonic()
    assert probe.sample() is None
    assert "did not finish within 1 s" in probe.last_error
    assert time.monotonic() - started < 30
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, 9)
        pytest.fail("the probe command's child outlived the timeout")


def test_file_probe_reads_the_last_value(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    lines = [
        {"step": i, "loss": 1 / (i + 1), "metrics": {"val_acc": 0.5 + i / 1000}}
        for i in range(5000)
    ]
    lines.append({"step": 5000, "note": "checkpoint"})  # no loss on the very last line
    log.write_text(
        "\n".join(json.dumps(x) for x in lines) + "\n" + '{"step": 5001, "lo'
    )  # half-written
    assert build_probe(
        {"name": "loss", "type": "file", "path": str(log), "field": "loss"}
    ).sample() == pytest.approx(1 / 5000)
    acc = build_probe(
        {"name": "acc", "type": "file", "path": str(log), "field": "metrics.val_acc"}
    )
    assert acc.sample() == pytest.approx(0.5 + 4999 / 1000)
    with log.open("a") as f:  # the writer finishes its line and goes on
        f.write('ss": 0.001, "metrics": {"val_acc": 0.99}}\n')
    assert acc.sample() == pytest.approx(0.99)


def test_file_probe_finds_a_field_far_from_the_end(tmp_path: Path) -> None:
    log = tmp_path / "progress.jsonl"
    with log.open("w") as f:
        f.write(json.dumps({"epoch": 3}) + "\n")
        for i in range(20000):  # ~0.5 MB of lines without the field
            f.write(json.dumps({"step": i, "pad": "x" * 10}) + "\n")
    assert (
        build_probe({"name": "e", "type": "file", "path": str(log), "field": "epoch"}).sample() == 3
    )


def test_file_probe_failures(tmp_path: Path) -> None:
    missing = build_probe(
        {"name": "f", "type": "file", "path": str(tmp_path / "none.jsonl"), "field": "loss"}
    )
    assert missing.sample() is None and "FileNotFoundError" in missing.last_error
    log = tmp_path / "p.jsonl"
    log.write_text('{"loss": "n/a"}\n')
    text = build_probe({"name": "f", "type": "file", "path": str(log), "field": "loss"})
    assert text.sample() is None and "not a number" in text.last_error
    log.write_text('{"step": 1}\n')
    assert text.sample() is None and "no line" in text.last_error


def test_registry_and_config_defaults() -> None:
    assert {"http", "prometheus", "command", "file"} <= set(probe_types())
    config = parse_probe_config(
        {
            "name": "gpu",
            "type": "command",
            "command": "nvidia-smi",
            "mode": "on_fault",
            "interval": "500ms",
        }
    )
    assert isinstance(config, ProbeConfig)
    assert config.mode == "on_fault" and config.interval == 0.5 and config.timeout == 2.0
    assert (
        parse_probe_config({"name": "x", "type": "file", "path": "p", "field": "a"}).mode
        == "continuous"
    )
    with pytest.raises(
        UserError, match="unknown type 'smtp'; known types: command, file, http, prometheus"
    ):
        parse_probe_config({"name": "x", "type": "smtp"})
    with pytest.raises(UserError, match="command: Value error, command must not be empty"):
        parse_probe_config({"name": "x", "type": "command", "command": []})
    with pytest.raises(UserError, match="colour: Extra inputs are not permitted"):
        parse_probe_config(
            {"name": "x", "type": "file", "path": "p", "field": "a", "colour": "red"}
        )
    with pytest.raises(UserError, match="interval"):
        parse_probe_config(
            {"name": "x", "type": "file", "path": "p", "field": "a", "interval": "0s"}
        )


def test_probe_names_are_valid_slo_names() -> None:
    from harness.engine.slo import parse_slo

    for name in ("drift_alert", "drift-alert", "gpu.util"):
        probe = build_probe({"name": name, "type": "file", "path": "p", "field": "a"})
        assert (
            parse_slo(f"probe.{probe.name} >= 1", known_probes={name}).comparison.left.probe == name
        )
