"""The game-day report: all scenarios on one timeline, checkpoints and observations marked,
each hypothesis with its outcome, and the action items. Written as gameday.json,
gameday.md and a self-contained gameday.html."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from harness.reports.plot import FAULT_COLORS
from harness.reports.writers import TEMPLATES, fmt_measured, verdict_word

if TYPE_CHECKING:
    from harness.workflows.gameday.session import GameDayOutcome


def _epoch(iso: str | None) -> float | None:
    return None if not iso else datetime.fromisoformat(iso).timestamp()


def timeline_png(outcome: GameDayOutcome) -> bytes | None:
    """p95 latency and error rate of every scenario on one clock (seconds since the game day began)."""
    t0 = outcome.started
    fig, (lat, err) = plt.subplots(2, 1, figsize=(11, 6), sharex=True)
    plotted = False
    for rec in outcome.steps:
        r = rec.result
        origin = _epoch((r or {}).get("load_started_at"))
        if r is None or origin is None or not r.get("windows"):
            continue
        plotted = True
        base = origin - t0
        t = [base + w["t_s"] + w["size_s"] / 2 for w in r["windows"]]
        lat.plot(
            t, [w.get("p95_ms") for w in r["windows"]], label=f"p95: {r['scenario']}", linewidth=1.3
        )
        err.plot(
            t,
            [None if w.get("error_rate") is None else 100 * w["error_rate"] for w in r["windows"]],
            label=f"errors: {r['scenario']}",
            linewidth=1.3,
        )
        end = base + ((r["timeline"].get("run") or {}).get("end_s") or 0)
        for ax in (lat, err):
            ax.axvspan(base, end, color="gray", alpha=0.06)
        lat.text(
            base, 1.01, r["scenario"], transform=lat.get_xaxis_transform(), fontsize=7, va="bottom"
        )
        for i, f in enumerate(r["timeline"]["faults"]):
            if f["injected_at_s"] is None:
                continue
            stop = f["reverted_at_s"] if f["reverted_at_s"] is not None else end - base
            for ax in (lat, err):
                ax.axvspan(
                    base + f["injected_at_s"],
                    base + stop,
                    color=FAULT_COLORS[i % len(FAULT_COLORS)],
                    alpha=0.2,
                )
    if not plotted:
        plt.close(fig)
        return None
    for rec in outcome.steps:
        if rec.kind == "checkpoint" and rec.ended is not None:
            for ax in (lat, err):
                ax.axvline(rec.ended - t0, color="tab:green", linestyle="--", linewidth=0.8)
    for n, obs in enumerate(outcome.observations, start=1):
        for ax in (lat, err):
            ax.axvline(obs.t - t0, color="tab:blue", linestyle=":", linewidth=0.8)
        err.text(
            obs.t - t0,
            0.98,
            f"#{n}",
            transform=err.get_xaxis_transform(),
            fontsize=7,
            color="tab:blue",
            va="top",
        )
    lat.set_ylabel("p95 latency (ms)")
    err.set_ylabel("error rate (%)")
    err.set_xlabel(
        "seconds since the game day began (dashed: checkpoints, dotted: observations #n)"
    )
    for ax in (lat, err):
        ax.grid(alpha=0.3)
        ax.legend(loc="upper right", fontsize=7)
    fig.suptitle(f"game day {outcome.name}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    plt.close(fig)
    return buf.getvalue()


def gameday_markdown(outcome: GameDayOutcome) -> str:
    held = [s for s in outcome.steps if s.kind == "scenario"]
    ok = sum(1 for s in held if s.hypothesis_held)
    lines = [f"## Game day {outcome.name}: {ok} of {len(held)} hypotheses held", ""]
    if outcome.hypothesis:
        lines += [f"**Hypothesis:** {outcome.hypothesis}", ""]
    if outcome.roles:
        lines += [
            "**Roles:** " + ", ".join(f"{role}: {who}" for role, who in outcome.roles.items()),
            "",
        ]
    lines += [
        "| # | step | role | status | hypothesis | held | run |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in outcome.steps:
        held_text = "" if s.hypothesis_held is None else ("yes" if s.hypothesis_held else "**no**")
        role = f"{s.role} ({s.person})" if s.role else ""
        lines.append(
            f"| {s.index + 1} | {s.kind}: {s.title} | {role} | {s.status} | {s.hypothesis} | {held_text} | "
            f"{s.run_dir or ''} |"
        )
    if outcome.observations:
        lines += ["", "### Observations", ""]
        for n, o in enumerate(outcome.observations, start=1):
            lines.append(f"{n}. +{o.t - outcome.started:.0f} s ({o.kind}): {o.text}")
    lines += ["", "### Action items", ""]
    lines += [
        f"- [ ] {a['text']}" + (f" — owner: {a['owner']}" if a.get("owner") else "")
        for a in outcome.action_items
    ]
    if not outcome.action_items:
        lines.append("none")
    return "\n".join(lines) + "\n"


def write_gameday_report(outcome: GameDayOutcome) -> None:
    d = outcome.report_dir
    d.mkdir(parents=True, exist_ok=True)
    (d / "gameday.json").write_text(
        json.dumps(outcome.to_dict(), indent=2, default=str) + "\n", encoding="utf-8"
    )
    (d / "gameday.md").write_text(gameday_markdown(outcome), encoding="utf-8")
    png = timeline_png(outcome)
    html = TEMPLATES.get_template("gameday.html.j2").render(
        g=outcome,
        plot=None if png is None else base64.b64encode(png).decode("ascii"),
        fmt_measured=fmt_measured,
        verdict_word=verdict_word,
        rel=lambda t: f"+{t - outcome.started:.0f} s",
    )
    (d / "gameday.html").write_text(html, encoding="utf-8")
