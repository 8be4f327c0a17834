"""The timeline chart: latency p50/p95/p99, error rate (and by kind), throughput, accuracy,
fallback rate, attack figures and probe values per window, on one shared time axis, with
fault and attack windows shaded and each SLO's threshold drawn over the scope it judges.

Plotly, because its JavaScript ships inside the Python package (report.html embeds it and
works offline, as one file attached to a CI job) and hover values, zoom on a time range and
legend toggles come built in. One figure with shared x: a zoom on one panel zooms them all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from harness.engine.slo import SloSyntaxError, parse_slo
from harness.engine.slo.ast import SliRef

# hex, so matplotlib (the game-day page) reads them as well as Plotly
FAULT_COLORS = ["#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#bcbd22"]
ATTACK_COLOR = "#d62728"
# outlines in a colour (and dash) each, so overlapping attacks stay apart
ATTACK_COLORS = [ATTACK_COLOR, "#7b1fa2", "#0277bd", "#5d4037"]
SLO_COLOR = "#222222"
PLOT_DIV_ID = "timeline"
PANEL_HEIGHT_PX = 210


@dataclass
class Panel:
    key: str
    title: str  # y-axis label, with its unit (fractions are drawn as %)
    traces: list[go.Scatter] = field(default_factory=list)
    values: list[float] = field(default_factory=list)  # every y drawn, for the axis range


def attack_figure_names(result: dict[str, Any]) -> set[str]:
    """Names of the figures the run's attacks reported (robust_accuracy, queries, ...)."""
    return {name for a in result.get("attacks") or [] for name in (a.get("metrics") or {})}


def probe_names(result: dict[str, Any]) -> set[str]:
    """Every probe value the windows hold; attack figures are held there too."""
    return {k for r in result.get("windows") or [] for k in r.get("probes") or {}}


def sli_of(slo: dict[str, Any], known_probes: set[str]) -> SliRef | None:
    """The SLI an SLO's expression judges, or None (recovery_time, detection_time, unparsable).
    `known_probes` lets a bare attack figure (`server_errors`) read as the value it names."""
    try:
        left = parse_slo(slo["expect"], known_probes=known_probes or None).comparison.left
    except (SloSyntaxError, KeyError):
        return None
    return left if isinstance(left, SliRef) else None


def slo_line(slo: dict[str, Any], result: dict[str, Any]) -> tuple[str, float] | None:
    """(panel, y value) where this SLO's threshold belongs on the chart, or None (e.g. recovery_time)."""
    threshold = slo.get("threshold")
    figures = attack_figure_names(result)
    sli = sli_of(slo, figures | probe_names(result))
    if threshold is None or sli is None:
        return None
    if sli.kind.startswith("latency_"):
        return "latency", float(threshold)
    if sli.distribution in ("ttft", "itl"):
        return "ttft", float(threshold)
    if sli.kind == "probe" and sli.probe is not None:
        return ("attack" if sli.probe in figures else "probe"), float(threshold)
    percent = {
        "error_rate": "error",
        "server_error_rate": "error",
        "client_error_rate": "error",
        "stream_error_rate": "error",
        "accuracy": "accuracy",
        "fallback_rate": "fallback",
    }
    if sli.kind in percent:
        return percent[sli.kind], round(100.0 * threshold, 9)  # 100 × 0.95 is 94.999…
    if sli.kind == "availability":
        return "error", round(100.0 * (1.0 - threshold), 9)
    if sli.kind == "throughput":
        return "throughput", float(threshold)
    return None


def _run_end(result: dict[str, Any]) -> float:
    end = (result["timeline"].get("run") or {}).get("end_s")
    if end is not None:
        return end
    rows = result.get("windows") or []
    return rows[-1]["t_s"] + rows[-1]["size_s"] if rows else 0.0


def attack_spans(result: dict[str, Any]) -> list[tuple[str, float, float]]:
    """(attack name, start, end) seconds of every attack that reported its window."""
    end = _run_end(result)
    return [
        (str(a.get("attack")), a["start_s"], a["end_s"] if a.get("end_s") is not None else end)
        for a in result.get("attacks") or []
        if a.get("start_s") is not None
    ]


def scope_spans(result: dict[str, Any], scope: str | None) -> list[tuple[float, float]]:
    """The (start, end) seconds of a scope (run, baseline, recovery, fault, a fault's or an
    attack's name), for drawing a threshold only where it judges."""
    tl = result["timeline"]
    run_end = _run_end(result)
    if scope in (None, "", "run"):
        return [(0.0, run_end)]
    if scope in ("baseline", "recovery"):
        span = tl.get(scope)
        return [(span["start_s"], span["end_s"] or run_end)] if span else []
    faults = [
        (f["injected_at_s"], f["reverted_at_s"] if f["reverted_at_s"] is not None else run_end)
        for f in tl["faults"]
        if f["injected_at_s"] is not None and scope in ("fault", f["name"])
    ]
    return faults + [(s, e) for name, s, e in attack_spans(result) if name == scope]


