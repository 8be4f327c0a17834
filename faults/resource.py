"""Resource pressure: busy CPU cores, held memory, a filled disk.

CPU and memory pressure run in a child process group that the fault owns and always
kills on revert. Each checks it is really there before the fault counts as injected:
`cores` busy processes whose CPU time grows, a holder whose resident (or swapped)
memory is the size asked for, a fill file whose blocks are allocated; if not, the
fault fails (FaultFailed). Each child carries a unique marker in its command line; that marker
is the undo record, so after a SIGKILL of the harness `replay_undo` finds and kills
exactly those children (a reused pid never carries the marker). As a last safety net
a child also exits by itself after `lifetime`.

`resource.disk_fill` writes one file in the named directory; its path is the undo
record and it is deleted on revert and on replay.
"""

from __future__ import annotations

import errno
import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any, NoReturn

import psutil
from pydantic import Field, model_validator

from harness.core.fault import Fault, FaultFailed, FaultParams, UserError
from harness.core.polling import wait_until
from harness.core.units import ByteSize, Duration, Percent

MARKER_PREFIX = "aftershock-pressure-"

def marked_pids(marker: str) -> list[int]:
    """Pids whose command line carries `marker` as an argument."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if marker.encode() in argv:
            found.append(int(entry.name))
    return found


def kill_marked(marker: str) -> int:
    """SIGKILL every process carrying `marker`; returns how many were signalled."""
    n = 0
    for pid in marked_pids(marker):
        try:
            os.kill(pid, signal.SIGKILL)
            n += 1
        except ProcessLookupError:
            pass
    return n


SETTLE_S = 5.0  # how long a pressure child may take to show its load


class ChildFailed(FaultFailed):
    def __init__(self, code: int, line: str) -> None:
        super().__init__(f"the pressure child exited with code {code} before holding its load ({line or 'no output'})")
        self.code = code


class PressureParams(FaultParams):
    lifetime: Duration = Field(
        3600.0, gt=0, description="safety net: the pressure child exits by itself after this long"
    )


class CpuParams(PressureParams):
    cores: int = Field(1, ge=1, le=1024, description="how many cores to keep busy")
    load: Percent = Field(1.0, description="duty cycle of each busy core, e.g. 80%")

    @model_validator(mode="after")
    def _positive_load(self) -> CpuParams:
        if self.load <= 0:
            raise ValueError("load must be above 0%")
        return self


class MemoryParams(PressureParams):
    size: ByteSize = Field(description="memory to hold, e.g. 512MB")


class PressureFault(Fault):
    """Base: one child process group carrying a marker; killed on revert and on replay."""

    child_module: str  # run as `python -m child_module marker lifetime *child_args()`

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self.marker = f"{MARKER_PREFIX}{uuid.uuid4().hex}"
        self.child: subprocess.Popen[bytes] | None = None

    def child_args(self) -> list[str]:
        raise NotImplementedError

    def undo_record(self) -> dict[str, Any]:
        return {"marker": self.marker}

    def spawn(self, wait_ready: bool = False, env: dict[str, str] | None = None) -> str:
        """Start the child in its own group; with `wait_ready`, return its `ready ...` line."""
        argv = [sys.executable, "-m", self.child_module, self.marker, str(self.params.lifetime),
                *self.child_args()]
        self.child = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE if wait_ready else subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, env=env, start_new_session=True,
        )
        if not wait_ready:
            return ""
        assert self.child.stdout is not None
        line = self.child.stdout.readline().decode().strip()  # "" if the child dies (e.g. OOM)
        if not line.startswith("ready"):
            code = self.child.wait()
            self.child.stdout.close()
            self.child = None
            exc = ChildFailed(code, line)
            self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=str(exc))
            raise exc
        return line

    def fail(self, message: str) -> NoReturn:
        self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=message)
        raise FaultFailed(f"{self.type} {self.name}: {message}")

    def pressure(self) -> list[psutil.Process]:
        """The live processes carrying this fault's marker."""
        out = []
        for pid in marked_pids(self.marker):
            try:
                p = psutil.Process(pid)
                if p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p)
            except psutil.Error:
                pass
        return out

    def check_holding(self, size: int) -> None:
        """The holder keeps `size` bytes resident (or swapped out): the memory is really taken."""
        held = 0
        for p in self.pressure():
            try:
                mem = p.memory_full_info()
            except psutil.Error:
                continue
            held += mem.rss + getattr(mem, "swap", 0)
        if held < 0.9 * size:
            self.fail(f"the holder keeps {held} bytes, not the {size} asked for")
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="verified",
                         effect="memory held", bytes=held)

    def revert(self) -> None:
        if self.child is not None:
            try:
                os.killpg(self.child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.child.wait()
            if self.child.stdout is not None:
                self.child.stdout.close()
        killed = kill_marked(self.marker)  # forked workers whose leader already died
        if self.child is not None:
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="release",
                             pid=self.child.pid, stragglers=killed)
        self.child = None

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        n = kill_marked(record["marker"])
        return f"killed {n} pressure process(es)" if n else "no pressure process left"


