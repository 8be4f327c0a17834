"""Write a run's artefacts: result.json, summary.md and a self-contained report.html.

Pages are rendered from the run's journal (see replay.py) with result.json laid over it,
so `aftershock report RUN_DIR` renders a crashed run's partial journal too.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.journal import Journal, read_journal
from harness.redaction import Redactor
from harness.report.plot import timeline_png
from harness.report.replay import load_run, report_data
from harness.report.score import FORMULA, ResilienceScore, slo_weight

TEMPLATES = Environment(  # the report and game-day HTML templates
    loader=PackageLoader("harness.report", "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


def fmt_measured(v: dict[str, Any]) -> str:
    m = v.get("measured")
    if m is None:
        return "no data" if v.get("passed") is None else "never"
    unit = v.get("unit") or ""
    if unit == "fraction":
        return f"{m * 100:.2f}%"
    return f"{m:.4g} {unit}".strip()


def verdict_word(v: dict[str, Any]) -> str:
    return {True: "PASS", False: "FAIL", None: "NO DATA"}[v.get("passed")]


def fmt_seconds(s: float | None) -> str:
    return "did not happen" if s is None else f"{s:.2f} s"


def fmt_cell(value: Any) -> str:
    """A table cell for a generic (journal-defined) value: numbers short, maps as k=v."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={fmt_cell(v)}" for k, v in value.items())
    if isinstance(value, list):
        return ", ".join(fmt_cell(v) for v in value)
    return "" if value is None else str(value)


def generic_table(
    rows: list[dict[str, Any]], hide: tuple[str, ...] = ("start", "end")
) -> tuple[list[str], list[list[str]]]:
    """Columns (union of keys, first-seen order) and cells for events whose fields we don't fix.
    A `metrics` map becomes one column per metric."""
    flat = []
    for r in rows:
        row = {k: v for k, v in r.items() if k not in hide and k != "metrics"}
        if isinstance(r.get("metrics"), dict):
            row.update(r["metrics"])
        flat.append(row)
    columns = list(dict.fromkeys(k for row in flat for k in row))
    return columns, [[fmt_cell(row.get(c)) for c in columns] for row in flat]


def score_of(data: dict[str, Any]) -> ResilienceScore:
    return ResilienceScore(**data["score"])


def summary_markdown(data: dict[str, Any]) -> str:
    score = score_of(data)
    lines = [f"## aftershock: {data['scenario']} — {str(data['status']).upper()}", ""]
    if data.get("message"):
        lines += [f"> {data['message']}", ""]
    if score.percent is not None:
        headline = (
            f"**Resilience score: {score.percent:.1f} %** ({score.met} of {score.total} SLOs met; "
        )
        lines += [headline + f"{score.worked()})", ""]
    lines += ["| SLO | expect | measured | weight | verdict |", "|---|---|---|---|---|"]
    for v in data["slos"]:
        lines.append(
            f"| {v['name']} | `{v['expect']}` | {fmt_measured(v)} | {slo_weight(v):g} | {verdict_word(v)} |"
        )
    times = [(n, "recovery", s) for n, s in (data.get("recovery_time_s") or {}).items()]
    times += [(n, "detection", s) for n, s in (data.get("detection_time_s") or {}).items()]
    if times:
        lines += ["", "| SLO | kind | time |", "|---|---|---|"]
        lines += [f"| {n} | {k} | {fmt_seconds(s)} |" for n, k, s in times]
    faults = data["timeline"]["faults"]
    if faults:
        lines += ["", "| fault | type | injected at | reverted at |", "|---|---|---|---|"]
        for f in faults:
            lines.append(
                f"| {f['name']} | {f['type']} | {f['injected_at_s']} s | {f['reverted_at_s']} s |"
            )
    for title, rows in (("drift delivered", data.get("drift")), ("attacks", data.get("attacks"))):
        if rows:
            columns, cells = generic_table(rows)
            lines += [
                "",
                f"**{title}**",
                "",
                "| " + " | ".join(columns) + " |",
                "|" + "---|" * len(columns),
            ]
            lines += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells]
    lines += ["", f"run `{data.get('run_id')}`, exit code {data.get('exit_code')}"]
    return "\n".join(lines) + "\n"


def report_html(data: dict[str, Any]) -> str:
    png = base64.b64encode(timeline_png(data)).decode("ascii") if data.get("windows") else None
    return TEMPLATES.get_template("report.html.j2").render(
        r=data,
        plot=png,
        score=score_of(data),
        formula=FORMULA,
        fmt_measured=fmt_measured,
        verdict_word=verdict_word,
        fmt_seconds=fmt_seconds,
        slo_weight=slo_weight,
        generic_table=generic_table,
    )


def _write_pages(run_dir: Path, data: dict[str, Any]) -> None:
    (run_dir / "summary.md").write_text(summary_markdown(data), encoding="utf-8")
    (run_dir / "report.html").write_text(report_html(data), encoding="utf-8")


def write_reports(run_dir: Path, result: dict[str, Any], journal: Journal | None = None) -> None:
    """The runner's call at the end of a run: result.json as given, pages from journal + result.

    Secrets are masked in the values (the journal's events were masked when written)
    before anything is serialized or rendered."""
    run_dir.mkdir(parents=True, exist_ok=True)
    redactor = journal.redactor if journal else Redactor()
    result = redactor.value(result)
    (run_dir / "result.json").write_text(
        json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8"
    )
    events = read_journal(journal.path) if journal and journal.path.is_file() else []
    _write_pages(run_dir, redactor.value(report_data(events, result)))


def render_run(run_dir: Path) -> dict[str, Any]:
    """Render report.html and summary.md again from a run folder (`aftershock report`).
    A crashed run without result.json gets one rebuilt from its journal (status `incomplete`)."""
    data = load_run(run_dir)
    if not (run_dir / "result.json").is_file():
        result = {k: v for k, v in data.items() if k not in ("drift", "attacks")}
        (run_dir / "result.json").write_text(
            json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8"
        )
    _write_pages(run_dir, data)  # the journal and result were redacted when written
    return data