def _series(rows: list[dict[str, Any]], key: str, scale: float) -> list[float | None]:
    return [None if r.get(key) is None else r[key] * scale for r in rows]


def _line(panel: Panel, x: list[float], y: list[float | None], name: str, **style: Any) -> None:
    panel.values += [v for v in y if v is not None]
    panel.traces.append(
        go.Scatter(x=x, y=y, name=name, mode="lines+markers", marker={"size": 4}, **style)
    )


def _panels(result: dict[str, Any]) -> list[Panel]:
    rows = result.get("windows") or []
    t = [r["t_s"] + r["size_s"] / 2 for r in rows]
    latency = Panel("latency", "latency (ms)")
    for key, dash in (("p50_ms", "solid"), ("p95_ms", "solid"), ("p99_ms", "dash")):
        _line(latency, t, _series(rows, key, 1.0), key.removesuffix("_ms"), line={"dash": dash})
    ttft = Panel("ttft", "time to first token (ms)")  # generative loads only: empty panels are left out
    for key, name, dash in (("ttft_p50_ms", "ttft p50", "solid"), ("ttft_p95_ms", "ttft p95", "solid"),
                            ("itl_p95_ms", "inter-token p95", "dot")):
        _line(ttft, t, _series(rows, key, 1.0), name, line={"dash": dash})
    error = Panel("error", "error rate (%)")
    _line(error, t, _series(rows, "error_rate", 100.0), "error rate", line={"color": ATTACK_COLOR})
    stalled = [100.0 * r["error_rate"] if r.get("stalled") else None for r in rows]
    if any(v is not None for v in stalled):  # no request started or moved: what the SLIs count there
        error.traces.append(go.Scatter(x=t, y=stalled, name="stalled: nothing moved", mode="markers",
                                       marker={"symbol": "x", "size": 9, "color": ATTACK_COLOR}))
    kinds = sorted({k for r in rows for k in r.get("failure_kinds") or {}})
    for kind in kinds:  # which failures made the error rate (timeout, http_503, ...)
        share = [
            None
            if not r.get("requests")
            else 100.0 * (r.get("failure_kinds") or {}).get(kind, 0) / r["requests"]
            for r in rows
        ]
        _line(error, t, share, f"errors: {kind}", line={"dash": "dot", "width": 1})
    throughput = Panel("throughput", "throughput (req/s)")
    _line(throughput, t, _series(rows, "throughput", 1.0), "requests/s", line={"color": "#2ca02c"})
    accuracy = Panel("accuracy", "accuracy (%)")
    _line(accuracy, t, _series(rows, "accuracy", 100.0), "accuracy", line={"color": "#1f77b4"})
    fallback = Panel("fallback", "fallback rate (%)")
    _line(
        fallback,
        t,
        _series(rows, "fallback_rate", 100.0),
        "fallback rate",
        line={"color": "#17becf"},
    )
    panels = [latency, *([ttft] if ttft.values else []), error, throughput, accuracy, fallback]

    figures = attack_figure_names(result)
    known = figures | probe_names(result)
    judged = {
        sli.probe
        for slo in result.get("slos") or []
        if (sli := sli_of(slo, known)) is not None and sli.kind == "probe"
    }
    if figures:
        # an attack reports each figure once, for its whole window: a segment over that window
        attack = Panel("attack", "attack figure")
        shown = sorted(figures & judged) or sorted(
            figures & {"robust_accuracy", "attack_success_rate"}
        )
        for name in shown:
            xs: list[float | None] = []
            ys: list[float | None] = []
            for a in result.get("attacks") or []:
                value = (a.get("metrics") or {}).get(name)
                if value is None or a.get("start_s") is None:
                    continue
                end = a["end_s"] if a.get("end_s") is not None else _run_end(result)
                xs += [a["start_s"], end, None]
                ys += [value, value, None]
            if xs:
                _line(attack, xs, ys, f"{name} (attack figure)", line={"width": 3})
        if attack.traces:  # figures no SLO reads stay in the attack table
            panels.append(attack)
    probes = sorted(probe_names(result) - figures)
    if probes:
        probe = Panel("probe", "probe value")
        for name in probes:
            _line(probe, t, [(r.get("probes") or {}).get(name) for r in rows], f"probe.{name}")
        panels.append(probe)
    return panels


def _add_slo_lines(
    result: dict[str, Any], panels: dict[str, Panel], outcome: Callable[[dict[str, Any]], str]
) -> None:
    for slo in result.get("slos") or []:
        where = slo_line(slo, result)
        spans = scope_spans(result, slo.get("scope"))
        if where is None or not spans or where[0] not in panels:
            continue
        key, y = where
        xs: list[float | None] = [x for x0, x1 in spans for x in (x0, x1, None)]
        panel = panels[key]
        panel.values.append(y)
        panel.traces.append(
            go.Scatter(
                x=xs,
                y=[y if x is not None else None for x in xs],
                name=f"SLO: {slo['name']}",
                mode="lines",
                line={"color": SLO_COLOR, "dash": "dot", "width": 1.5},
                hovertemplate=f"{slo['expect']}: {outcome(slo)}<extra>SLO: {slo['name']}</extra>",
            )
        )


