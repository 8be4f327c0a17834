"""How a scenario puts a model version out on its target: a deploy hook.

Three kinds, one of which a hook names: an HTTP admin call (`http: {url, method, body}`),
a command (`command: [argv...]`), or a file dropped in a model directory (`file: {dir,
name, content}`), for servers that watch a folder. Placeholders in every string:
`{target}` (the target's base URL), `{version}`, `{previous}`, `{share}` (a fraction),
`{artifact}` and `{degrade}` (JSON); a string that is one placeholder and nothing else
becomes the typed value in a JSON body (`"{share}"` -> 0.2, `"{degrade}"` -> an object).

A hook resolves to a `HookCall`: plain JSON facts with every placeholder filled, so the
ledger can keep the rollback and `aftershock cleanup` can replay it after a crash.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.core.fault import FaultFailed, UserError
from harness.core.safety import check_host_allowed

_PLACEHOLDER = re.compile(r"\{(target|version|previous|share|artifact|degrade)\}")
DEFAULT_BODY = {"version": "{version}", "share": "{share}", "degrade": "{degrade}", "artifact": "{artifact}"}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HttpCall(_Strict):
    url: str = Field(description="e.g. {target}/admin/deploy")
    method: str = Field("POST", pattern=r"^(GET|POST|PUT|PATCH|DELETE)$")
    body: Any = Field(None, description="JSON body; default: version, share, degrade, artifact")
    timeout: float = Field(10.0, gt=0, description="seconds")


class FileDrop(_Strict):
    dir: str = Field(description="the model directory the server watches (relative: to the run folder)")
    name: str = Field("{version}.json", description="the file's name")
    content: Any = Field(None, description="JSON written into it; default: version, share, degrade, artifact")


class DeployHook(_Strict):
    """One of: an HTTP admin call, a command (argv), a file dropped in a model directory."""

    http: HttpCall | None = None
    command: list[str] | None = Field(None, min_length=1)
    file: FileDrop | None = None
    timeout: float = Field(30.0, gt=0, description="seconds a command may take")

    @model_validator(mode="after")
    def _exactly_one(self) -> DeployHook:
        given = [k for k in ("http", "command", "file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "a deploy hook is exactly one of `http: {url: ...}`, `command: [argv...]` or "
                f"`file: {{dir: ...}}`; got {' and '.join(given) or 'none'}"
            )
        return self


def fill(value: Any, values: dict[str, Any]) -> Any:
    """`value` with placeholders filled; a string that is one placeholder takes its typed value."""
    if isinstance(value, dict):
        return {k: fill(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    if not isinstance(value, str):
        return value
    whole = _PLACEHOLDER.fullmatch(value)
    if whole:
        return values.get(whole.group(1))

    def text(m: re.Match[str]) -> str:
        v = values.get(m.group(1))
        return "" if v is None else v if isinstance(v, str) else json.dumps(v)

    return _PLACEHOLDER.sub(text, value)


def resolve(hook: DeployHook, values: dict[str, Any], run_dir: Path | None) -> dict[str, Any]:
    """The hook as a HookCall: JSON facts with every placeholder filled."""
    if hook.http is not None:
        body = DEFAULT_BODY if hook.http.body is None else hook.http.body
        return {"kind": "http", "method": hook.http.method, "url": fill(hook.http.url, values),
                "body": fill(body, values), "timeout": hook.http.timeout}
    if hook.command is not None:
        return {"kind": "command", "argv": [str(fill(a, values)) for a in hook.command],
                "cwd": str(run_dir) if run_dir else None, "timeout": hook.timeout}
    assert hook.file is not None
    folder = Path(str(fill(hook.file.dir, values)))
    if not folder.is_absolute() and run_dir is not None:
        folder = run_dir / folder
    content = DEFAULT_BODY if hook.file.content is None else hook.file.content
    return {"kind": "file", "path": str(folder / str(fill(hook.file.name, values))),
            "content": fill(content, values)}


def call(hook_call: dict[str, Any], allowed_hosts: tuple[str, ...] = ()) -> str:
    """Run a resolved hook; FaultFailed if it did not act. Returns what it did, for the journal."""
    kind = hook_call["kind"]
    if kind == "http":
        url = check_host_allowed(hook_call["url"], allowed_hosts, "deploy hook url")
        try:
            r = httpx.request(hook_call["method"], url, json=hook_call["body"], timeout=hook_call["timeout"])
        except httpx.HTTPError as exc:
            raise FaultFailed(f"deploy hook {hook_call['method']} {url}: {type(exc).__name__}: {exc}") from exc
        if not r.is_success:
            raise FaultFailed(f"deploy hook {hook_call['method']} {url} answered {r.status_code}: {r.text[:300]}")
        return f"{hook_call['method']} {url} -> {r.status_code}"
    if kind == "command":
        argv = hook_call["argv"]
        try:
            done = subprocess.run(argv, cwd=hook_call.get("cwd"), capture_output=True, text=True,
                                  timeout=hook_call["timeout"], check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise FaultFailed(f"deploy hook command {argv[0]!r}: {exc}") from exc
        if done.returncode != 0:
            raise FaultFailed(f"deploy hook command {' '.join(argv)} exited {done.returncode}: "
                              f"{(done.stderr or done.stdout).strip()[-300:]}")
        return f"{' '.join(argv)} -> exit 0"
    if kind == "file":
        return drop_file(Path(hook_call["path"]), hook_call["content"])
    if kind == "restore":
        return restore_file(Path(hook_call["path"]), hook_call.get("previous"))
    raise UserError(f"unknown deploy hook kind {kind!r}")


def drop_file(path: Path, content: Any) -> str:
    """Write `content` as JSON to `path` in one step (write, then rename): a server watching
    the folder never reads half a file."""
    if not path.parent.is_dir():
        raise FaultFailed(f"deploy hook file: model directory {path.parent} does not exist")
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(content, indent=1))
    os.replace(tmp, path)
    return f"wrote {path}"


def restore_file(path: Path, previous: str | None) -> str:
    """Undo a dropped file: its earlier content back, or no file where there was none."""
    if previous is None:
        path.unlink(missing_ok=True)
        return f"removed {path}"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(previous)
    os.replace(tmp, path)
    return f"restored {path}"
