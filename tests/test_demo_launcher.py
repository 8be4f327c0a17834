"""``python -m harness.demo all``: both processes up, URLs printed, both stopped on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from harness.demo.data import sample
from harness.demo.launcher import free_port
from harness.demo.model import train_models
from harness.demo.model_cache import save_models


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_all_starts_prints_urls_and_stops_on_sigterm(tmp_path: Path) -> None:
    save_models(tmp_path, train_models(sample(6000, 0, 0), steps=250))
    port = free_port()
    launcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness.demo",
            "all",
            "--port",
            str(port),
            "--state-dir",
            str(tmp_path),
            "--breaker-failures",
            "2",
        ],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    pids: list[int] = []
    try:
        assert launcher.stdout is not None
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = launcher.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C" in line:
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/v2/models/fraud/infer" in out, out
        pids = [int(p) for p in re.findall(r"pid (\d+)", out)]
        assert len(pids) == 2 and all(alive(p) for p in pids)
        body = {
            "inputs": [
                {
                    "name": "features",
                    "shape": [1, 6],
                    "datatype": "FP32",
                    "data": [50, 3, 5, 0.5, 1, 1],
                },
                {"name": "entity_id", "shape": [1], "datatype": "INT64", "data": [3]},
            ]
        }
        response = httpx.post(f"http://127.0.0.1:{port}/v2/models/fraud/infer", json=body)
        assert response.json()["parameters"]["fallback"] is False
        status = httpx.get(f"http://127.0.0.1:{port}/status").json()
        assert status["config"]["mode"] == "resilient"
        assert status["config"]["breaker_failures"] == 2  # unknown flags reach the server

        launcher.send_signal(signal.SIGTERM)
        assert launcher.wait(timeout=20) == 0
        assert not any(alive(p) for p in pids)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