class ResourceCpu(PressureFault):
    """Keep `cores` cores busy at `load` duty cycle."""

    type = "resource.cpu"
    Params = CpuParams
    child_module = "faults.children.cpu_burn"

    def child_args(self) -> list[str]:
        return [str(self.params.cores), str(self.params.load)]

    def inject(self) -> None:
        self.spawn(wait_ready=True)
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="burn",
                         pid=self.child.pid, cores=self.params.cores, load=self.params.load)
        self.check_burning()

    def check_burning(self) -> None:
        """`cores` burners are alive and their CPU time grows (they are scheduled, not stuck)."""
        burners = self.pressure()
        if len(burners) != self.params.cores:
            self.fail(f"{len(burners)} burner process(es) run, not {self.params.cores}")

        def cpu_seconds() -> float:
            total = 0.0
            for p in burners:
                try:
                    t = p.cpu_times()
                    total += t.user + t.system
                except psutil.Error:
                    pass
            return total

        start = cpu_seconds()
        if not wait_until(lambda: cpu_seconds() - start > 0, SETTLE_S):
            self.fail(f"the burners used no CPU time in {SETTLE_S:g}s")
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="verified",
                         effect="cpu busy", pids=[p.pid for p in burners])


class ResourceMemory(PressureFault):
    """Allocate `size` bytes, touch every page, and hold them until the fault ends."""

    type = "resource.memory"
    Params = MemoryParams
    child_module = "faults.children.memory_hold"

    def child_args(self) -> list[str]:
        return [str(self.params.size)]

    def inject(self) -> None:
        self.spawn(wait_ready=True)
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="hold",
                         pid=self.child.pid, bytes=self.params.size)
        self.check_holding(self.params.size)


class DiskFillParams(FaultParams):
    directory: str = Field(description="an existing directory; the fill file goes in it")
    size: ByteSize | None = Field(None, description="write this many bytes")
    leave_free: ByteSize | None = Field(None, description="or: fill until only this much is free")

    @model_validator(mode="after")
    def _one_amount(self) -> DiskFillParams:
        if (self.size is None) == (self.leave_free is None):
            raise ValueError("give exactly one of `size` (bytes to write) or `leave_free`")
        return self


class DiskFill(Fault):
    """Fill a directory's filesystem with one file; it is always deleted on revert."""

    type = "resource.disk_fill"
    Params = DiskFillParams
    chunk = 1 << 20

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        self.path = Path(params.directory) / f".aftershock-fill-{safe}-{uuid.uuid4().hex[:12]}"

    def undo_record(self) -> dict[str, Any]:
        return {"path": str(self.path)}

    def bytes_to_write(self) -> int:
        free = shutil.disk_usage(self.path.parent).free
        if self.params.size is not None:
            return self.params.size
        return max(0, free - self.params.leave_free)

    def inject(self) -> None:
        directory = self.path.parent
        if not directory.is_dir():
            raise UserError(f"{self.type}: directory {str(directory)!r} does not exist; "
                            "create it first or name an existing one")
        want = self.bytes_to_write()
        written, full = self._fill(want)
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="fill",
                         path=str(self.path), bytes=written, requested=want, disk_full=full)
        # a filesystem that compresses or deduplicates may store zeros in no space at all
        allocated = os.stat(self.path).st_blocks * 512
        if allocated < 0.99 * written:
            message = (f"the fill file holds {written} bytes but only {allocated} are allocated on "
                       f"disk (a compressing filesystem?): the disk is not filled")
            self.ctx.journal("fault.failed", fault=self.name, type=self.type, error=message)
            raise FaultFailed(f"{self.type} {self.name}: {message}")
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="verified",
                         effect="space allocated", bytes=allocated)

    def _fill(self, want: int) -> tuple[int, bool]:
        """Allocate `want` bytes (fallocate, else zeros); stop at ENOSPC. Returns (bytes, full)."""
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.posix_fallocate(fd, 0, want)
                return want, False
            except OSError as exc:
                if exc.errno not in (errno.ENOSPC, errno.EOPNOTSUPP, errno.EINVAL):
                    raise
                os.ftruncate(fd, 0)
            written, zeros = 0, bytes(self.chunk)
            while written < want:
                try:
                    written += os.write(fd, zeros[: min(self.chunk, want - written)])
                except OSError as exc:
                    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                        return written, True
                    raise
            os.fsync(fd)
            return written, False
        finally:
            os.close(fd)

    def revert(self) -> None:
        existed = self.path.exists()
        self.path.unlink(missing_ok=True)
        if existed:
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="delete",
                             path=str(self.path))

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        path = Path(record["path"])
        if path.exists():
            path.unlink()
            return f"deleted fill file {path}"
        return f"fill file {path} already gone"
