"""The flagship's latency story, measured side by side in one run.

    python benchmarks/flagship_latency.py [--quick] [--rounds N]

Each round runs three scenarios with the real CLI, one after the other:

* direct: the flagship's target and load with no fault and the demo's feature cache
  set to an hour, after a 15 s warm-up that fills it, so no request calls the store.
  Its p95 is the demo's **direct model latency** under the flagship's own load: the
  model server's cost (HTTP, guards, torch) and the load's queueing, without the store.
* the flagship (resilient) and its fragile twin: baseline p95 and p95 during the fault.

It prints every figure and the ratio baseline p95 / direct p95 (the flagship's goal:
at most 3). Figures on a shared machine are noisy: compare within a round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feature-store-latency.yaml"
FRAGILE = ROOT / "scenarios" / "feature-store-latency-fragile.yaml"


def direct_scenario(folder: Path) -> Path:
    spec = yaml.safe_load(FLAGSHIP.read_text(encoding="utf-8"))
    spec["name"] = "flagship-direct"
    spec["target"]["args"] = [*spec["target"].get("args", []), "--cache-ttl", "3600"]
    spec["load"]["warmup"] = "15s"  # every entity of the dataset asked for at least once
    spec["timeline"] = {"baseline": spec["timeline"]["baseline"], "faults": []}
    spec["slos"] = [{"name": "no fallback", "expect": "fallback_rate == 0"}]
    spec.pop("stop_when", None)
    path = folder / "flagship-direct.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")
    return path


def run(scenario: Path, out: Path, quick: bool) -> dict:
    argv = [sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(out)]
    subprocess.run(argv + (["--quick"] if quick else []), check=False, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=900)
    name = yaml.safe_load(scenario.read_text(encoding="utf-8"))["name"]
    latest = max((out / name).glob("*/result.json"))
    return json.loads(latest.read_text(encoding="utf-8"))


def p95(result: dict, scope: str) -> float | None:
    return result["slis"].get(scope, {}).get("p95(latency)")


def ms(value: float | None) -> str:
    return "not measured" if value is None else f"{value:.1f}"


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--quick", action="store_true", help="run each scenario with --quick")
    args.add_argument("--rounds", type=int, default=1)
    opts = args.parse_args()
    with tempfile.TemporaryDirectory(prefix="flagship-bench-") as tmp:
        out = Path(tmp)
        direct_path = direct_scenario(out)
        print("round  direct p95  resilient base/fault p95  fragile base/fault p95  base/direct")
        for i in range(opts.rounds):
            direct = run(direct_path, out, opts.quick)
            resilient = run(FLAGSHIP, out, opts.quick)
            fragile = run(FRAGILE, out, opts.quick)
            d = p95(direct, "run")
            fallback = direct["slis"]["run"].get("fallback_rate")
            rb, rf = p95(resilient, "baseline"), p95(resilient, "fault")
            fb, ff = p95(fragile, "baseline"), p95(fragile, "fault")
            ratio = f"{rb / d:.2f} / {fb / d:.2f}" if d and rb and fb else "not measured"
            print(f"{i + 1:5}  {ms(d)} ms  {ms(rb)} / {ms(rf)} ms  {ms(fb)} / {ms(ff)} ms"
                  f"  {ratio}   (direct fallback share {fallback})")


if __name__ == "__main__":
    main()
