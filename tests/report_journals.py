"""Journals written the way a run writes them (real Window records with HDR histograms),
for the report, compare and game-day tests. Times are explicit so spans are exact."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from harness.core.windows import Window

T0 = 1_700_000_000.0


ATTACK_VERDICT = {
    "name": "robust under fgsm",
    "expect": "robust_accuracy >= 0.8 during fgsm",
    "passed": False,
    "measured": 0.71,
    "unit": "",
    "threshold": 0.8,
    "scope": "fgsm",
    "detail": "probe.robust_accuracy during fgsm was 0.71; expected >= 0.8",
}


def verdicts(p95_ms: float, availability: float) -> list[dict[str, Any]]:
    return [
        {
            "name": "p95 under 250 ms",
            "expect": "p95(latency) < 250ms during slow-fs",
            "passed": p95_ms < 250,
            "measured": p95_ms,
            "unit": "ms",
            "threshold": 250.0,
            "scope": "slow-fs",
            "detail": "worst fault window",
        },
        {
            "name": "availability",
            "expect": "availability >= 95%",
            "passed": availability >= 0.95,
            "measured": availability,
            "unit": "fraction",
            "threshold": 0.95,
            "scope": "run",
            "detail": "",
            "weight": 2,
        },
        {
            "name": "recovers",
            "expect": "recovery_time < 10s",
            "passed": True,
            "measured": 1.5,
            "unit": "s",
            "threshold": 10.0,
            "scope": "run",
            "detail": "",
        },
    ]


def attack_details(rnd: random.Random, samples: int = 12, features: int = 6) -> dict[str, Any]:
    """An evasion attack's details as attacks/evasion.py journals them: the dataset rows it
    finished, every adversarial point (the raw vectors), a few examples and failed requests."""
    rows = [rnd.randrange(1000) for _ in range(samples)]
    original = [[round(rnd.uniform(0, 1), 3) for _ in range(features)] for _ in rows]
    adversarial = [[round(v + rnd.uniform(-0.05, 0.05), 3) for v in x] for x in original]
    return {
        "stopped": "done",
        "samples_planned": samples,
        "examples": [
            {"row": r, "label": 1, "adversarial_prediction": 0, "original": o, "adversarial": a}
            for r, o, a in list(zip(rows, original, adversarial))[:5]
        ],
        "rows": rows,
        "adversarial": adversarial,
        "errors": {"http_429": 3, "timeout": 1},
    }


def write_journal(
    path: Path,
    *,
    slow_s: float = 0.3,
    fail_share: float = 0.1,
    crash_at: int | None = None,
    extras: bool = True,
    seconds: int = 20,
    seed: int = 7,
    attack_slo: bool = False,
) -> None:
    """A 20 s run: 5 s baseline, fault `slow-fs` from 8 s to 13 s adding `slow_s` latency and
    failing `fail_share` of requests. `crash_at`: stop writing after that many windows;
    `seed`: the random draw of latencies and outcomes (another seed: another run of the same system);
    `attack_slo`: also judge the attack `fgsm` (robust_accuracy >= 0.8 during fgsm, which fails)."""
    lines: list[dict[str, Any]] = []

    def ev(t: float, event: str, **fields: Any) -> None:
        lines.append({"t": t, "event": event, **fields})

    ev(
        T0 - 2,
        "run.started",
        scenario="demo-scn",
        file="demo.yaml",
        run_id="r1",
        quick=False,
        window=1.0,
        environment={"python": "3.11.9", "locust": "2.47"},
    )
    ev(T0, "phase", phase="load", start=T0, duration=seconds, baseline=5)
    rnd = random.Random(seed)
    failed = total = 0
    fault_lat: list[int] = []
    for i in range(seconds):
        if crash_at is not None and i == crash_at:
            break
        if i == 8:
            ev(
                T0 + 8.01,
                "fault.injected",
                fault="slow-fs",
                type="network.latency",
                planned_at=T0 + 8,
                skew_s=0.01,
                params={"latency": slow_s},
            )
        if i == 13:
            ev(
                T0 + 13.02,
                "fault.reverted",
                fault="slow-fs",
                type="network.latency",
                skew_s=0.02,
                early=False,
            )
        w = Window(index=int(T0) + i, size=1.0)
        in_fault = 8 <= i < 13
        for _ in range(40):
            w.requests += 1
            if in_fault and rnd.random() < fail_share:
                w.failures["timeout"] = w.failures.get("timeout", 0) + 1
                continue
            us = int(rnd.uniform(10_000, 30_000) + (slow_s * 1e6 if in_fault else 0))
            if in_fault:
                fault_lat.append(us)
            w.latency.record_value(us)
            w.latency_sum_us += us
            w.labelled += 1
            w.correct += rnd.random() < (0.8 if in_fault else 0.97)
            w.fallbacks += in_fault
            w.fallback_flagged += 1
        failed += w.failed
        total += w.requests
        ev(w.end + 0.05, "window", record=w.to_record())
    if crash_at is None:
        if extras:
            ev(
                T0 + 17,
                "attack.result",
                attack="fgsm",
                type="evasion",
                start=T0 + 14,
                end=T0 + 17,
                metrics={"robust_accuracy": 0.71, "attack_success_rate": 0.29, "queries": 300},
                details=attack_details(rnd),
            )
            ev(
                T0 + 9,
                "drift.delivered",
                fault="shift",
                feature="amount",
                metric="psi",
                magnitude=0.31,
            )
        fault_lat.sort()
        p95 = fault_lat[int(0.95 * (len(fault_lat) - 1))] / 1000 if fault_lat else 0.0
        judged = verdicts(p95, 1 - failed / total) + ([ATTACK_VERDICT] if attack_slo else [])
        for v in judged:
            ev(T0 + seconds + 0.5, "slo.verdict", **v)
        status, code = ("passed", 0) if all(v["passed"] for v in judged) else ("failed", 1)
        ev(T0 + seconds + 1, "run.ended", status=status, exit_code=code, message="")
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(json.dumps(x) for x in lines) + "\n"
    if crash_at is not None:
        text += '{"t": 1, "event": "wind'  # torn last line, as a SIGKILL mid-write leaves it
    path.write_text(text, encoding="utf-8")
