"""How many requests/s aftershock's load engine drives, against bare Locust, in one run.

Against one fast local endpoint (harness.engine.load.reference_server, fast mode, own process):
  bare      `python -m locust -f bench_user.py` — the user class alone
  harness   the same user class through LoadProcess (plugin attached: every request
            windowed into HDR histograms and streamed to the runner)
  model     aftershock's own ModelUser (dataset batches through the oip-v2 adapter)
each with every process count asked for (default 1 and 2). Throughput = requests the
server answered / the time requests kept arriving (first to last, on the server's clock): bare Locust's --run-time
timer fires early by its import time, so dividing by the nominal run time would favour
whichever side imports less. Rounds are interleaved (every process count in every
round, bare and harness back to back, in alternating order) so drift in machine load
hits both alike; the report gives medians, ranges, and the harness/bare ratio of the
medians and of each round's back-to-back pair.

The user class also meters itself (the same for bare and harness): CPU seconds each
Locust process spent between test start and stop, over the requests it sent. On a
machine whose cores are shared (the server, every Locust process and the runner on
2 cores), req/s swings by tens of percent between runs; CPU per request does not, and
it is what limits a CPU-bound Locust's req/s.

    python benchmarks/load_bench.py [--seconds 8] [--users 20] [--rounds 2] [--processes 1,2,4]
                                    [--no-model]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.engine.load import LoadConfig, LoadProcess, merge_into
from harness.engine.load.process import child_env
from harness.engine.load.reference_server import ReferenceServerProcess

BENCH_USER = """
import json, os, time
from locust import events, task, constant
from locust.contrib.fasthttp import FastHttpUser

BODY = b'{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":[0.1,0.2,0.3,0.4]}]}'
HEADERS = {"Content-Type": "application/json"}

class BenchUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def infer(self):
        self.client.post("/v2/models/m/infer", data=BODY, headers=HEADERS)

METER = {"requests": 0}

@events.request.add_listener
def _count(**_):
    METER["requests"] += 1

@events.test_start.add_listener
def _start(**_):
    METER.update(requests=0, cpu=time.process_time())

@events.test_stop.add_listener
def _stop(**_):
    out = os.environ.get("AFTERSHOCK_BENCH_METER")
    if out and "cpu" in METER:
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
            json.dump({"cpu": time.process_time() - METER["cpu"], "requests": METER["requests"]}, f)
"""
METER_ENV = "AFTERSHOCK_BENCH_METER"  # where BENCH_USER writes its per-process meter


@dataclass
class Measured:
    rps: float  # requests the server answered / how long they kept arriving
    load_s: float  # how long requests kept arriving
    cpu_us: float | None  # Locust CPU per request (all its processes), where metered


def cpu_per_request(meter_dir: Path) -> float | None:
    """Locust CPU microseconds per request, summed over every process that metered."""
    parts = [json.loads(f.read_text()) for f in meter_dir.glob("*.json")]
    requests = sum(p["requests"] for p in parts)
    return sum(p["cpu"] for p in parts) / requests * 1e6 if requests else None


def bare(locustfile: Path, users: int, seconds: int, processes: int) -> Measured:
    with ReferenceServerProcess(fast=True) as srv, tempfile.TemporaryDirectory() as meter:
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
            env=child_env({METER_ENV: meter}),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=True,
            timeout=seconds + 60,
            start_new_session=True,  # as LoadProcess starts the harness's: the same scheduling
        )
        cpu = cpu_per_request(Path(meter))
    return Measured(srv.requests / srv.load_seconds, srv.load_seconds, cpu)


def harness(cfg_kw: dict, users: int, seconds: int, processes: int) -> tuple[Measured, int]:
    """The run's figures and (windows' request count - server's): must be 0."""

    async def drive(lp: LoadProcess, merged: dict) -> None:
        try:
            await lp.start()
            async for w in lp.windows():
                merge_into(merged, w)
        finally:
            await lp.stop()

    with (
        ReferenceServerProcess(fast=True) as srv,
        tempfile.TemporaryDirectory() as tmp,
        tempfile.TemporaryDirectory() as meter,
    ):
        cfg = LoadConfig(
            target_url=srv.url, users=users, duration=seconds, processes=processes, **cfg_kw
        )
        merged: dict = {}
        os.environ[METER_ENV] = meter  # the Locust child inherits it
        try:
            run = drive(LoadProcess(cfg, workdir=tmp), merged)
            asyncio.run(asyncio.wait_for(run, seconds + 90))
        finally:
            del os.environ[METER_ENV]
        cpu = cpu_per_request(Path(meter))
    measured = sum(w.requests for w in merged.values())
    return Measured(srv.requests / srv.load_seconds, srv.load_seconds, cpu), measured - srv.requests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=8)
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", default="1,2", help="process counts to compare, e.g. 1,2,4")
    ap.add_argument("--no-model", action="store_true", help="skip the ModelUser rows")
    args = ap.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    rows: dict[str, list[Measured]] = {}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "bench_user.py"
        locustfile.write_text(BENCH_USER)
        dataset = Path(tmp) / "bench.npz"
        np.savez(dataset, x=np.array([[0.1, 0.2, 0.3, 0.4]], dtype=np.float32))
        byo = {"locustfile": str(locustfile)}
        model = {"dataset": str(dataset), "model": "m"}
        for r in range(args.rounds):
            for p in counts:
                for side in ("bare", "harness") if r % 2 == 0 else ("harness", "bare"):
                    if side == "bare":
                        run = bare(locustfile, args.users, args.seconds, p)
                    else:
                        run, diff = harness(byo, args.users, args.seconds, p)
                        assert diff == 0, f"windows counted {diff:+d} requests against the server's"
                    rows.setdefault(f"{side} p={p}", []).append(run)
                if not args.no_model:
                    rows.setdefault(f"model p={p}", []).append(
                        harness(model, args.users, args.seconds, p)[0]
                    )
    report(rows, counts, args, (load_before, os.getloadavg()))


