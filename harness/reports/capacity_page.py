"""The capacity search's pages: capacity.html (a chart of p95 latency and error rate against
load, healthy and under fault, with each knee marked, and the table of trials) and summary.md.

They read only the search's record (capacity.json's dict), like the run pages read result.json.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from harness.reports.plot import FAULT_COLORS, SLO_COLOR, plotly_js, slo_line
from harness.reports.writers import TEMPLATES

SWEEP_COLORS = {"healthy": "#1f77b4", "fault": FAULT_COLORS[0]}
SWEEP_TITLES = {"healthy": "healthy (faults removed)", "fault": "with the scenario's faults"}
LOAD_UNITS = {"users": "users", "rate": "requests/s"}  # the record's `load`: what a level counts


def load_unit(record: dict[str, Any]) -> str:
    return LOAD_UNITS[record.get("load", "users")]


def knee_text(sweep: dict[str, Any] | None, levels: list[float], unit: str = "users") -> str:
    """The knee in words, with its bracket: what a reader needs to trust the figure."""
    if sweep is None:
        return "not measured (the search did not reach this sweep)"
    knee, fail = sweep["knee"], sweep["first_failure"]
    tested = {v["level"] for v in sweep["verdicts"]}
    split = [v["level"] for v in sweep["verdicts"] if v["holds"] is None]  # a tie the budget left undecided
    undecided = f"; undecided at {', '.join(f'{lv:g}' for lv in split)} (verdicts split)" if split else ""
    if knee is None:
        return (f"no level held (failed at {fail:g}){undecided}" if fail is not None and fail in tested
                else f"not measured (no level held or was tried){undecided}")
    if fail is None:
        top = " (held at the maximum tried; capacity may be higher)" if knee == levels[-1] else ""
        return f"{knee:g} {unit}{top}{undecided}"
    below = "" if fail in tested else " (assumed: the healthy sweep failed there)"
    return f"{knee:g} {unit} (held; {fail:g} failed{below}){undecided}"


def headroom_text(record: dict[str, Any]) -> str:
    h = record.get("headroom")
    return "not measured" if h is None else f"{h:.0%} of the healthy capacity"


def capacity_figure(record: dict[str, Any]) -> go.Figure:
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
                        subplot_titles=("p95 latency (ms)", "error rate (%)"))
    for sweep in ("healthy", "fault"):
        trials = [t for t in record["trials"] if t["sweep"] == sweep and t["held"] is not None]
        if not trials:
            continue
        trials.sort(key=lambda t: t["level"])
        color = SWEEP_COLORS[sweep]
        x = [t["level"] for t in trials]
        symbols = ["circle" if t["held"] else "x" for t in trials]
        hover = [f"{t['level']:g} {load_unit(record)} #{t['repeat']}: {'held' if t['held'] else 'failed'}" for t in trials]
        for row, key, scale in ((1, "p95_ms", 1.0), (2, "error_rate", 100.0)):
            y = [None if t[key] is None else t[key] * scale for t in trials]
            fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers", name=SWEEP_TITLES[sweep], legendgroup=sweep,
                                     showlegend=row == 1, line={"color": color}, hovertext=hover,
                                     marker={"symbol": symbols, "size": 9, "color": color}), row=row, col=1)
        knee = (record["sweeps"].get(sweep) or {}).get("knee")
        if knee is not None:
            fig.add_vline(x=knee, line={"color": color, "dash": "dash"},
                          annotation_text=f"knee {sweep}: {knee:g}", annotation_position="top left")
    for slo in record.get("slo_limits") or []:  # each SLO's limit on the panel of its SLI
        line = slo_line(slo, {})
        if line is not None and line[0] in ("latency", "error"):
            fig.add_hline(y=line[1], row=1 if line[0] == "latency" else 2, col=1, line={"color": SLO_COLOR, "dash": "dot"},
                          annotation_text=slo["name"], annotation_position="bottom right")
    fig.update_xaxes(title_text=f"load ({load_unit(record)})", row=2, col=1)
    fig.update_layout(height=560, margin={"l": 60, "r": 20, "t": 40, "b": 40}, hovermode="closest")
    return fig


def capacity_html(record: dict[str, Any]) -> str:
    plot = capacity_figure(record).to_html(include_plotlyjs=False, full_html=False, div_id="capacity",
                                           default_width="100%", config={"displaylogo": False, "responsive": True})
    sweeps = record["sweeps"]
    return TEMPLATES.get_template("capacity.html.j2").render(
        r=record, plotly_js=plotly_js(), plot=plot, headroom=headroom_text(record),
        knees={s: knee_text(sweeps.get(s), record["levels"], load_unit(record)) for s in ("healthy", "fault")},
        titles=SWEEP_TITLES, unit=load_unit(record),
    )


def _cell(value: float | None, unit: str) -> str:
    if value is None:
        return "not measured"
    return f"{value:.0f}" if unit == "ms" else f"{value:.2%}"


def capacity_markdown(record: dict[str, Any]) -> str:
    sweeps = record["sweeps"]
    unit = load_unit(record)
    lines = [
        f"# Capacity of {record['scenario']}",
        "",
        f"- knee, healthy: **{knee_text(sweeps.get('healthy'), record['levels'], unit)}**",
        f"- knee, with faults: **{knee_text(sweeps.get('fault'), record['levels'], unit)}**",
        f"- headroom the faults leave (capacity under fault / healthy): **{headroom_text(record)}**",
        (f"- search: {record['search']}, step {record['step']:g} {unit}, seed {record['seed']}; "
         f"{len(record['trials'])} trials in {record['elapsed_s']:g} s of a {record['budget_s']:g} s budget "
         f"(each trial's steady state x{record['plan']['factor']:.2f}; faults as written)"),
        f"- knee rule: {record['knee_rule']}",
    ]
    flips = [f"{s}: {', '.join(f'{v:g}' for v in sw['flipped_levels'])}"
             for s, sw in sweeps.items() if sw["flipped_levels"]]
    if flips:
        lines.append(f"- the verdict flipped between repeats at (repeated, majority kept): {'; '.join(flips)}")
    if record["note"]:
        lines.append(f"- **{record['note']}**")
    lines += ["", f"| sweep | {unit} | trial | verdict | p95 (ms) | error rate | req/s | SLOs not held | run |",
              "|---|---|---|---|---|---|---|---|---|"]
    for t in record["trials"]:
        word = {True: "held", False: "failed", None: "no verdict"}[t["held"]]
        rps = "not measured" if t["throughput"] is None else f"{t['throughput']:.1f}"
        missed = ", ".join(v["name"] for v in t["slos"] if v["passed"] is not True) or "-"
        lines.append(f"| {t['sweep']} | {t['level']:g} | {t['repeat']} | {word} | {_cell(t['p95_ms'], 'ms')} "
                     f"| {_cell(t['error_rate'], '')} | {rps} | {missed} | {t['run_dir']} |")
    return "\n".join(lines) + "\n"
