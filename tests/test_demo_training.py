"""The checkpointed training job, killed for real (SIGKILL, SIGTERM) and resumed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from harness.demo.storage import ChecksumMismatch, load_checksummed, save_checksummed
from harness.demo.train_job import TrainingJob

PYTHON = [sys.executable, "-m", "harness.demo"]
EVERY = 10


def events(progress: Path) -> list[dict]:
    if not progress.exists():
        return []
    return [json.loads(line) for line in progress.read_text().splitlines() if line.strip()]


def last_step(progress: Path) -> int:
    return max((e["step"] for e in events(progress) if e["event"] == "step"), default=0)


def train(state: Path, progress: Path, steps: int, step_time: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *PYTHON,
            "train",
            "--state-dir",
            str(state),
            "--steps",
            str(steps),
            "--checkpoint-every",
            str(EVERY),
            "--progress",
            str(progress),
            "--step-time",
            str(step_time),
            "--device",
            "cpu",
        ],
        start_new_session=True,
    )


def wait_for_step(proc: subprocess.Popen[bytes], progress: Path, step: int) -> None:
    deadline = time.monotonic() + 60
    while last_step(progress) < step:
        assert proc.poll() is None, f"the job exited early with {proc.returncode}"
        assert time.monotonic() < deadline, "the job made no progress"
        time.sleep(0.05)


def finish(proc: subprocess.Popen[bytes], timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_sigkill_loses_at_most_one_checkpoint_interval(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"
    job = train(tmp_path, progress, steps=60, step_time=0.03)
    try:
        wait_for_step(job, progress, 25)
        job.kill()  # SIGKILL: no chance to save anything
        job.wait()
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    killed_at = last_step(progress)
    before = len(events(progress))

    assert finish(train(tmp_path, progress, steps=60, step_time=0.0)) == 0
    after = events(progress)[before:]
    resumed = next(e for e in after if e["event"] == "resumed")
    assert resumed["from_step"] % EVERY == 0
    assert killed_at - EVERY <= resumed["from_step"] <= killed_at
    steps = [e["step"] for e in after if e["event"] == "step"]
    assert steps == list(range(resumed["from_step"] + 1, 61))
    assert after[-1]["event"] == "done" and after[-1]["step"] == 60
    assert all(e["event"] != "start" for e in after)


def test_sigterm_checkpoints_and_exits_0(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"
    job = train(tmp_path, progress, steps=1000, step_time=0.03)
    try:
        wait_for_step(job, progress, 13)
        job.send_signal(signal.SIGTERM)
        started = time.monotonic()
        assert finish(job, timeout=15) == 0
        assert time.monotonic() - started < 10
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()
    log = events(progress)
    stopped = log[-1]
    assert stopped["event"] == "stopped" and stopped["reason"] == "SIGTERM"
    assert log[-2] == {**log[-2], "event": "checkpoint", "step": stopped["step"]}

    before = len(log)
    job = TrainingJob(tmp_path, stopped["step"] + 3, EVERY, progress, step_time=0, device="cpu")
    assert job.run() == 0
    after = events(progress)[before:]
    assert after[0]["event"] == "resumed" and after[0]["from_step"] == stopped["step"]
    assert after[-1]["event"] == "done"


def test_corrupt_checkpoint_is_detected_and_training_restarts(tmp_path: Path) -> None:
    progress = tmp_path / "progress.jsonl"

    def run() -> int:
        return TrainingJob(tmp_path, EVERY, EVERY, progress, step_time=0, device="cpu").run()

    assert run() == 0
    checkpoint = tmp_path / "checkpoint.pt"
    data = bytearray(checkpoint.read_bytes())
    data[-20] ^= 0x01
    checkpoint.write_bytes(bytes(data))
    before = len(events(progress))
    assert run() == 0
    after = events(progress)[before:]
    assert after[0]["event"] == "checkpoint_corrupt" and "SHA-256" in after[0]["error"]
    assert after[1]["event"] == "start"
    assert after[-1] == {**after[-1], "event": "done", "step": EVERY}


def test_checksum_mismatch_raises(tmp_path: Path) -> None:
    blob = tmp_path / "thing.pt"
    save_checksummed(blob, {"w": torch.ones(3)})
    assert torch.equal(load_checksummed(blob)["w"], torch.ones(3))
    manifest = json.loads((tmp_path / "thing.pt.json").read_text())
    manifest["sha256"] = "0" * 64
    (tmp_path / "thing.pt.json").write_text(json.dumps(manifest))
    with pytest.raises(ChecksumMismatch):
        load_checksummed(blob)
    os.remove(blob)
    with pytest.raises(FileNotFoundError):
        load_checksummed(blob)
