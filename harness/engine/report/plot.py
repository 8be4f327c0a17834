"""The timeline plot: latency p50/p95/p99, error rate, throughput, accuracy and fallback rate
per window, with fault and attack windows shaded and SLO thresholds drawn over their scope.
Returned as PNG bytes, inlined into report.html (no network, no script)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.engine.slo import SloSyntaxError, parse_slo
from harness.engine.slo.ast import SliRef

FAULT_COLORS = ["tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive"]
ATTACK_COLOR = "tab:red"

# panel key -> (y label, scale applied to row values)
PANELS = {
    "latency": ("latency (ms)", 1.0),
    "error": ("error rate (%)", 100.0),
    "throughput": ("requests/s", 1.0),
    "accuracy": ("accuracy (%)", 100.0),
    "fallback": ("fallback rate (%)", 100.0),
}


def slo_line(slo: dict[str, Any]) -> tuple[str, float] | None:
    """(panel, y value) where this SLO's threshold belongs on the plot, or None (e.g. recovery_time)."""
    threshold = slo.get("threshold")
    if threshold is None:
        return None
    try:
        left = parse_slo(slo["expect"]).comparison.left
    except (SloSyntaxError, KeyError):
        return None
    if not isinstance(left, SliRef):
        return None
    if left.kind.startswith("latency_"):
        return "latency", float(threshold)
    if left.kind == "error_rate":
        return "error", 100.0 * threshold
    if left.kind == "availability":
        return "error", 100.0 * (1.0 - threshold)
    if left.kind == "throughput":
        return "throughput", float(threshold)
    if left.kind == "accuracy":
        return "accuracy", 100.0 * threshold
    if left.kind == "fallback_rate":
        return "fallback", 100.0 * threshold
    return None


def scope_spans(result: dict[str, Any], scope: str | None) -> list[tuple[float, float]]:
    """The (start, end) seconds of a scope, for drawing a threshold only where it applies."""
    tl = result["timeline"]
    run_end = (tl.get("run") or {}).get("end_s") or _last_t(result)
    if scope in (None, "", "run"):
        return [(0.0, run_end)]
    if scope in ("baseline", "recovery"):
        span = tl.get(scope)
        return [(span["start_s"], span["end_s"] or run_end)] if span else []
    faults = [
        f for f in tl["faults"] if f["injected_at_s"] is not None and scope in ("fault", f["name"])
    ]
    return [
        (f["injected_at_s"], f["reverted_at_s"] if f["reverted_at_s"] is not None else run_end)
        for f in faults
    ]


def _last_t(result: dict[str, Any]) -> float:
    rows = result.get("windows") or []
    return rows[-1]["t_s"] + rows[-1]["size_s"] if rows else 0.0


def _series(rows: list[dict[str, Any]], key: str, scale: float) -> list[float | None]:
    return [None if r.get(key) is None else r[key] * scale for r in rows]


def timeline_png(result: dict[str, Any]) -> bytes:
    rows = result.get("windows") or []
    t = [r["t_s"] + r["size_s"] / 2 for r in rows]
    fig, axes = plt.subplots(len(PANELS), 1, figsize=(10, 11), sharex=True)
    ax = dict(zip(PANELS, axes))
    for key, style in (("p50_ms", "-"), ("p95_ms", "-"), ("p99_ms", "--")):
        ax["latency"].plot(
            t, _series(rows, key, 1.0), style, label=key.replace("_ms", ""), linewidth=1.4
        )
    ax["error"].plot(t, _series(rows, "error_rate", 100.0), color="tab:red", label="error rate")
    ax["throughput"].plot(
        t, _series(rows, "throughput", 1.0), color="tab:green", label="requests/s"
    )
    ax["accuracy"].plot(t, _series(rows, "accuracy", 100.0), color="tab:blue", label="accuracy")
    ax["fallback"].plot(
        t, _series(rows, "fallback_rate", 100.0), color="tab:cyan", label="fallback rate"
    )
    for key, (label, _) in PANELS.items():
        ax[key].set_ylabel(label)
    for key, field in (("accuracy", "accuracy"), ("fallback", "fallback_rate")):
        if not any(r.get(field) is not None for r in rows):
            ax[key].text(
                0.5,
                0.5,
                "no data in this run",
                transform=ax[key].transAxes,
                ha="center",
                color="gray",
            )
    axes[-1].set_xlabel("seconds since load start")

    end = (result["timeline"].get("run") or {}).get("end_s") or _last_t(result)
    for i, f in enumerate(result["timeline"]["faults"]):
        if f["injected_at_s"] is None:
            continue
        stop = f["reverted_at_s"] if f["reverted_at_s"] is not None else end
        for a in axes:
            a.axvspan(
                f["injected_at_s"],
                stop,
                color=FAULT_COLORS[i % len(FAULT_COLORS)],
                alpha=0.15,
                label=f"fault: {f['name']}" if a is axes[0] else None,
            )
    for j, atk in enumerate(result.get("attacks") or []):
        if atk.get("start_s") is None:
            continue
        stop = atk.get("end_s") if atk.get("end_s") is not None else end
        for a in axes:
            a.axvspan(
                atk["start_s"],
                stop,
                facecolor="none",
                edgecolor=ATTACK_COLOR,
                hatch="//",
                alpha=0.4,
                label=f"attack: {atk.get('attack', j + 1)}" if a is axes[0] else None,
            )
    for slo in result.get("slos") or []:
        where = slo_line(slo)
        if where is None:
            continue
        panel, y = where
        for k, (x0, x1) in enumerate(scope_spans(result, slo.get("scope"))):
            ax[panel].hlines(
                y,
                x0,
                x1,
                colors="black",
                linestyles=":",
                linewidth=1.2,
                label=f"SLO: {slo['name']}" if k == 0 else None,
            )
    for a in axes:
        a.grid(alpha=0.3)
        if a.get_legend_handles_labels()[0]:
            a.legend(loc="upper right", fontsize=7)
    fig.suptitle(f"{result['scenario']} — {result['status']}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()
