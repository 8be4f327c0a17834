"""Cost of one `stop_when` tick as a run grows, incremental against judging from scratch.

    python benchmarks/stop_when_bench.py [--sizes 10,100,300,1200,7200] [--ticks 20]

For each run length N (windows of 1 s, 50 requests each with lognormal latencies, the
first 10 s the baseline), and each condition:

- incremental: a `StopTrigger` that has judged the first N windows is fed one more window
  per tick, as the runner does; the median over `--ticks` ticks;
- from scratch: `check_stop()` over all N + 1 windows, which is what every tick did before
  (a whole series and a p95 per window, every tick); one call (the median of 3 below 1200).

Prints both in ms, the incremental tick at N against the one at the smallest N (flat: about
1), and from scratch / incremental.  Goal (issue 15): the tick cost flat from 10 to 7200
windows.  Memory: each window holds an HDR histogram of ~190 KB, so 7200 take ~1.4 GB.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import StopTrigger, check_stop, parse_stop

T0 = 1_700_000_000
CONDITIONS = [
    "error_rate > 50% for 5s",
    "p95(latency) > 250ms for 5s",
    "p95(latency) > 3 * p95(latency) during baseline for 5s",
]


def make_windows(n: int, seed: int = 7) -> list[Window]:
    rng = random.Random(seed)
    out = []
    for k in range(n):
        w = Window(index=T0 + k, size=1.0)
        for _ in range(50):
            w.requests += 1
            if rng.random() < 0.01:
                w.failures["timeout"] = w.failures.get("timeout", 0) + 1
                continue
            us = round(rng.lognormvariate(9.9, 0.4))  # ~20 ms
            w.latency.record_value(us)
            w.latency_sum_us += us
        out.append(w)
    return out


def timeline() -> RunTimeline:
    return RunTimeline(
        run=Span("run", "run", float(T0), None),
        baseline=Span("baseline", "baseline", float(T0), float(T0 + 10)),
    )


def incremental_tick_ms(text: str, windows: list[Window], n: int, ticks: int) -> float:
    trigger = StopTrigger(parse_stop(text))
    tl = timeline()
    assert trigger.feed(windows[:n], tl) is None
    times = []
    for k in range(n, n + ticks):
        t = time.perf_counter()
        assert trigger.feed(windows[k : k + 1], tl) is None
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def from_scratch_ms(text: str, windows: list[Window], n: int) -> float:
    cond, tl = parse_stop(text), timeline()
    times = []
    for _ in range(3 if n < 1200 else 1):
        t = time.perf_counter()
        assert check_stop(cond, windows[: n + 1], tl) is None
        times.append(time.perf_counter() - t)
    return statistics.median(times) * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="10,100,300,1200,7200")
    ap.add_argument("--ticks", type=int, default=20)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    windows = make_windows(max(sizes) + args.ticks)
    print(f"stop_when tick cost; windows of 1 s, 50 requests each; median of {args.ticks} ticks")
    for text in CONDITIONS:
        print(f"\n`{text}`")
        print(
            f"{'windows':>8} {'incremental ms':>15} {'vs first':>9} {'from scratch ms':>16} {'scratch/incr':>13}"
        )
        first = None
        for n in sizes:
            inc = incremental_tick_ms(text, windows, n, args.ticks)
            old = from_scratch_ms(text, windows, n)
            first = first or inc
            print(f"{n:>8} {inc:>15.3f} {inc / first:>9.2f} {old:>16.1f} {old / inc:>13.0f}")


if __name__ == "__main__":
    main()
