"""Tokens/s aftershock's streaming load (ChatUser) sustains against bare Locust, in one run.

Against one fast scripted stream (tests/stream_server.py in its own process: `--tokens`
content events per answer, no waits), with the same number of users:
  bare      `python -m locust -f benchmarks/stream_bare_user.py`: reads each line, parses
            each event's JSON, counts content deltas (what any token-counting client does)
  harness   LoadProcess with protocol openai-chat: ChatUser times every event (TTFT, ITL),
            the plugin windows every answer into HDR histograms and streams them out
Tokens/s = tokens the client read / how long requests kept arriving (first to last, on
the server's clock). CPU per token = the Locust process's CPU seconds (getrusage of
reaped children) / tokens: on 2 shared cores the server and Locust compete, and the
CPU a token costs the client is what limits a CPU-bound Locust. Rounds alternate which
side goes first; the report gives medians and the harness/bare ratios.

    python benchmarks/stream_bench.py [--seconds 6] [--users 4] [--tokens 200] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.engine.load import LoadConfig, LoadProcess, merge_into
from harness.engine.load.process import child_env
from tests.stream_server import StreamScript

BARE_USER = ROOT / "benchmarks" / "stream_bare_user.py"


@dataclass
class Measured:
    tokens_per_s: float
    cpu_us_per_token: float


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def arrivals(url: str, since: int) -> tuple[list[float], int]:
    with urllib.request.urlopen(url + "/record", timeout=30) as resp:
        record = json.loads(resp.read())
    return [r["arrived"] for r in record[since:]], len(record)


def measure(url: str, since: int, tokens: int, cpu: float) -> tuple[Measured, int]:
    times, seen = arrivals(url, since)
    span = max(times) - min(times)
    return Measured(tokens / span, cpu / tokens * 1e6), seen


def bare(url: str, users: int, seconds: int, since: int) -> tuple[Measured, int]:
    with tempfile.TemporaryDirectory() as out:
        cpu = children_cpu()
        cmd = [sys.executable, "-m", "locust", "-f", str(BARE_USER), "--headless", "--only-summary",
               "-u", str(users), "-r", str(users), "--run-time", f"{seconds}s", "--host", url,
               "--stop-timeout", "5", "--exit-code-on-error", "0"]
        subprocess.run(cmd, env=child_env({"AFTERSHOCK_BENCH_TOKENS": out}), stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, check=True, timeout=seconds + 60, start_new_session=True)
        cpu = children_cpu() - cpu
        tokens = sum(json.loads(f.read_text())["tokens"] for f in Path(out).glob("*.json"))
    return measure(url, since, tokens, cpu)


def harness(url: str, users: int, seconds: int, since: int) -> tuple[Measured, int]:
    merged: dict = {}

    async def drive(lp: LoadProcess) -> None:
        try:
            await lp.start()
            async for w in lp.windows():
                merge_into(merged, w)
        finally:
            await lp.stop()

    with tempfile.TemporaryDirectory() as tmp:
        cfg = LoadConfig(target_url=url, protocol="openai-chat", model="scripted", users=users, duration=seconds,
                         prompts=None, request_timeout=10.0)
        cpu = children_cpu()
        asyncio.run(asyncio.wait_for(drive(LoadProcess(cfg, workdir=tmp)), seconds + 90))
        cpu = children_cpu() - cpu
    tokens = sum(round(w.generation["output_tokens"].total) for w in merged.values() if "output_tokens" in w.generation)
    return measure(url, since, tokens, cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "script.json"
        script.write_text(StreamScript(tokens=args.tokens, ttft_ms=[0.0], itl_ms=[0.0]).model_dump_json())
        server = subprocess.Popen([sys.executable, "-m", "tests.stream_server", str(script)], cwd=ROOT,
                                  stdout=subprocess.PIPE, text=True)
        try:
            assert server.stdout is not None
            url = server.stdout.readline().strip()
            seen = 0
            rows: dict[str, list[Measured]] = {"bare": [], "harness": []}
            for r in range(args.rounds):
                for side in ("bare", "harness") if r % 2 == 0 else ("harness", "bare"):
                    run = bare if side == "bare" else harness
                    m, seen = run(url, args.users, args.seconds, seen)
                    rows[side].append(m)
                    print(f"round {r + 1} {side:8s} {m.tokens_per_s:9.0f} tokens/s  {m.cpu_us_per_token:6.1f} µs CPU/token",
                          flush=True)
        finally:
            server.kill()
            server.wait(10)
    report(rows, args)


def report(rows: dict[str, list[Measured]], args: argparse.Namespace) -> None:
    def med(side: str, attr: str) -> float:
        return statistics.median(getattr(m, attr) for m in rows[side])

    print(f"\n{platform.machine()} {platform.python_version()}; {args.users} users, {args.tokens} tokens an answer, "
          f"{args.seconds} s a run, {args.rounds} rounds (medians)")
    for side in ("bare", "harness"):
        print(f"  {side:8s} {med(side, 'tokens_per_s'):9.0f} tokens/s  {med(side, 'cpu_us_per_token'):6.1f} µs CPU/token")
    print(f"  harness/bare: tokens/s {med('harness', 'tokens_per_s') / med('bare', 'tokens_per_s'):.3f}, "
          f"CPU per token {med('harness', 'cpu_us_per_token') / med('bare', 'cpu_us_per_token'):.3f} (ratio of medians)")
    for attr in ("tokens_per_s", "cpu_us_per_token"):
        pairs = sorted(getattr(h, attr) / getattr(b, attr) for h, b in zip(rows["harness"], rows["bare"]))
        print(f"  harness/bare {attr} of each round's back-to-back pair: median {statistics.median(pairs):.3f}, "
              f"range {pairs[0]:.3f}..{pairs[-1]:.3f}")
    print(f"  load average at the end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
