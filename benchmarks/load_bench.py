"""How many requests/s aftershock's load engine drives, against bare Locust, in one run.

Against one fast local endpoint (harness.load.reference_server, fast mode, own process):
  bare      `python -m locust -f bench_user.py` — the user class alone
  harness   the same user class through LoadProcess (plugin attached: every request
            windowed into HDR histograms and streamed to the runner)
  model     aftershock's own ModelUser (dataset batches through the oip-v2 adapter)
each with processes: 1 and 2. Throughput = requests the server answered / run time.
Rounds alternate bare/harness so drift in machine load hits both alike.

    python benchmarks/load_bench.py [--seconds 8] [--users 20] [--rounds 2] [--processes 1,2]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.load import LoadConfig, LoadProcess, merge_into
from harness.load.process import child_env
from harness.load.reference_server import ReferenceServerProcess

BENCH_USER = """
from locust import task, constant
from locust.contrib.fasthttp import FastHttpUser

BODY = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'
HEADERS = {"Content-Type": "application/json"}

class BenchUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def infer(self):
        self.client.post("/v2/models/m/infer", data=BODY, headers=HEADERS)
"""


def bare(locustfile: Path, users: int, seconds: int, processes: int) -> float:
    with ReferenceServerProcess(fast=True) as srv:
        cmd = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(locustfile),
            "--headless",
            "--only-summary",
        ]
        cmd += ["-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--host", srv.url]
        cmd += ["--stop-timeout", "5", "--exit-code-on-error", "0"]
        if processes > 1:
            cmd += ["--processes", str(processes)]
        subprocess.run(
            cmd,
            env=child_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=seconds + 60,
        )
    return srv.requests / seconds


def harness(cfg_kw: dict, users: int, seconds: int, processes: int) -> tuple[float, int]:
    async def drive(lp: LoadProcess, merged: dict) -> None:
        try:
            await lp.start()
            async for w in lp.windows():
                merge_into(merged, w)
        finally:
            await lp.stop()

    with ReferenceServerProcess(fast=True) as srv, tempfile.TemporaryDirectory() as tmp:
        cfg = LoadConfig(
            target_url=srv.url, users=users, duration=seconds, processes=processes, **cfg_kw
        )
        merged: dict = {}
        asyncio.run(asyncio.wait_for(drive(LoadProcess(cfg, workdir=tmp), merged), seconds + 90))
    measured = sum(w.requests for w in merged.values())
    return srv.requests / seconds, measured - srv.requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", default="1,2", help="process counts to compare, e.g. 1,2,4")
    args = ap.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "bench_user.py"
        locustfile.write_text(BENCH_USER)
        dataset = Path(tmp) / "bench.npz"
        np.savez(dataset, x=np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32))
        byo = {"locustfile": str(locustfile)}
        model = {"dataset": str(dataset), "model": "m"}
        rows: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            for processes in counts:
                rows.setdefault(f"bare p={processes}", []).append(
                    bare(locustfile, args.users, args.seconds, processes)
                )
                rps, diff = harness(byo, args.users, args.seconds, processes)
                assert diff == 0, f"windows counted {diff:+d} requests against the server's count"
                rows.setdefault(f"harness p={processes}", []).append(rps)
                rps, diff = harness(model, args.users, args.seconds, processes)
                rows.setdefault(f"model p={processes}", []).append(rps)
    med = {k: statistics.median(v) for k, v in rows.items()}
    print(
        f"# load_bench: {os.cpu_count()} CPUs, {platform.python_version()}, users={args.users}, "
        f"{args.seconds}s x {args.rounds} rounds (median req/s)"
    )
    for k, v in rows.items():
        print(f"{k:<14} {med[k]:8.0f} req/s   runs: {', '.join(f'{x:.0f}' for x in v)}")
    for p in counts:
        print(f"harness/bare   p={p}: {med[f'harness p={p}'] / med[f'bare p={p}']:.3f}")
        print(f"model/bare     p={p}: {med[f'model p={p}'] / med[f'bare p={p}']:.3f}")
    for p in counts[1:]:
        gains = {k: med[f"{k} p={p}"] / med[f"{k} p={counts[0]}"] for k in ("harness", "bare", "model")}
        print(f"gain from processes: {p}  " + ", ".join(f"{k} {g:.2f}x" for k, g in gains.items()))


if __name__ == "__main__":
    main()
