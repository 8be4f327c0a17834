"""`model.tamper`: corrupt the model artifact the target will load next (supply chain).

The artifact is a file (`path`) or lives in a registry that two commands reach
(`registry.pull` fetches it into `{file}`, `registry.push` uploads `{file}` back). The
fault flips seeded bytes, truncates it, or swaps in another model's file, then checks
that the tampered bytes are what the target will read (re-reading the file, or pulling
again). It names the artifact's `version` as bad, so the `tampered_served` SLI counts
the responses that version answers: a target that verifies its artifacts never serves it.

With `deploy:` (a deploy hook, as `model.rollout`'s: an HTTP admin call, a command, a file
dropped in a model folder) it then asks the target to load that version now. The target's
answer is journaled (`tamper.deploy`), not judged: refusing the artifact is what a
resilient target does, and the SLOs judge what it served. `rollback:` takes the version
back out on revert where the target took it.

The original bytes go to a backup file (written atomically, named in the undo record)
before anything is changed, so the revert, and `aftershock cleanup` after a SIGKILL,
can put them back.
"""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from faults.lifecycle.deploy_hook import DeployHook, call, resolve
from harness.core.fault import Fault, FaultContext, FaultFailed, FaultParams, UserError

STATE_DIR = Path(tempfile.gettempdir()) / "aftershock-faults"
COMMAND_TIMEOUT_S = 60.0


class RegistryHook(FaultParams):
    pull: list[str] = Field(min_length=1, description="command that writes the artifact to `{file}`")
    push: list[str] = Field(min_length=1, description="command that uploads `{file}` as the artifact")
    timeout: float = Field(COMMAND_TIMEOUT_S, gt=0, description="seconds each command may take")


class ModelTamperParams(FaultParams):
    path: str | None = Field(
        None, description="the model file the target loads next (relative: to the run folder)"
    )
    registry: RegistryHook | None = Field(
        None, description="or: `pull`/`push` commands that fetch and upload it (`{file}` is filled in)"
    )
    version: str = Field(description="the artifact's version: named bad, so `tampered_served` counts it")
    mode: Literal["flip", "truncate", "swap"] = Field(
        "flip", description="flip seeded bytes, truncate, or swap in another model's file"
    )
    flips: int = Field(16, ge=1, le=1 << 20, description="flip: bytes to change")
    keep: float = Field(0.5, ge=0, lt=1, description="truncate: the fraction of the file kept")
    swap_with: str | None = Field(
        None, description="swap: the other model's file (relative: to the run folder)"
    )
    seed: int | None = Field(None, description="flip: picks the bytes (default: the run's seed)")
    deploy: DeployHook | None = Field(
        None, description="then make the target load `version` now: http: {url}, command: [argv] or file: {dir}"
    )
    rollback: DeployHook | None = Field(
        None, description="on revert, take `version` back out where the target accepted it"
    )

    @model_validator(mode="after")
    def _consistent(self) -> ModelTamperParams:
        if (self.path is None) == (self.registry is None):
            raise ValueError("give exactly one of `path` (a file) or `registry` (pull/push commands)")
        if (self.mode == "swap") != (self.swap_with is not None):
            raise ValueError("`swap_with` (the other model's file) goes with `mode: swap`, and only with it")
        return self


