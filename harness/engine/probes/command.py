"""Command probe: run a command (no shell) and take a number from its stdout, or its exit code.

The command runs in its own process group; on timeout the whole group is killed, so a
probe script that starts children leaves nothing behind.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from typing import Literal

from pydantic import Field, field_validator

from harness.core.probe import Probe, ProbeConfig

_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


class CommandProbeConfig(ProbeConfig):
    type: Literal["command"] = "command"
    command: list[str]  # argv; a string is split like a shell would (no shell runs it)
    measure: Literal["stdout", "exit_code"] = "stdout"
    pattern: str | None = None  # regex; group 1 (or the match) is the number. Default: last number
    cwd: str | None = None
    env: dict[str, str] = Field(default_factory=dict)  # added to the harness's environment

    @field_validator("command", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            v = shlex.split(v)
        if isinstance(v, list) and not v:
            raise ValueError("command must not be empty")
        return v

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as e:
                raise ValueError(f"invalid pattern {v!r}: {e}") from None
        return v


class CommandProbe(Probe):
    type = "command"
    Config = CommandProbeConfig
    config: CommandProbeConfig

    def read(self) -> float:
        c = self.config
        proc = subprocess.Popen(
            c.command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            cwd=c.cwd,
            env={**os.environ, **c.env} if c.env else None,
            start_new_session=True,
            text=True,
        )
        try:
            out, err = proc.communicate(timeout=c.timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(
                f"{shlex.join(c.command)} did not finish within {c.timeout:g} s"
            ) from None
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        if c.measure == "exit_code":
            return float(proc.returncode)
        if proc.returncode != 0:
            raise RuntimeError(f"exit code {proc.returncode}: {err.strip()[-300:]}")
        if c.pattern:
            m = re.search(c.pattern, out)
            if not m:
                raise LookupError(f"pattern {c.pattern!r} not found in the output")
            return float(m.group(1) if m.groups() else m.group(0))
        numbers = _NUMBER.findall(out)
        if not numbers:
            raise LookupError(f"no number in the output: {out.strip()[-200:]!r}")
        return float(numbers[-1])
