"""``python -m harness.demo all``: the feature store and the model server together.

Both run as child processes in their own process groups (so a fault can pause
or kill exactly one); the launcher prints their URLs and stops both on
Ctrl-C/SIGTERM, or when either dies.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import httpx

from harness.demo.config import MODES


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def default_state_dir() -> Path:
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "aftershock" / "demo"


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="aftershock demo",
        description="Start the demo feature store and model server; Ctrl-C stops both. "
        "Flags not listed here are passed to the model server (see `python -m harness.demo "
        "serve --help`).",
    )
    p.add_argument("--mode", choices=MODES, default="resilient")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080, help="model server port (default 8080)")
    p.add_argument("--feature-store-port", type=int, default=0, help="default: any free port")
    p.add_argument(
        "--state-dir", type=Path, default=None, help=f"model cache (default {default_state_dir()})"
    )
    p.add_argument("--seed", type=int, default=0, help="world seed of the synthetic data")
    p.add_argument("--ready-timeout", type=float, default=120.0)
    return p


def stop(children: list[subprocess.Popen[bytes]], grace: float = 5.0) -> None:
    """SIGTERM each child's process group, then SIGKILL what is left after ``grace``."""
    for child in children:
        if child.poll() is None:
            try:
                os.killpg(child.pid, signal.SIGCONT)  # a paused child cannot act on SIGTERM
                os.killpg(child.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + grace
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()


def wait_ready(url: str, child: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if child.poll() is not None:
            raise RuntimeError(f"{url}: the process exited with code {child.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} was not ready within {timeout:.0f}s")


class Interrupted(Exception):
    pass


def supervise(commands: list[tuple[list[str], str]], banner: Callable[[list[int]], str], ready_timeout: float
              ) -> int:
    """Start each (argv, ready URL) in turn, each in its own process group, waiting until
    its URL answers 200; print ``banner(pids)``; stop them all on Ctrl-C/SIGTERM or when
    one dies."""
    children: list[subprocess.Popen[bytes]] = []

    def interrupt(signum: int, frame: FrameType | None) -> None:
        raise Interrupted

    previous = {s: signal.signal(s, interrupt) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        for argv, ready_url in commands:
            children.append(subprocess.Popen(argv, start_new_session=True))
            wait_ready(ready_url, children[-1], ready_timeout)
        print(banner([c.pid for c in children]), flush=True)
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
        dead = next(c for c in children if c.poll() is not None)
        print(
            f"a demo process (pid {dead.pid}) exited with code {dead.returncode}; stopping",
            file=sys.stderr,
        )
        return 1
    except Interrupted:
        return 0
    except RuntimeError as exc:
        print(f"aftershock demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop(children)


def main(argv: list[str] | None = None) -> int:
    args, server_flags = parser().parse_known_args(argv)
    state_dir = args.state_dir or default_state_dir()
    fs_port = args.feature_store_port or free_port(args.host)
    fs_url = f"http://{args.host}:{fs_port}"
    server_url = f"http://{args.host}:{args.port}"
    python = [sys.executable, "-m", "harness.demo"]
    store = [*python, "feature-store", "--host", args.host, "--port", str(fs_port), "--seed", str(args.seed)]
    server = [*python, "serve", "--host", args.host, "--port", str(args.port), "--feature-store", fs_url,
              "--mode", args.mode, "--state-dir", str(state_dir), "--seed", str(args.seed), *server_flags]

    def banner(pids: list[int]) -> str:
        return (
            f"aftershock demo ({args.mode}) is up:\n"
            f"  feature store   {fs_url}   (pid {pids[0]})\n"
            f"  model server    {server_url}   (pid {pids[1]})\n"
            f"  OIP v2 infer    {server_url}/v2/models/fraud/infer\n"
            f"  KServe v1       {server_url}/v1/models/fraud:predict\n"
            f"  metrics         {server_url}/metrics\n"
            f"Press Ctrl-C to stop."
        )

    return supervise([(store, f"{fs_url}/health"), (server, f"{server_url}/v2/health/ready")], banner,
                     args.ready_timeout)