def _y_range(panel: Panel) -> list[float]:
    """From 0 to a little above the highest value drawn; [0, 1] (and the headroom) when every
    value is 0 or none, so an all-zero series sits on the axis, not mid-way up Plotly's [-1, 1]."""
    low = min([0.0, *panel.values])
    top = max([0.0, *panel.values])
    if top <= low:
        top = low + 1.0
    pad = 0.08 * (top - low)
    return [low - (pad if low < 0 else 0.0), top + pad]


def timeline_figure(
    result: dict[str, Any], outcome: Callable[[dict[str, Any]], str] = lambda v: ""
) -> go.Figure:
    """Every panel over the run's time axis, with faults, attacks and SLO lines drawn on it.
    `outcome`: an SLO verdict's figure and word, shown when hovering its line (an SLO judges
    its whole scope at once, not each window the line crosses)."""
    panels = _panels(result)
    by_key = {p.key: p for p in panels}
    _add_slo_lines(result, by_key, outcome)
    fig = make_subplots(
        rows=len(panels),
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.025,
        subplot_titles=None,
    )
    n = len(panels)
    for i, panel in enumerate(panels, start=1):
        legend = "legend" if i == 1 else f"legend{i}"
        for trace in panel.traces:
            trace.update(legend=legend)
            fig.add_trace(trace, row=i, col=1)
        axis = fig.layout[f"yaxis{'' if i == 1 else i}"]
        fig.update_yaxes(
            title_text=panel.title, range=_y_range(panel), row=i, col=1, fixedrange=False
        )
        top = axis.domain[1]
        fig.update_layout(
            {
                legend: {
                    "x": 1.01,
                    "y": top,
                    "yanchor": "top",
                    "font": {"size": 11},
                    "bgcolor": "rgba(255,255,255,0)",
                }
            }
        )
        if not panel.values:
            fig.add_annotation(
                text="not measured in this run",
                xref=f"x{'' if i == 1 else i} domain",
                yref=f"y{'' if i == 1 else i} domain",
                x=0.5,
                y=0.5,
                showarrow=False,
                font={"color": "gray"},
            )
    _shade_spans(fig, result, n)
    fig.update_xaxes(title_text="seconds since load start", row=n, col=1)
    fig.update_xaxes(showspikes=True, spikemode="across", spikethickness=1)
    fig.update_layout(
        height=PANEL_HEIGHT_PX * n + 80,
        margin={"l": 70, "r": 260, "t": 40, "b": 50},
        hovermode="x unified",
        template="plotly_white",
        title={
            "text": f"{result['scenario']} — {result['status']}",
            "x": 0.01,
            "font": {"size": 15},
        },
    )
    return fig


def _rgba(hex_color: str, alpha: float) -> str:
    r, g, b = (int(hex_color[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgba({r},{g},{b},{alpha})"


def _shade_spans(fig: go.Figure, result: dict[str, Any], rows: int) -> None:
    """Fault windows filled, attack windows outlined in red, on every panel; one legend entry
    per span toggles it on all panels."""
    end = _run_end(result)
    spans = []
    for i, f in enumerate(result["timeline"]["faults"]):
        if f["injected_at_s"] is None:
            continue
        stop = f["reverted_at_s"] if f["reverted_at_s"] is not None else end
        color = FAULT_COLORS[i % len(FAULT_COLORS)]
        spans.append(
            (
                f"fault: {f['name']}",
                f["injected_at_s"],
                stop,
                {"fillcolor": _rgba(color, 0.16), "line": {"width": 0}},
            )
        )
    for j, (name, start, stop) in enumerate(attack_spans(result)):
        color = ATTACK_COLORS[j % len(ATTACK_COLORS)]
        spans.append(
            (
                f"attack: {name}",
                start,
                stop,
                {
                    "fillcolor": _rgba(color, 0.07),  # a shape's opacity would fade its outline too
                    "line": {
                        "color": color,
                        "width": 1.5,
                        "dash": ["dash", "dot", "dashdot"][j % 3],
                    },
                },
            )
        )
    for label, start, stop, style in spans:
        for row in range(1, rows + 1):
            fig.add_vrect(
                x0=start,
                x1=stop,
                row=row,
                col=1,
                layer="below",
                name=label,
                legendgroup=label,
                showlegend=row == 1,
                legend="legend",
                **style,
            )


def timeline_div(result: dict[str, Any], outcome: Callable[[dict[str, Any]], str]) -> str:
    """The chart as an HTML <div> + script; the page embeds plotly.js once (plotly_js())."""
    return timeline_figure(result, outcome).to_html(
        include_plotlyjs=False,
        full_html=False,
        div_id=PLOT_DIV_ID,
        default_width="100%",
        config={"displaylogo": False, "responsive": True},
    )


def plotly_js() -> str:
    """plotly.js as shipped inside the `plotly` package, to inline once per page (no network)."""
    return get_plotlyjs()
