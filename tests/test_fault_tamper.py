"""`model.tamper` on real files and a real command-driven registry: each mode changes the
artifact so that the demo's verifier refuses it, the revert (and `cleanup`'s replay after a
crash) puts back the exact bytes, and a file it cannot act on is a clear error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from artifact_support import model_bytes
from pydantic import ValidationError

from faults.lifecycle.tamper import ModelTamper, ModelTamperParams
from harness.core.fault import FaultContext, UserError
from harness.demo.signing import (
    MODEL_FILE,
    ArtifactRefused,
    publish_artifact,
    signing_key,
    verify_artifact,
    verify_key,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_dir = tmp_path / "run"
    publish_artifact(run_dir / "artifacts" / "v2", model_bytes(1), "v2", signing_key(tmp_path / "state"))
    (run_dir / "other.pt").write_bytes(model_bytes(2))
    return run_dir


def fault(run_dir: Path, events: list[dict[str, Any]] | None = None, seed: int = 3,
          **params: Any) -> ModelTamper:
    ctx = FaultContext(toxiproxy_url="", run_dir=run_dir, seed=seed,
                       journal=lambda event, **f: (events if events is not None else []).append({"event": event, **f}))
    params.setdefault("path", "artifacts/v2/model.pt")
    return ModelTamper("tamper", ModelTamperParams(version="v2", **params), ctx)


def refused(run_dir: Path) -> str:
    with pytest.raises(ArtifactRefused) as caught:
        verify_artifact(run_dir / "artifacts" / "v2", verify_key(run_dir.parent / "state"), "v2")
    return caught.value.reason


@pytest.mark.parametrize("mode", ["flip", "truncate", "swap"])
def test_each_mode_is_refused_by_the_verifier_and_reverted_exactly(run: Path, mode: str) -> None:
    model = run / "artifacts" / "v2" / MODEL_FILE
    original = model.read_bytes()
    events: list[dict[str, Any]] = []
    extra = {"swap_with": "other.pt"} if mode == "swap" else {}
    f = fault(run, events, mode=mode, **extra)
    f.inject()
    tampered = model.read_bytes()
    if mode == "flip":
        assert len(tampered) == len(original)
        assert sum(a != b for a, b in zip(original, tampered)) == 16
    elif mode == "truncate":
        assert tampered == original[: len(original) // 2]
    else:
        assert tampered == (run / "other.pt").read_bytes()
    assert refused(run) == "digest"
    assert f.bad_versions() == ["v2"]
    (action,) = [e for e in events if e["event"] == "fault.action"]
    assert action["action"] == mode and action["version"] == "v2" and action["bytes_after"] == len(tampered)
    f.revert()
    f.revert()  # idempotent
    assert model.read_bytes() == original
    verify_artifact(run / "artifacts" / "v2", verify_key(run.parent / "state"), "v2")
    assert not f.backup.exists()


def test_flips_are_seeded(run: Path) -> None:
    model = run / "artifacts" / "v2" / MODEL_FILE
    seen = []
    for seed in (3, 3, 4):
        f = fault(run, seed=seed)
        f.inject()
        seen.append(model.read_bytes())
        f.revert()
    assert seen[0] == seen[1] != seen[2]


def test_cleanup_replays_the_undo_after_a_crash(run: Path) -> None:
    model = run / "artifacts" / "v2" / MODEL_FILE
    original = model.read_bytes()
    f = fault(run, mode="truncate", keep=0.1)
    record = f.undo_record()
    f.inject()  # ... and the harness is SIGKILLed: no revert
    assert model.read_bytes() != original
    assert "restored" in ModelTamper.replay_undo(record)
    assert model.read_bytes() == original
    assert "not changed" in ModelTamper.replay_undo(record)  # twice: nothing left to do


def test_a_registry_reached_by_commands(tmp_path: Path) -> None:
    registry = tmp_path / "registry" / "model-v2.pt"
    registry.parent.mkdir()
    registry.write_bytes(model_bytes(1))
    original = registry.read_bytes()
    f = fault(tmp_path, path=None, registry={"pull": ["cp", str(registry), "{file}"],
                                             "push": ["cp", "{file}", str(registry)]}, flips=4)
    f.inject()
    assert sum(a != b for a, b in zip(original, registry.read_bytes())) == 4
    f.revert()
    assert registry.read_bytes() == original
    failing = fault(tmp_path, path=None, registry={"pull": ["false"], "push": ["true"]})
    with pytest.raises(Exception, match="registry.pull"):
        failing.inject()


def test_a_missing_file_or_a_folder_is_a_clear_error(run: Path) -> None:
    with pytest.raises(UserError, match=r"no model file at .*artifacts/v9/model.pt"):
        fault(run, path="artifacts/v9/model.pt").inject()
    with pytest.raises(UserError, match="no model file at"):
        fault(run, path="artifacts/v2").inject()
    with pytest.raises(UserError, match="swap_with .*missing.pt"):
        fault(run, mode="swap", swap_with="missing.pt").inject()


def test_a_file_it_may_not_write_is_a_clear_error_and_left_alone(run: Path) -> None:
    model = run / "artifacts" / "v2" / MODEL_FILE
    original = model.read_bytes()
    model.chmod(0o444)
    # root writes any file: as root, the fault runs without CAP_DAC_OVERRIDE (setpriv)
    prefix: list[str] = []
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("running as root and no setpriv to drop CAP_DAC_OVERRIDE")
        prefix = ["setpriv", "--bounding-set=-dac_override"]
    done = subprocess.run([*prefix, sys.executable, str(ROOT / "tests" / "tamper_once.py"), str(model)],
                          check=False, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "TMPDIR": str(run.parent)})
    assert done.returncode == 7, done.stderr
    assert "cannot write" in done.stdout and "Permission denied" in done.stdout
    assert model.read_bytes() == original


def test_params_say_what_is_wrong() -> None:
    with pytest.raises(ValidationError, match="exactly one of `path`"):
        ModelTamperParams(version="v2")
    with pytest.raises(ValidationError, match="swap_with"):
        ModelTamperParams(version="v2", path="m.pt", mode="swap")
    with pytest.raises(ValidationError, match="swap_with"):
        ModelTamperParams(version="v2", path="m.pt", swap_with="o.pt")


def test_a_refused_or_unreachable_deploy_is_journaled_not_a_fault_failure(run: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: the deploy cannot reach a target
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/admin/deploy"
    events: list[dict[str, Any]] = []
    f = fault(run, events, deploy={"http": {"url": url, "timeout": 2}},
              rollback={"http": {"url": url, "timeout": 2}})
    f.inject()  # the artifact is tampered with: the fault acted
    (deploy,) = [e for e in events if e["event"] == "tamper.deploy"]
    assert deploy["accepted"] is False and "ConnectError" in deploy["answer"], deploy
    f.revert()  # nothing was taken: no rollback call (it would fail against this port)
    assert not [e for e in events if e["event"] == "tamper.rolled_back"]
    verify_artifact(run / "artifacts" / "v2", verify_key(run.parent / "state"), "v2")  # restored
