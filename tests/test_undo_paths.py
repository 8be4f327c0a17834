"""Undo and exit paths: an undo is marked done only once it worked, a failed one is retried
(at the end of the run and by `aftershock cleanup`) and named in the result with exit 4;
a cancelled injection is awaited before its revert; a failure after teardown is exit 4
with one line and the run folder, never a traceback.

Real runs (the runner, the embedded proxy, Locust) against a local OIP v2 server; the one
test-only piece is a fault plug-in, registered here, whose revert fails on demand."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field
from tiny_target import write_dataset
from typer.testing import CliRunner

from harness import cli
from harness.core.fault import Fault, FaultParams
from harness.core.registry import fault_types
from harness.engine.ledger import read_ledger
from harness.engine.load.reference_server import ReferenceServer


class FlakyParams(FaultParams):
    log: str = Field(description="file the fault appends what it does to")
    failures: str = Field(description="file holding how many more reverts must fail")
    inject_s: float = 0.0


def _note(log: str, what: str) -> None:
    with open(log, "a", encoding="utf-8") as f:
        f.write(f"{time.time():.3f} {what}\n")


def _revert(record: dict[str, Any]) -> str:
    """Fail while the failures file says so (counting down); else note the revert."""
    path = Path(record["failures"])
    left = int(path.read_text())
    if left > 0:
        path.write_text(str(left - 1))
        _note(record["log"], "revert failed")
        raise RuntimeError("the dependency refused the undo")
    _note(record["log"], "reverted")
    return "reverted"


class FlakyRevert(Fault):
    """Notes inject/revert in a log; its revert fails as often as the failures file says."""

    type = "test.flaky_revert"
    Params = FlakyParams

    def undo_record(self) -> dict[str, Any]:
        return {"log": self.params.log, "failures": self.params.failures}

    def inject(self) -> None:
        _note(self.params.log, "inject started")
        time.sleep(self.params.inject_s)
        _note(self.params.log, "inject ended")

    def revert(self) -> None:
        _revert(self.undo_record())

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        return _revert(record)


@pytest.fixture
def flaky(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(fault_types(), FlakyRevert.type, FlakyRevert)


def _scenario(folder: Path, url: str, failures: int, inject_s: float = 0.0, at: str = "0.5s",
              duration: str = "0.5s", load_s: str = "2s", stop_when: str = "") -> tuple[Path, Path]:
    write_dataset(folder)
    log, control = folder / "fault.log", folder / "failures"
    control.write_text(str(failures))
    path = folder / "undo.yaml"
    path.write_text(f"""\
name: undo
target: {{url: "{url}", protocol: oip-v2, model: m}}
load: {{users: 2, duration: {load_s}, window: 0.5s, data: {{dataset: rows.npz}}}}
timeline:
  faults:
    - {{name: flaky, type: test.flaky_revert, at: {at}, duration: {duration}, log: "{log}",
       failures: "{control}", inject_s: {inject_s}}}
