"""LoadProcess: runs Locust headless in a child process group and streams its windows.

The harness never imports locust (it monkey-patches the process with gevent); it
starts `python -m locust` with aftershock's locustfile (or the user's, with the plugin
attached), reads the window records the plugin appends to a stream file, and stops
the whole process group on every path out.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Self

from harness.core.fault import UserError
from harness.core.processes import free_port, tail
from harness.core.protocols import make_adapter
from harness.core.windows import Window
from harness.engine.datasets import load_dataset
from harness.engine.load.config import ArrivalRateShape, ConstantShape, LoadConfig
from harness.engine.load.prompts import load_prompts
from harness.engine.redaction import Redactor

LOAD_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = LOAD_DIR.parents[2]  # harness/engine/load -> the checkout
OUR_LOCUSTFILE = LOAD_DIR / "locustfile.py"
ATTACH_LOCUSTFILE = LOAD_DIR / "attach.py"
CONFIG_ENV = "AFTERSHOCK_LOAD_CONFIG"  # same name as harness.engine.load.plugin.CONFIG_ENV
POLL_S = 0.05
LOG_TAIL_LINES = 40
RUN_TIME_BACKSTOP_S = 5  # Locust's --run-time beyond the plugin's own graceful end


class LoadProcessError(RuntimeError):
    """The Locust child failed; the message ends with the tail of its log."""


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment for a Locust child: the harness importable, output unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def locustfile_arg(user_locustfile: str | None) -> str:
    """`-f` value: ours, or the plugin attached next to the user's own locustfile."""
    if user_locustfile is None:
        return str(OUR_LOCUSTFILE)
    path = Path(user_locustfile).resolve()
    if not path.is_file():
        raise UserError(f"locustfile {user_locustfile}: no such file")
    return f"{ATTACH_LOCUSTFILE},{path}"