def tampered(original: bytes, params: ModelTamperParams, seed: int, swap: bytes | None) -> bytes:
    """The bytes ``params`` make of ``original``; never equal to them."""
    if params.mode == "swap":
        assert swap is not None
        return swap
    if params.mode == "truncate":
        return original[: int(len(original) * params.keep)]
    rng = random.Random(seed)
    data = bytearray(original)
    for offset in rng.sample(range(len(data)), min(params.flips, len(data))):
        data[offset] ^= rng.randrange(1, 256)  # a non-zero mask: every picked byte changes
    return bytes(data)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_atomically(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_in_place(path: Path, data: bytes) -> None:
    """Overwrite ``path``'s bytes, keeping its inode, owner and mode (what a writer with
    access to the file, not to its folder, can do)."""
    with path.open("r+b") as f:
        f.write(data)
        f.truncate()
        f.flush()
        os.fsync(f.fileno())


def run_command(argv: list[str], timeout: float, what: str) -> None:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise UserError(f"model.tamper: registry.{what}: no program {argv[0]!r}; give a command on PATH") from None
    except subprocess.TimeoutExpired:
        raise FaultFailed(f"model.tamper: registry.{what} {argv} took over {timeout:g}s") from None
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip()[-400:]
        raise FaultFailed(f"model.tamper: registry.{what} {argv} exited {done.returncode}: {tail}")


def filled(argv: list[str], file: Path) -> list[str]:
    return [part.replace("{file}", str(file)) for part in argv]


class ArtifactFile:
    """A local file the artifact's bytes live in: the file itself, or a registry's copy
    (pulled before each read, pushed after each write)."""

    def __init__(self, path: Path, registry: RegistryHook | None) -> None:
        self.path = path
        self.registry = registry

    def read(self) -> bytes:
        if self.registry is not None:
            self.path.unlink(missing_ok=True)  # what the pull writes, not an older copy
            run_command(filled(self.registry.pull, self.path), self.registry.timeout, "pull")
        try:
            if not self.path.is_file():
                raise FileNotFoundError
            return self.path.read_bytes()
        except FileNotFoundError:
            where = "registry.pull did not write" if self.registry else "no model file at"
            raise UserError(
                f"model.tamper: {where} {self.path}: name the file the target loads next "
                "(publish it first, e.g. in a job)"
            ) from None
        except PermissionError as exc:
            raise UserError(f"model.tamper: cannot read {self.path}: {exc.strerror}") from None

    def write(self, data: bytes) -> None:
        try:
            if self.registry is None and self.path.exists():
                write_in_place(self.path, data)
            else:  # the registry's local copy is ours; a file the target moved away comes back
                write_atomically(self.path, data)
        except OSError as exc:
            raise UserError(
                f"model.tamper: cannot write {self.path}: {exc.strerror}; the fault needs write "
                "access to the artifact the target loads"
            ) from None
        if self.registry is not None:
            run_command(filled(self.registry.push, self.path), self.registry.timeout, "push")


class ModelTamper(Fault):
    """Flip, truncate or swap the bytes of the model artifact the target loads next."""

    type = "model.tamper"
    Params = ModelTamperParams
    params: ModelTamperParams

    def __init__(self, name: str, params: FaultParams, ctx: FaultContext) -> None:
        super().__init__(name, params, ctx)
        p = self.params
        safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
        token = f"{safe}-{uuid.uuid4().hex[:12]}"
        self.backup = STATE_DIR / f"{token}.orig"
        local = self.resolve(p.path) if p.path is not None else STATE_DIR / f"{token}.artifact"
        self.artifact = ArtifactFile(local, p.registry)
        self.original_digest: str | None = None
        values = {"target": ctx.target_url or "", "version": p.version, "previous": None, "share": 1.0,
                  "artifact": str(local) if p.path is not None else None, "degrade": {}}
        self.deploy_call = resolve(p.deploy, values, ctx.run_dir) if p.deploy else None
        self.rollback_call = resolve(p.rollback, values, ctx.run_dir) if p.rollback else None
        self.deployed = False

    def resolve(self, path: str) -> Path:
        p = Path(path)
        if not p.is_absolute() and self.ctx.run_dir is not None:
            p = self.ctx.run_dir / p
        return p

    def undo_record(self) -> dict[str, Any]:
        push = self.params.registry.push if self.params.registry else None
        return {"path": str(self.artifact.path), "backup": str(self.backup), "push": push,
                "rollback": self.rollback_call, "allowed_hosts": list(self.ctx.allowed_hosts)}

    def bad_versions(self) -> list[str]:
        return [self.params.version]

    def inject(self) -> None:
        p = self.params
        original = self.artifact.read()
        swap = self.read_swap() if p.mode == "swap" else None
        if not original and p.mode != "swap":
            raise UserError(f"model.tamper: {self.artifact.path} is empty: there is nothing to {p.mode}")
        data = tampered(original, p, self.ctx.seed if p.seed is None else p.seed, swap)
        if data == original:
            raise UserError(f"model.tamper: {p.swap_with} holds the same bytes as the artifact: swap in another model")
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        write_atomically(self.backup, original)  # before any change: the undo needs it
        self.original_digest = sha256(original)
        self.artifact.write(data)
        found = self.reread()
        if sha256(found) != sha256(data):
            raise FaultFailed(f"model.tamper: {self.where()} does not hold the tampered bytes after the write")
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action=p.mode,
                         artifact=self.where(), version=p.version, bytes_before=len(original),
                         bytes_after=len(data), sha256_before=self.original_digest, sha256_after=sha256(data))
        if self.deploy_call is not None:
            self.trigger_load(self.deploy_call)

    def trigger_load(self, hook_call: dict[str, Any]) -> None:
        """Ask the target to load the tampered version; its answer is a fact, not a failure."""
        try:
            answer = call(hook_call, self.ctx.allowed_hosts)
            self.deployed = True
        except FaultFailed as exc:  # refused (4xx/5xx, a failing command) or unreachable
            answer = str(exc)
        self.ctx.journal("tamper.deploy", fault=self.name, version=self.params.version,
                         accepted=self.deployed, answer=answer)

    def read_swap(self) -> bytes:
        assert self.params.swap_with is not None
        other = self.resolve(self.params.swap_with)
        try:
            return other.read_bytes()
        except OSError as exc:
            raise UserError(f"model.tamper: swap_with {other}: {exc.strerror}; name another model's file") from None

    def reread(self) -> bytes:
        """What the target would load now (pulled again from a registry)."""
        return self.artifact.read()

    def where(self) -> str:
        return "the registry's artifact" if self.params.registry else str(self.artifact.path)

    def revert(self) -> None:
        """Put the original bytes back, then take the version out where the target took it."""
        if self.original_digest is not None:
            self.restore()
        if self.deployed and self.rollback_call is not None:
            done = call(self.rollback_call, self.ctx.allowed_hosts)
            self.deployed = False
            self.ctx.journal("tamper.rolled_back", fault=self.name, version=self.params.version, hook=done)

    def restore(self) -> None:
        original = self.backup.read_bytes()
        try:
            current: bytes | None = self.reread()
        except UserError:
            current = None  # gone: it is written back
        if current is None or sha256(current) != self.original_digest:  # inject() may have failed before the write
            self.artifact.write(original)
            if sha256(self.reread()) != self.original_digest:
                raise FaultFailed(f"model.tamper: {self.where()} does not hold its original bytes after the revert")
        self.backup.unlink(missing_ok=True)
        self.original_digest = None
        self.ctx.journal("fault.action", fault=self.name, type=self.type, action="restore",
                         artifact=self.where())

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        backup, path = Path(record["backup"]), Path(record["path"])
        if backup.exists():
            data = backup.read_bytes()
            if record.get("push"):
                write_atomically(path, data)
                run_command(filled(record["push"], path), COMMAND_TIMEOUT_S, "push")
            else:
                ArtifactFile(path, None).write(data)
            backup.unlink()
            done = [f"restored the original bytes of {path}"]
        else:
            done = [f"model artifact {path} was not changed (no backup left)"]
        if record.get("rollback"):  # the target may have loaded the tampered version
            try:
                done.append(call(record["rollback"], tuple(record.get("allowed_hosts") or ())))
            except FaultFailed as exc:  # a target gone with the harness has nothing to roll back
                done.append(f"rollback hook: {exc}")
        return "; ".join(done)