def report(
    rows: dict[str, list[Measured]],
    counts: list[int],
    args: argparse.Namespace,
    loads: tuple[tuple[float, ...], tuple[float, ...]],
) -> None:
    def values(row: str, attr: str) -> list[float]:
        return [getattr(m, attr) for m in rows.get(row, []) if getattr(m, attr) is not None]

    def med(row: str, attr: str = "rps") -> float:
        v = values(row, attr)
        return statistics.median(v) if v else float("nan")

    def paired(p: int, attr: str) -> list[float]:
        """harness/bare of each round (the two ran back to back)."""
        pairs = zip(rows[f"harness p={p}"], rows[f"bare p={p}"])
        return [getattr(h, attr) / getattr(b, attr) for h, b in pairs if getattr(b, attr)]

    cores = os.cpu_count() or 0
    print(
        f"# load_bench: {cores} CPUs, {platform.python_version()}, users={args.users}, "
        f"{args.seconds}s x {args.rounds} rounds, rounds interleaved (medians, ranges); "
        f"load average before {loads[0][0]:.1f}, after {loads[1][0]:.1f}"
    )
    for row in rows:
        rps = values(row, "rps")
        cpu = values(row, "cpu_us")
        print(
            f"{row:<12} {med(row):7.0f} req/s  ({min(rps):.0f}-{max(rps):.0f})"
            f"  load lasted {med(row, 'load_s'):.2f} s"
            + (
                f"  Locust CPU {med(row, 'cpu_us'):.0f} us/request ({min(cpu):.0f}-{max(cpu):.0f})"
                if cpu
                else ""
            )
        )
    for p in counts:
        over = "  (more processes than cores: oversubscribed)" if p >= cores else ""
        rps_r, cpu_r = paired(p, "rps"), paired(p, "cpu_us")
        print(
            f"harness/bare p={p}: req/s {med(f'harness p={p}') / med(f'bare p={p}'):.3f}"
            f" (per round {min(rps_r):.2f}-{max(rps_r):.2f}),"
            f" CPU per request {med(f'harness p={p}', 'cpu_us') / med(f'bare p={p}', 'cpu_us'):.3f}"
            f" (per round {min(cpu_r):.2f}-{max(cpu_r):.2f})"
            + (
                ""
                if args.no_model
                else f"  model/bare req/s {med(f'model p={p}') / med(f'bare p={p}'):.3f}"
            )
            + over
        )
    for p in counts[1:]:
        kinds = ("harness", "bare") if args.no_model else ("harness", "bare", "model")
        gains = {k: med(f"{k} p={p}") / med(f"{k} p={counts[0]}") for k in kinds}
        print(f"gain from processes: {p}  " + ", ".join(f"{k} {g:.2f}x" for k, g in gains.items()))


if __name__ == "__main__":
    main()