class LoadProcess:
    """One load run: `await start()`, iterate `windows()`, `await stop()` (always)."""

    def __init__(
        self, config: LoadConfig, workdir: str | Path | None = None, redactor: Redactor | None = None
    ) -> None:
        self.config = config
        self.redactor = redactor or Redactor()  # the scenario's secrets: masked in load-config.json
        self._secret_config: Path | None = None  # the child's unmasked copy, outside the run folder
        self._tmp = None if workdir else tempfile.TemporaryDirectory(prefix="aftershock-load-")
        # absolute: the child runs in this folder and is told paths inside it
        self.workdir = Path(workdir or self._tmp.name).resolve()  # type: ignore[union-attr]  # _tmp is set exactly when workdir is not given
        self.stream_path = self.workdir / "windows.jsonl"
        self.log_path = self.workdir / "locust.log"
        self.config_path = self.workdir / "load-config.json"
        self.master_port: int | None = None
        self._proc: asyncio.subprocess.Process | None = None
        self._stopping = False

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self._check()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.stream_path.write_bytes(b"")
        child_reads = self.write_child_config()
        argv = self.command()
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # its own process group: stop() reaches --processes forks
                cwd=str(self.workdir),
                env=child_env({CONFIG_ENV: str(child_reads)}),
            )

    def write_child_config(self) -> Path:
        """load-config.json with secrets masked; returns the file the child reads.

        With secrets, the child reads an unmasked copy in a private temporary file
        (mode 0600, outside the run folder), removed when the load stops."""
        child = {
            "load": self.config.model_dump(mode="python"),
            "stream_path": str(self.stream_path),
        }
        self.config_path.write_text(json.dumps(self.redactor.value(child)), encoding="utf-8")
        if not self.redactor:
            return self.config_path
        fd, name = tempfile.mkstemp(prefix="aftershock-load-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(child))
        self._secret_config = Path(name)
        return self._secret_config

    def command(self) -> list[str]:
        cfg = self.config
        argv = [sys.executable, "-m", "locust", "-f", locustfile_arg(cfg.locustfile), "--headless"]
        argv += ["--host", cfg.target_url, "--exit-code-on-error", "0", "--only-summary"]
        argv += ["--stop-timeout", str(math.ceil(cfg.graceful_stop)), "--loglevel", "INFO"]
        if cfg.locustfile is None:  # our locustfile holds both users: run the one for the protocol
            argv.append("ChatUser" if cfg.generative else "ModelUser")
        if isinstance(cfg.shape, (ConstantShape, ArrivalRateShape)):
            rate = cfg.spawn_rate if cfg.spawn_rate is not None else cfg.users
            argv += [
                "-u",
                str(cfg.users),
                "-r",
                str(rate),
                "--run-time",  # a backstop: the plugin ends the load at `duration` itself
                f"{math.ceil(cfg.duration + cfg.graceful_stop + RUN_TIME_BACKSTOP_S)}s",
            ]
        if cfg.processes > 1:
            # its forked workers talk to the master over loopback; a free port, not the
            # default 5557 on every interface, so parallel runs do not collide
            port = str(free_port())
            argv += ["--processes", str(cfg.processes), "--master-bind-host", "127.0.0.1",
                     "--master-bind-port", port, "--master-host", "127.0.0.1", "--master-port", port]
        if cfg.expect_workers:
            self.master_port = cfg.master_port or free_port(cfg.master_host)
            argv += ["--master", "--master-bind-host", cfg.master_host]
            argv += [
                "--master-bind-port",
                str(self.master_port),
                "--expect-workers",
                str(cfg.expect_workers),
            ]
            argv += ["--expect-workers-max-wait", str(math.ceil(cfg.expect_workers_timeout))]
        return argv + list(cfg.locust_args)

    def _check(self) -> None:
        """User errors before anything starts: unknown protocol, unreadable dataset."""
        make_adapter(self.config.protocol, **self.config.protocol_options)
        c = self.config
        if c.generative:
            if c.prompts:
                load_prompts(c.prompts)
        elif c.dataset is not None:
            load_dataset(c.dataset, label=c.label, features=c.features, stack_as=c.stack_as)
        locustfile_arg(self.config.locustfile)

    @property
    def master_address(self) -> str | None:
        """HOST:PORT for `aftershock worker --master` (distributed runs only)."""
        return f"{self.config.master_host}:{self.master_port}" if self.master_port else None

    @property
    def pid(self) -> int | None:
        """The Locust process (its group leader), for the undo ledger."""
        return None if self._proc is None else self._proc.pid

    @property
    def returncode(self) -> int | None:
        return None if self._proc is None else self._proc.returncode

    async def wait(self) -> int:
        """Wait for Locust to exit; LoadProcessError (with its log tail) if it failed."""
        assert self._proc is not None, "start() first"
        code = await self._proc.wait()
        self._raise_if_failed()
        return code

    def _raise_if_failed(self) -> None:
        code = self.returncode
        if code not in (None, 0) and not self._stopping:
            raise LoadProcessError(
                f"locust exited with code {code}; its log ends:\n{tail(self.log_path, LOG_TAIL_LINES)}"
            )

    async def stop(self, grace: float | None = None) -> None:
        """SIGTERM Locust (it flushes its last windows), then SIGKILL the whole group."""
        proc = self._proc
        if proc is None:
            self._remove_secret_config()
            return
        if grace is None:
            grace = self.config.graceful_stop + 15
        self._stopping = True
        try:
            if proc.returncode is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    await asyncio.wait_for(proc.wait(), grace)
                except (TimeoutError, ProcessLookupError):
                    pass
        finally:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            await proc.wait()
            self._remove_secret_config()

    def _remove_secret_config(self) -> None:
        if self._secret_config is not None:
            self._secret_config.unlink(missing_ok=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    # --- measurements ----------------------------------------------------------------

    async def windows(self) -> AsyncIterator[Window]:
        """Partial window records as the child writes them, until it exits.

        Records for the same index add up (Window.merge); see merge_into().
        """
        assert self._proc is not None, "start() first"
        pending = b""
        with self.stream_path.open("rb") as stream:
            while True:
                exited = self._proc.returncode is not None
                chunk = stream.read()
                if chunk:
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for line in lines:
                        if line.strip():
                            yield Window.from_record(json.loads(line))
                    continue
                if exited:
                    break
                await asyncio.sleep(POLL_S)
        self._raise_if_failed()


def merge_into(windows: dict[int, Window], record: Window) -> Window:
    """Add a partial record to the window with its index; returns the merged window."""
    current = windows.get(record.index)
    if current is None:
        windows[record.index] = record
        return record
    current.merge(record)
    return current
