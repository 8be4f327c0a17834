"""How often `aftershock compare` cries wolf, and whether it catches a real regression.

Runs the flagship (scenarios/feature-store-latency.yaml) N+1 times unchanged and N
times regressed, interleaved (H0, R1, H1, R2, H2, ...) so that drift in the machine's
load hits both kinds alike, and compares:

  false alarms  (H[i-1], H[i])  two runs of the same scenario and commit: any
                                regression row is a false alarm
  detection     (H[i-1], R[i])  a real regression: compare must exit 1

The regression (`--regression`):
  slow-store  the feature store answers 50 ms later for the whole run: a latency toxic
              is added to its proxy from outside, through the Toxiproxy API of a
              standalone `aftershock proxy`, as soon as the run creates the proxy (so
              the scenario, its timeline and scopes stay exactly the flagship's). Every
              run, healthy or not, goes through that standalone proxy.
  fragile     the fragile twin (scenarios/feature-store-latency-fragile.yaml); every
              run then uses the embedded proxy, as `aftershock run` does by default.

    python benchmarks/compare_bench.py [--pairs 10] [--quick] [--regression slow-store|fragile]

Writes every run under --out (default reports/compare-bench) and a summary.json there.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from faults.proxy.client import ToxiproxyClient, ToxiproxyError
from harness.core.processes import free_port
from harness.workflows.compare import compare, load_result

FLAGSHIP = ROOT / "scenarios/feature-store-latency.yaml"
FRAGILE = ROOT / "scenarios/feature-store-latency-fragile.yaml"
STORE_PROXY_PREFIX = "aftershock-feature-store-"
TOXIC = "bench-store-plus-50ms"


class SlowStore:
    """Adds a 50 ms latency toxic to the run's feature-store proxy as soon as it exists."""

    def __init__(self, client: ToxiproxyClient) -> None:
        self.client = client
        self.stop = threading.Event()
        self.added: list[str] = []
        self.thread = threading.Thread(target=self._watch, daemon=True)

    def _watch(self) -> None:
        while not self.stop.wait(0.02):
            try:
                for name, proxy in self.client.proxies().items():
                    if name.startswith(STORE_PROXY_PREFIX) and not any(t.name == TOXIC for t in proxy.toxics):
                        self.client.add_toxic(name, "latency", name=TOXIC, attributes={"latency": 50, "jitter": 0})
                        self.added.append(name)
            except ToxiproxyError:
                continue  # the proxy went away between list and add: the run ended

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=5)


def start_proxy() -> tuple[subprocess.Popen, str]:
    """A standalone `aftershock proxy` on a free port, answering its API."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proxy = subprocess.Popen([sys.executable, "-m", "harness.cli", "proxy", "--port", str(port)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    client, deadline = ToxiproxyClient(url, timeout=2.0), time.monotonic() + 30
    while not client.running():
        if time.monotonic() > deadline or proxy.poll() is not None:
            proxy.kill()
            raise SystemExit("the standalone proxy did not start")
        time.sleep(0.1)
    return proxy, url


def run(scenario: Path, out: Path, quick: bool, proxy_url: str | None) -> Path | None:
    """One `aftershock run` (through the standalone proxy when given); its run folder
    (None when it left no result.json)."""
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.rglob("result.json"))
    cmd = [sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(out)]
    cmd += ["--toxiproxy-url", proxy_url] if proxy_url else []
    proc = subprocess.run(cmd + (["--quick"] if quick else []), cwd=ROOT, capture_output=True, text=True,
                          timeout=900, check=False)
    new = sorted(set(out.rglob("result.json")) - before)
    print(f"  {scenario.name}: exit {proc.returncode}", flush=True)
    return new[-1].parent if new else None


def regression_rows(base: Path, cur: Path) -> list[str]:
    cmp = compare(load_result(base), load_result(cur))
    return [f"{r.kind}:{r.name}@{r.scope}" for r in cmp.regressions]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=10)
    ap.add_argument("--quick", action="store_true", help="run the scenarios with --quick (x0.25 durations)")
    ap.add_argument("--regression", choices=("slow-store", "fragile"), default="slow-store")
    ap.add_argument("--out", type=Path, default=ROOT / "reports/compare-bench")
    args = ap.parse_args()
    # the slow store needs a proxy the benchmark can reach; the fragile twin runs as users run it
    proxy, proxy_url = (start_proxy() if args.regression == "slow-store" else (None, None))
    try:
        started, load_before = time.monotonic(), os.getloadavg()[0]
        healthy = [run(FLAGSHIP, args.out / "healthy", args.quick, proxy_url)]
        regressed: list[Path | None] = []
        for i in range(1, args.pairs + 1):
            print(f"pair {i}/{args.pairs}", flush=True)
            if args.regression == "fragile":
                regressed.append(run(FRAGILE, args.out / "fragile", args.quick, proxy_url))
            else:
                with SlowStore(ToxiproxyClient(proxy_url, timeout=2.0)) as slow:
                    regressed.append(run(FLAGSHIP, args.out / "slow-store", args.quick, proxy_url))
                if not slow.added:
                    raise SystemExit("the 50 ms toxic was never added: the run created no feature-store proxy")
            healthy.append(run(FLAGSHIP, args.out / "healthy", args.quick, proxy_url))
        pairs = []
        for i in range(1, args.pairs + 1):
            base, same, worse = healthy[i - 1], healthy[i], regressed[i - 1]
            pairs.append({
                "baseline": str(base), "repeat": str(same), "regressed": str(worse),
                "false_alarms": None if base is None or same is None else regression_rows(base, same),
                "detected": None if base is None or worse is None else regression_rows(base, worse),
            })
    finally:
        if proxy is not None:
            proxy.terminate()
            proxy.wait(timeout=10)
    judged_same = [p for p in pairs if p["false_alarms"] is not None]
    judged_worse = [p for p in pairs if p["detected"] is not None]
    summary = {
        "pairs": args.pairs, "quick": args.quick, "regression": args.regression,
        "minutes": round((time.monotonic() - started) / 60, 1),
        "load_average_1min": [round(load_before, 1), round(os.getloadavg()[0], 1)],  # start, end: how busy
        "false_alarm_pairs": sum(bool(p["false_alarms"]) for p in judged_same), "judged_same_pairs": len(judged_same),
        "detected_pairs": sum(bool(p["detected"]) for p in judged_worse), "judged_regressed_pairs": len(judged_worse),
        "detail": pairs,
    }
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    for p in pairs:
        print(f"false alarms: {p['false_alarms']}\n  detected by: {(p['detected'] or [])[:6]}")
    print(f"\n{args.regression}, {'quick' if args.quick else 'full-length'} runs, {summary['minutes']} min, "
          f"load average {summary['load_average_1min'][0]} -> {summary['load_average_1min'][1]}:"
          f"\n  same scenario, same commit: {summary['false_alarm_pairs']}/{len(judged_same)} pairs called a regression"
          f"\n  real regression:            {summary['detected_pairs']}/{len(judged_worse)} pairs called a regression")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