slos:
  - {{name: available, expect: availability >= 50%}}
{stop_when}""", encoding="utf-8")
    return path, log


def _run(path: Path, out: Path) -> tuple[int, str, Path]:
    res = CliRunner().invoke(cli.app, ["run", str(path), "-o", str(out)])
    (run_dir,) = sorted((out / "undo").iterdir())
    return res.exit_code, res.output, run_dir


def _ledger_ops(out: Path) -> list[str]:
    (ledger,) = (out / ".ledger").glob("*.jsonl")
    return [json.loads(line)["op"] for line in ledger.read_text().splitlines()]


def _log(log: Path) -> list[str]:
    return [line.split(" ", 1)[1] for line in log.read_text().splitlines()]


def test_revert_that_fails_once_is_retried_and_marked_done_only_after(tmp_path: Path, flaky: None) -> None:
    with ReferenceServer() as srv:
        path, log = _scenario(tmp_path, srv.url, failures=1)
        code, output, run_dir = _run(path, tmp_path / "out")
    assert _log(log) == ["inject started", "inject ended", "revert failed", "reverted"]
    ops = _ledger_ops(tmp_path / "out")
    # no fault_done between the failed attempt and the retry: exactly one, then closed
    assert ops.count("fault_done") == 1 and ops[-1] == "closed", ops
    events = [json.loads(x)["event"] for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert events.index("fault.revert_failed") < events.index("fault.reverted")
    # the fault outlived its window: the run did not go as planned, and says why
    result = json.loads((run_dir / "result.json").read_text())
    assert code == 4 and result["exit_code"] == 4, output
    assert "revert failed" in result["message"] and result["not_undone"] == []
    assert "Traceback" not in output


def test_revert_that_keeps_failing_is_named_and_left_for_cleanup(tmp_path: Path, flaky: None) -> None:
    out = tmp_path / "out"
    with ReferenceServer() as srv:
        path, log = _scenario(tmp_path, srv.url, failures=100)
        code, output, run_dir = _run(path, out)
    assert code == 4, output
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "error"
    assert result["not_undone"] == [f"fault {result['run_id']}:flaky (test.flaky_revert)"]
    assert "NOT UNDONE: fault" in output and "aftershock cleanup" in output
    (ledger,) = (out / ".ledger").glob("*.jsonl")
    left = read_ledger(ledger)
    assert not left.closed and [f["id"] for f in left.faults] == [f"{result['run_id']}:flaky"]
    assert _log(log).count("revert failed") == 4  # the scheduled revert + 3 tries at teardown

    # cleanup while the undo still fails: exit 4, the entry stays open for the next try
    res = CliRunner().invoke(cli.app, ["cleanup", "--reports", str(out)])
    assert res.exit_code == 4, res.output
    assert "undo failed" in res.output and not read_ledger(ledger).closed
    # the cause is fixed: cleanup reverts it, marks it done and closes the ledger
    (tmp_path / "failures").write_text("0")
    res = CliRunner().invoke(cli.app, ["cleanup", "--reports", str(out)])
    assert res.exit_code == 0, res.output
    assert _log(log)[-1] == "reverted"
    assert read_ledger(ledger).closed and not read_ledger(ledger).faults
    assert CliRunner().invoke(cli.app, ["cleanup", "--reports", str(out)]).output.strip() == "nothing to clean up"


def test_cancelled_slow_injection_is_awaited_before_its_revert(tmp_path: Path, flaky: None) -> None:
    # the stop condition trips at the first window, while inject() is still sleeping
    with ReferenceServer() as srv:
        path, log = _scenario(tmp_path, srv.url, failures=0, inject_s=3.0, at="0s", duration="3.5s",
                              load_s="4s", stop_when="stop_when: ['p95(latency) >= 0ms']\n")
        code, output, run_dir = _run(path, tmp_path / "out")
    assert code == 3, output  # aborted by the stop condition, everything undone
    assert _log(log) == ["inject started", "inject ended", "reverted"]
    events = [json.loads(x) for x in (run_dir / "journal.jsonl").read_text().splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds.index("run.aborted") < kinds.index("fault.revert_waits") < kinds.index("fault.reverted")
    assert _ledger_ops(tmp_path / "out")[-1] == "closed"


def test_failure_after_teardown_is_exit_4_with_one_line(tmp_path: Path, flaky: None,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.reports import writers

    def broken_writer(*args: Any, **kwargs: Any) -> None:
        raise OSError("the disk is full")

    monkeypatch.setattr(writers, "write_pages", broken_writer)
    with ReferenceServer() as srv:
        path, _ = _scenario(tmp_path, srv.url, failures=0)
        code, output, run_dir = _run(path, tmp_path / "out")
    assert code == 4, output
    assert "Traceback" not in output
    lines = [x for x in output.splitlines() if "internal error after the run" in x]
    assert len(lines) == 1 and "the disk is full" in lines[0] and str(run_dir) in lines[0], output
    assert f"run folder: {run_dir}" in output
    log = run_dir / "harness-error.log"
    assert "Traceback" in log.read_text() and "broken_writer" in log.read_text()
    assert _ledger_ops(tmp_path / "out")[-1] == "closed"  # torn down before the failure
