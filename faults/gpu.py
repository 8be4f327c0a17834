"""GPU faults: spot/preemptible loss of a job, no visible GPU, GPU memory exhaustion.

`gpu.preemption` plays a cloud's spot preemption on a process of the run: an optional
notice (SIGTERM; a notice file; or an HTTP endpoint shaped like the GCE/AWS/Azure
metadata servers, served on 127.0.0.1 while the fault lasts), a grace period, SIGKILL
of the process group if it is still alive, then a reschedule (a fresh start of the
same command) after a delay, optionally with `CUDA_VISIBLE_DEVICES` narrowed.
Nothing here needs a GPU: on CPU the same steps happen, and the job simply sees no
device to lose. `preemption_slis()` reads the job's JSONL progress file afterwards.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from faults.children.gpu_hog import NO_CUDA_EXIT
from faults.process import SETTLE_S, ProcessFault, ProcessParams, replay_state_file
from faults.resource import ChildFailed, PressureFault, PressureParams
from harness.core.fault import FaultParams, UserError
from harness.core.polling import wait_until
from harness.core.process_tree import wait_gone
from harness.core.units import ByteSize, Duration, Percent

# ---------------------------------------------------------------------------------------
# gpu.preemption


class PreemptionParams(ProcessParams):
    notice: Literal["none", "sigterm", "file", "http"] = Field(
        "sigterm", description="how the job learns it will be preempted")
    notice_file: str | None = Field(None, description="with notice: file — where the notice is written")
    notice_port: int | None = Field(
        None, ge=1, le=65535, description="with notice: http — port of the metadata endpoint on 127.0.0.1")
    grace: Duration = Field(30.0, description="time from notice to SIGKILL (GCE gives 30s, AWS 2m)")
    reschedule_after: Duration | None = Field(
        5.0, description="start the job again this long after the kill; null = when the fault ends")
    progress: str | None = Field(
        None, description="the job's JSONL progress file (relative: in the run folder), for the "
        "SLIs resume_time, steps_lost, checkpoint_ok, completed")
    resume_timeout: Duration = Field(
        60.0, description="with progress: how long the SLIs wait for the rescheduled job's first step")
    visible_devices: str | None = Field(
        None, description="CUDA_VISIBLE_DEVICES of the rescheduled job, e.g. '0' (fewer GPUs) or ''")

    @model_validator(mode="after")
    def _notice_needs(self) -> PreemptionParams:
        if self.notice == "file" and not self.notice_file:
            raise ValueError("notice: file needs `notice_file:` (the path the job watches)")
        if self.notice == "http" and self.notice_port is None:
            raise ValueError("notice: http needs `notice_port:` (the port the job polls on 127.0.0.1)")
        return self


class MetadataNoticeServer:
    """Answers a preemption notice the way cloud metadata servers do, on 127.0.0.1 only.

    GCE:   GET /computeMetadata/v1/instance/preempted  -> TRUE   (Metadata-Flavor: Google)
    AWS:   GET /latest/meta-data/spot/instance-action   -> {"action": "terminate", "time": ...}
    Azure: GET /metadata/scheduledevents                -> {"Events": [{"EventType": "Preempt", ...}]}
    """

    def __init__(self, port: int, terminate_at: float) -> None:
        when = datetime.fromtimestamp(terminate_at, UTC)
        aws = json.dumps({"action": "terminate", "time": when.strftime("%Y-%m-%dT%H:%M:%SZ")})
        azure = json.dumps({"DocumentIncarnation": 1, "Events": [{
            "EventId": "aftershock-preemption", "EventType": "Preempt", "ResourceType": "VirtualMachine",
            "Resources": ["aftershock"], "EventStatus": "Scheduled",
            "NotBefore": when.strftime("%a, %d %b %Y %H:%M:%S GMT")}]})
        routes = {
            "/computeMetadata/v1/instance/preempted": ("text/plain", "TRUE"),
            "/computeMetadata/v1/instance/maintenance-event": ("text/plain", "TERMINATE_ON_HOST_MAINTENANCE"),
            "/latest/meta-data/spot/instance-action": ("application/json", aws),
            "/metadata/scheduledevents": ("application/json", azure),
        }

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                kind, body = routes.get(self.path.split("?")[0], ("text/plain", ""))
                self.send_response(200 if body else 404)
                self.send_header("Content-Type", kind)
                self.send_header("Metadata-Flavor", "Google")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        try:
            self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        except OSError as exc:
            raise UserError(f"gpu.preemption: cannot serve the notice on 127.0.0.1:{port} ({exc}); "
                            "pick a free `notice_port:`") from None
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class GpuPreemption(ProcessFault):
    """Spot preemption of a job: notice, grace, SIGKILL, reschedule."""

    type = "gpu.preemption"
    Params = PreemptionParams
    metric_names = ("resume_time", "steps_lost", "checkpoint_ok", "completed")

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._server: MetadataNoticeServer | None = None
        self._original_env: dict[str, dict[str, str] | None] = {}

    def undo_record(self) -> dict[str, Any]:
        return {**super().undo_record(), "notice_file": self.params.notice_file
                if self.params.notice == "file" else None}

    def metrics(self) -> dict[str, float]:
        self.finish_checks()
        if self.params.progress is None:
            return {}
        path = Path(self.params.progress)
        if not path.is_absolute() and self.ctx.run_dir is not None:
            path = self.ctx.run_dir / path
        # a rescheduled job may still be starting when the load ends: wait (bounded) until
        # its first step after the interruption, or resume_time could not be measured
        slis = PreemptionSLIs()

        def resumed_or_done() -> bool:
            nonlocal slis
            slis = preemption_slis(path) if path.exists() else PreemptionSLIs()
            resumed = bool(slis.interruptions) and all(i.resume_time is not None for i in slis.interruptions)
            return resumed or slis.completed

        wait_until(resumed_or_done, self.params.resume_timeout, interval=0.2)
        if not path.exists():
            return {}
        out = {"steps_lost": float(slis.steps_lost), "checkpoint_ok": float(slis.checkpoint_ok),
               "completed": float(slis.completed)}
        if slis.resume_time is not None:
            out["resume_time"] = slis.resume_time
        return out

    def rescheduled_env(self, name: str) -> dict[str, str] | None:
        env = self._original_env.setdefault(name, self.proc(name).env)
        if self.params.visible_devices is None:
            return env
        return {**(env or {}), "CUDA_VISIBLE_DEVICES": self.params.visible_devices}

    def inject(self) -> None:
        p = self.params
        kill_at = time.time() + (p.grace if p.notice != "none" else 0.0)
        for name in self.picked():
            self._original_env.setdefault(name, self.proc(name).env)
        self.action("notice", notice=p.notice, grace_s=p.grace if p.notice != "none" else 0.0)
        if p.notice == "sigterm":
            for name in self.picked():
                self.send(name, signal.SIGTERM)
        elif p.notice == "file":
            notice = {"event": "preemption", "action": "terminate", "terminate_at": kill_at,
                      "processes": self.picked()}
            tmp = Path(p.notice_file + ".tmp")
            tmp.write_text(json.dumps(notice) + "\n", encoding="utf-8")
            os.replace(tmp, p.notice_file)
        elif p.notice == "http":
            self._server = MetadataNoticeServer(p.notice_port, kill_at)
        self.steps.start(self._preempt, f"{self.name}-preemption", self.report_step_error)

    def _preempt(self) -> None:
        grace = self.params.grace if self.params.notice != "none" else 0.0
        deadline = time.monotonic() + grace
        for name in self.picked():
            members = self.proc(name).members()
            while wait_gone(members, 0) and time.monotonic() < deadline:
                if not self.steps.sleep(0.05):
                    return
            if wait_gone(members, 0):
                self.take_down(name, signal.SIGKILL, SETTLE_S)
            else:
                self.action("exited_in_grace", process=name, code=self.proc(name).proc.returncode)
        if self.params.reschedule_after is None or not self.steps.sleep(self.params.reschedule_after):
            return
        for name in self.picked():
            self.restart(name, env=self.rescheduled_env(name), reason="reschedule")

    def restore(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        if self.params.notice == "file" and self.params.notice_file:
            Path(self.params.notice_file).unlink(missing_ok=True)
        for name in self._picked or []:
            if not self.proc(name).alive():  # the reschedule had not happened yet: do it now
                self.restart(name, env=self.rescheduled_env(name), reason="revert")
            if name in self._original_env:  # later restarts get the job's own environment
                self.proc(name).env = self._original_env[name]

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        done = replay_state_file(record["state_file"])
        if record.get("notice_file") and Path(record["notice_file"]).exists():
            Path(record["notice_file"]).unlink()
            done.append(f"deleted notice file {record['notice_file']}")
        return "; ".join(done) if done else "nothing left to undo"


# ---------------------------------------------------------------------------------------
# gpu.unavailable


class UnavailableParams(ProcessParams):
    grace: Duration = Field(5.0, description="SIGTERM, then SIGKILL after this long")


class GpuUnavailable(ProcessFault):
    """Restart the process with no visible GPU (CUDA_VISIBLE_DEVICES=""); revert restarts
    it with its own environment again."""

    type = "gpu.unavailable"
    Params = UnavailableParams

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._original_env: dict[str, dict[str, str] | None] = {}

    def inject(self) -> None:
        for name in self.picked():
            env = self._original_env.setdefault(name, self.proc(name).env)
            self.stop_tree(name, self.params.grace)
            self.restart(name, env={**(env or {}), "CUDA_VISIBLE_DEVICES": ""}, reason="no_gpu")

    def restore(self) -> None:
        for name in self._picked or []:
            if name not in self._original_env:
                continue
            if self.proc(name).members():
                self.stop_tree(name, self.params.grace)
            self.restart(name, env=self._original_env.pop(name), reason="revert")


# ---------------------------------------------------------------------------------------
# gpu.oom

class OomParams(PressureParams):
    process: str | None = Field(
        None, description="the serving process whose GPUs to fill (its CUDA_VISIBLE_DEVICES is used)")
    size: ByteSize | None = Field(None, description="bytes to take on each device")
    fraction: Percent | None = Field(None, description="or: this share of each device's free memory")
    device: Literal["auto", "cuda", "cpu"] = Field(
        "auto", description="cuda: fail without a GPU; cpu: host memory; auto: cuda if there is one")

    @model_validator(mode="after")
    def _one_amount(self) -> OomParams:
        if (self.size is None) == (self.fraction is None):
            raise ValueError("give exactly one of `size` or `fraction`")
        return self


class GpuOom(PressureFault):
    """A co-tenant takes the GPU memory the serving process needs, until the fault ends.

    With a CUDA device, a child process allocates `size` (or `fraction` of the free
    memory) on every device the named process can see, so the process's next large
    allocation raises a CUDA out-of-memory error and its OOM path runs. Without one
    (and `device: auto` or `cpu`) the child holds that much *host* memory instead: real
    memory pressure, but not a GPU OOM; the process only fails if the host (or its
    cgroup) runs out. The journal records which one happened (`device`).
    """

    type = "gpu.oom"
    Params = OomParams
    child_module = "faults.children.gpu_hog"

    @classmethod
    def check(cls, params: FaultParams, dependencies: set[str], processes: set[str]) -> None:
        if params.process is not None and params.process not in processes:
            known = ", ".join(sorted(processes)) or "none"
            raise UserError(f"gpu.oom: process {params.process!r} is not one the run starts (known: {known})")

    def child_args(self) -> list[str]:
        return [str(self.params.size or 0), str(self.params.fraction or 0.0), self.params.device]

    def inject(self) -> None:
        env = None
        if self.params.process is not None:
            proc_env = self.ctx.processes[self.params.process].env or {}
            visible = proc_env.get("CUDA_VISIBLE_DEVICES", os.environ.get("CUDA_VISIBLE_DEVICES"))
            if visible is not None:
                env = {**os.environ, "CUDA_VISIBLE_DEVICES": visible}
        try:
            line = self.spawn(wait_ready=True, env=env)
        except ChildFailed as exc:
            if exc.code == NO_CUDA_EXIT:
                raise UserError("gpu.oom: `device: cuda` but no CUDA device is visible; use device: auto") from None
            raise
        _, where, held = line.split()
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="hold",
                         pid=self.child.pid, device=where, bytes=int(held))
        if where == "cpu":
            self.check_holding(int(held))
        # on cuda the child's tensors are the proof: CUDA allocates device memory eagerly


# ---------------------------------------------------------------------------------------
# SLIs of a preempted training job, from its JSONL progress file


@dataclass
class Interruption:
    last_step: int  # the last step the job reported before it went away
    last_seen: float  # time of its last progress line
    resumed_from: int  # the step it resumed from (0 = started over)
    checkpoint_step: int | None  # the last checkpoint written before it went away
    resume_time: float | None  # seconds from going away (or `interrupted_at`) to the next step
    steps_lost: int  # steps done twice
    checkpoint_ok: bool  # it resumed from its last checkpoint


@dataclass
class PreemptionSLIs:
    interruptions: list[Interruption] = field(default_factory=list)
    completed: bool = False
    final_step: int = 0
    final_loss: float | None = None
    baseline_final_loss: float | None = None
    checkpoint_corrupt: bool = False

    @property
    def resume_time(self) -> float | None:
        times = [i.resume_time for i in self.interruptions if i.resume_time is not None]
        return max(times) if times else None

    @property
    def steps_lost(self) -> int:
        return sum(i.steps_lost for i in self.interruptions)

    @property
    def checkpoint_ok(self) -> bool:
        return not self.checkpoint_corrupt and all(i.checkpoint_ok for i in self.interruptions)

    @property
    def final_loss_delta(self) -> float | None:
        if self.final_loss is None or self.baseline_final_loss is None:
            return None
        return self.final_loss - self.baseline_final_loss

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "resume_time": self.resume_time, "steps_lost": self.steps_lost,
                "checkpoint_ok": self.checkpoint_ok, "final_loss_delta": self.final_loss_delta}


def read_progress(path: Path) -> list[dict[str, Any]]:
    events = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a line torn by the kill
    return events


def preemption_slis(progress: Path, baseline: Path | None = None,
                    interrupted_at: list[float] | None = None) -> PreemptionSLIs:
    """SLIs of a job that may have been interrupted, from its progress file.

    An interruption is a `resumed` event, or a `start` after steps were made (started
    over). `resume_time` runs from the job's last progress line before it went away
    (or from the matching `interrupted_at` instant, e.g. the fault's kill time) to its
    first step afterwards. `baseline`: the progress file of an unfaulted run, for the
    final loss comparison.
    """
    out = PreemptionSLIs()
    step, seen, ckpt = 0, None, None
    pending: Interruption | None = None
    kills = list(interrupted_at or [])
    for e in read_progress(progress):
        kind = e.get("event")
        if kind in ("resumed", "start") and (kind == "resumed" or step > 0):
            from_step = int(e.get("from_step", 0)) if kind == "resumed" else 0
            pending = Interruption(
                last_step=step, last_seen=seen or e["time"], resumed_from=from_step,
                checkpoint_step=ckpt, resume_time=None, steps_lost=max(0, step - from_step),
                checkpoint_ok=from_step == (ckpt or 0),
            )
            if kills:
                pending.last_seen = kills.pop(0)
            out.interruptions.append(pending)
            step = from_step
        elif kind == "step":
            step = int(e["step"])
            if pending is not None and pending.resume_time is None:
                pending.resume_time = e["time"] - pending.last_seen
                pending = None
        elif kind == "checkpoint":
            ckpt = int(e["step"])
        elif kind == "checkpoint_corrupt":
            out.checkpoint_corrupt = True
        elif kind == "done":
            out.completed = True
            step = int(e.get("step", step))
            out.final_loss = e.get("loss")
        if kind != "resumed":
            seen = e.get("time", seen)
    out.final_step = step
    if baseline is not None:
        done = [e for e in read_progress(baseline) if e.get("event") == "done"]
        out.baseline_final_loss = done[-1].get("loss") if done else None
    return out
