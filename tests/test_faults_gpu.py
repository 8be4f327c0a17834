"""gpu.* faults: spot preemption (notice by SIGTERM, file or metadata HTTP endpoint;
grace; SIGKILL; reschedule with CUDA_VISIBLE_DEVICES narrowed), no visible GPU, GPU
memory taken; and the preemption SLIs read from a real training job's progress file.
Runs on CPU: the same steps happen, the jobs just have no device to lose."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import httpx
import pytest
from infra_fault_support import gone, sigkill_and_replay, start_harness, wait_for

from faults.gpu import preemption_slis
from harness.core.fault import FaultContext, UserError
from harness.core.processes import ManagedProcess, free_port
from harness.core.registry import fault_types

ROOT = Path(__file__).resolve().parent.parent

# A job that says when it is ready, and exits 0 on SIGTERM (it "checkpointed").
POLITE_JOB = [sys.executable, "-c",
              ("import signal,sys,time\n"
              "signal.signal(signal.SIGTERM, lambda *a: (print('sigterm', flush=True), sys.exit(0)))\n"
              "print('ready', flush=True)\ntime.sleep(120)")]
# A job that ignores SIGTERM: only SIGKILL ends it.
STUBBORN_JOB = [sys.executable, "-c",
                ("import signal,time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                "print('ready', flush=True)\ntime.sleep(120)")]


@pytest.fixture
def job(tmp_path: Path):
    made: list[ManagedProcess] = []

    def start(argv: list[str], env: dict[str, str] | None = None) -> ManagedProcess:
        p = ManagedProcess("trainer", argv, tmp_path / f"trainer{len(made)}.log", env=env, cwd=str(ROOT))
        p.start()
        made.append(p)
        if argv in (POLITE_JOB, STUBBORN_JOB):
            assert wait_for(lambda: "ready" in p.log_path.read_text(), 20)
        return p

    try:
        yield start
    finally:
        for p in made:
            p.stop(grace=2)


def build(fault_type: str, procs: dict, events: list | None = None, **params):
    cls = fault_types()[fault_type]
    kw = {"journal": lambda event, **f: events.append({"event": event, **f})} if events is not None else {}
    return cls("spot", cls.Params(**params), FaultContext(toxiproxy_url="", processes=procs, **kw))


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_sigterm_notice_then_reschedule_with_fewer_gpus(job):
    p = job(POLITE_JOB, env={"CUDA_VISIBLE_DEVICES": "0,1"})
    first = p.pid
    events: list = []
    fault = build("gpu.preemption", {"trainer": p}, events, process="trainer", notice="sigterm",
                  grace="10s", reschedule_after="200ms", visible_devices="0")
    fault.undo_record()
    try:
        fault.inject()
        assert wait_for(lambda: p.pid != first and p.alive(), 15)
        assert environ(p.pid)["CUDA_VISIBLE_DEVICES"] == "0"
    finally:
        fault.revert()
    actions = [e["action"] for e in events]
    assert actions == ["notice", "signal", "exited_in_grace", "start", "verified"], actions  # no SIGKILL needed
    assert "sigterm" in (p.log_path.read_text())
    assert p.env == {"CUDA_VISIBLE_DEVICES": "0,1"}  # later restarts get the job's own env back


def test_http_notice_like_a_cloud_metadata_server_then_sigkill(job):
    p = job(STUBBORN_JOB)
    first, port = p.pid, free_port()
    events: list = []
    fault = build("gpu.preemption", {"trainer": p}, events, process="trainer", notice="http",
                  notice_port=port, grace="1s", reschedule_after=None)
    fault.undo_record()
    try:
        fault.inject()
        base = f"http://127.0.0.1:{port}"
        gce = httpx.get(f"{base}/computeMetadata/v1/instance/preempted", headers={"Metadata-Flavor": "Google"})
        assert gce.text == "TRUE" and gce.headers["Metadata-Flavor"] == "Google"
        aws = httpx.get(f"{base}/latest/meta-data/spot/instance-action").json()
        assert aws["action"] == "terminate"
        azure = httpx.get(f"{base}/metadata/scheduledevents").json()
        assert azure["Events"][0]["EventType"] == "Preempt"
        assert wait_for(lambda: not p.alive(), 15)  # it ignored SIGTERM-less notice: killed after grace
        assert wait_for(lambda: any(e["action"] == "signal" and e["signal"] == "SIGKILL" for e in events), 5)
    finally:
        fault.revert()  # no reschedule planned: the revert starts it again
    assert p.alive() and p.pid != first
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/latest/meta-data/spot/instance-action", timeout=2)


def test_file_notice_is_written_and_removed_even_after_an_exception(job, tmp_path):
    p = job(POLITE_JOB)
    notice = tmp_path / "preempt.json"
    fault = build("gpu.preemption", {"trainer": p}, process="trainer", notice="file",
                  notice_file=str(notice), grace="30s", reschedule_after="30s")
    with pytest.raises(RuntimeError, match="boom"):
        try:
            fault.inject()
            assert json.loads(notice.read_text())["action"] == "terminate"
            raise RuntimeError("boom")
        finally:
            fault.revert()
    assert not notice.exists() and p.alive()
    with pytest.raises(ValueError, match="notice: file needs `notice_file:`"):
        fault_types()["gpu.preemption"].Params(process="trainer", notice="file")


def test_unavailable_restarts_without_a_gpu_and_revert_restores(job):
    p = job(POLITE_JOB, env={"CUDA_VISIBLE_DEVICES": "0"})
    fault = build("gpu.unavailable", {"trainer": p}, process="trainer", grace="5s")
    try:
        fault.inject()
        assert environ(p.pid)["CUDA_VISIBLE_DEVICES"] == ""
    finally:
        fault.revert()
    assert environ(p.pid)["CUDA_VISIBLE_DEVICES"] == "0" and p.env == {"CUDA_VISIBLE_DEVICES": "0"}
    fault.revert()


def test_oom_without_cuda_holds_host_memory_and_says_so(job):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    p = job(POLITE_JOB)
    events: list = []
    fault = build("gpu.oom", {"serve": p}, events, process="serve", size="32MiB")
    try:
        fault.inject()
        pid = fault.child.pid
        assert events[0]["device"] == ("cuda" if has_cuda else "cpu") and events[0]["bytes"] >= 32 * 2**20
    finally:
        fault.revert()
    assert gone(pid)
    if not has_cuda:
        strict = build("gpu.oom", {"serve": p}, process="serve", size="1MiB", device="cuda", lifetime="30s")
        with pytest.raises(UserError, match="no CUDA device is visible"):
            strict.inject()
        strict.revert()


def test_replay_after_sigkill_removes_the_notice_and_the_rescheduled_job(tmp_path):
    notice = tmp_path / "notice.json"
    child, info = start_harness(
        tmp_path, "gpu.preemption",
        {"process": "trainer", "notice": "file", "notice_file": str(notice), "grace": "0.2s",
         "reschedule_after": "0.1s"}, {"trainer": ["sleep", "120"]}, wait=1.5)
    rescheduled = info["pids"]["trainer"]
    try:
        assert notice.exists() and rescheduled is not None and not gone(rescheduled)
        actions = sigkill_and_replay(child, tmp_path)
        assert "deleted notice file" in actions[0] and "that the fault had started" in actions[0], actions
        assert not notice.exists() and wait_for(lambda: gone(rescheduled), 5)
    finally:
        child.kill()


def test_preemption_slis_from_a_synthetic_progress_file(tmp_path):
    lines = [("start", {}), ("step", {"step": 1}), ("step", {"step": 2}), ("checkpoint", {"step": 2}),
             ("step", {"step": 3}), ("resumed", {"from_step": 2}), ("step", {"step": 3}),
             ("step", {"step": 4}), ("start", {}), ("step", {"step": 1}), ("done", {"step": 1, "loss": 0.5})]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps({"event": e, **f, "time": float(i)}) + "\n" for i, (e, f) in enumerate(lines))
                    + '{"event": "st')  # a torn last line
    slis = preemption_slis(path)
    first, second = slis.interruptions
    assert (first.steps_lost, first.checkpoint_ok, first.resume_time) == (1, True, 2.0)
    assert (second.steps_lost, second.checkpoint_ok, second.resumed_from) == (4, False, 0)  # started over
    assert slis.steps_lost == 5 and not slis.checkpoint_ok and slis.completed and slis.final_loss == 0.5


def demo_train(progress: Path, state: Path, steps: int = 30) -> list[str]:
    return [sys.executable, "-m", "harness.demo", "train", "--state-dir", str(state), "--steps", str(steps),
            "--checkpoint-every", "10", "--progress", str(progress), "--step-time", "0.05", "--device", "cpu"]


def last_step(progress: Path) -> int:
    if not progress.exists():
        return 0
    steps = [json.loads(x)["step"] for x in progress.read_text().splitlines() if '"event": "step"' in x]
    return steps[-1] if steps else 0


@pytest.mark.skipif(not (ROOT / "harness" / "demo" / "train_job.py").exists(), reason="demo training job not present")
def test_preempting_the_demo_training_job_loses_at_most_a_checkpoint_interval(job, tmp_path):
    pytest.importorskip("torch")
    base_progress, progress = tmp_path / "base.jsonl", tmp_path / "run.jsonl"
    baseline = job(demo_train(base_progress, tmp_path / "base-state"))
    p = job(demo_train(progress, tmp_path / "state"))
    assert wait_for(lambda: last_step(progress) >= 13, 60)  # past the first checkpoint, mid-interval
    fault = build("gpu.preemption", {"trainer": p}, process="trainer", notice="none",
                  reschedule_after="200ms")
    try:
        killed_at = time.time()
        fault.inject()
        assert wait_for(lambda: '"done"' in progress.read_text(), 90)
    finally:
        fault.revert()
    assert wait_for(lambda: not baseline.alive(), 60)
    slis = preemption_slis(progress, baseline=base_progress, interrupted_at=[killed_at])
    (cut,) = slis.interruptions
    assert cut.resumed_from == 10 and 1 <= cut.steps_lost <= 10
    assert slis.checkpoint_ok and slis.completed and slis.final_step == 30
    assert cut.resume_time is not None and cut.resume_time > 0
    assert abs(slis.final_loss_delta) < 1e-6  # resumed from model, optimizer and RNG state
