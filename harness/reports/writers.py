"""Write a run's pages: summary.md and a self-contained report.html (and result.json when
a run folder is rendered again).

Pages are rendered from the run's journal (see replay.py) with result.json laid over it,
so `aftershock report RUN_DIR` renders a crashed run's partial journal too.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from harness.engine.journal import Journal, read_journal
from harness.engine.record.replay import load_run, report_data
from harness.engine.record.result import write_result
from harness.engine.record.score import FORMULA, ResilienceScore, slo_weight
from harness.engine.redaction import Redactor
from harness.engine.reporter import Reporter
from harness.reports.attack_table import attack_rows, write_attachment
from harness.reports.failures import slo_failure
from harness.reports.plot import attack_figure_names, plotly_js, timeline_div

TEMPLATES = Environment(  # the report and game-day HTML templates
    loader=PackageLoader("harness.reports", "templates"),
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


def verdict_detail(v: dict[str, Any], attack_figures: set[str]) -> str:
    """The verdict's detail, naming an attack's figures as such: the SLO engine reads them as
    probe values (`probe.robust_accuracy`), which is how they travel, not what they are."""
    detail = str(v.get("detail") or "")
    for name in attack_figures:
        detail = re.sub(rf"\bprobe(\.{name}\b| '{name}')", r"attack figure\1", detail)
    return detail.replace("attack figure.", "attack figure ")


def verdict_outcome(v: dict[str, Any]) -> str:
    """`measured 329.1 ms over slow-fs: FAIL`, for an SLO line's hover text."""
    return f"measured {fmt_measured(v)} over {v.get('scope') or 'run'}: {verdict_word(v)}"


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


def error_kinds(details: dict[str, Any]) -> str:
    """A short summary of how an attack's requests failed, from its `details`: failed requests
    and crashes by kind (`http_503 ×4, reset ×1`), the kinds of the failures it kept examples
    of, and why it stopped early. The examples themselves (request bodies, vectors) stay out."""
    parts = []
    for key in ("errors", "crash_kinds"):  # failed requests by kind; the fuzz's crashes by kind
        if isinstance(details.get(key), dict):
            parts += [f"{kind} ×{fmt_cell(n)}" for kind, n in details[key].items()]
    failures = details.get("failures")
    if isinstance(failures, list) and failures:
        kinds = dict.fromkeys(str(f).split(":", 1)[0] for f in failures)
        parts.append(f"{len(failures)} distinct failures ({', '.join(kinds)})")
    stopped = details.get("stopped")
    if isinstance(stopped, str) and stopped != "done":
        parts.append(f"stopped: {stopped}")
    return "; ".join(parts)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(" ".join(c.split()).replace("|", "\\|") for c in cells) + " |"


def attack_table(rows: list[dict[str, Any]]) -> list[str]:
    """Markdown lines: one row per attack with its window, figures (counts and rates, as
    reported) and error kinds; not the raw `details` (adversarial vectors, request bodies)."""
    lines = ["| attack | type | window | figures | errors |", "|---|---|---|---|---|"]
    for r in rows:
        window = f"{fmt_cell(r.get('start_s'))}–{fmt_cell(r.get('end_s'))} s"
        metrics = r.get("metrics") if isinstance(r.get("metrics"), dict) else {}
        figures = ", ".join(f"{k} {fmt_cell(v)}" for k, v in metrics.items())
        details = r.get("details") if isinstance(r.get("details"), dict) else {}
        cells = [str(r.get("attack", "")), str(r.get("type", "")), window, figures, error_kinds(details) or "none"]
        lines.append(_md_row(cells))
    return lines


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
    failed = [v for v in data["slos"] if v.get("passed") is not True]
    if failed:
        lines += [""] + [f"- **{v['name']}**: {slo_failure(v, data)}" for v in failed]
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
    for key, title in (("versions", "model versions"), ("drift", "drift delivered")):
        if data.get(key):
            columns, cells = generic_table(data[key])
            lines += ["", f"**{title}**", "", "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            lines += [_md_row(row) for row in cells]
    if data.get("attacks"):
        lines += ["", "**attacks**", "", *attack_table(data["attacks"])]
    lines += ["", f"run `{data.get('run_id')}`, exit code {data.get('exit_code')}"]
    return "\n".join(lines) + "\n"


def report_html(data: dict[str, Any], attachment: str | None = None) -> str:
    """The page: plotly.js inlined once, the timeline chart, and the tables. `attachment`: the
    file name of the attacks' raw results beside the page, to link."""
    windows = bool(data.get("windows"))
    return TEMPLATES.get_template("report.html.j2").render(
        r=data,
        plotly_js=plotly_js() if windows else None,
        plot=timeline_div(data, verdict_outcome) if windows else None,
        attacks=attack_rows(data.get("attacks") or []),
        attachment=attachment,
        score=score_of(data),
        formula=FORMULA,
        fmt_measured=fmt_measured,
        verdict_word=verdict_word,
        verdict_detail=verdict_detail,
        attack_figures=attack_figure_names(data),
        fmt_seconds=fmt_seconds,
        slo_weight=slo_weight,
        generic_table=generic_table,
    )


def _write_pages(run_dir: Path, data: dict[str, Any]) -> None:
    (run_dir / "summary.md").write_text(summary_markdown(data), encoding="utf-8")
    attachment = write_attachment(run_dir, data.get("attacks") or [])
    (run_dir / "report.html").write_text(report_html(data, attachment), encoding="utf-8")


def write_reports(run_dir: Path, result: dict[str, Any], journal: Journal | None = None) -> None:
    """result.json as given, then the pages from journal + result."""
    write_result(run_dir, result, journal.redactor if journal else Redactor())
    write_pages(run_dir, result, journal)


def write_pages(run_dir: Path, result: dict[str, Any], journal: Journal | None = None) -> None:
    """report.html and summary.md from the journal's events with the result laid over them.

    Secrets are masked in the values (the journal's events were masked when written)
    before anything is rendered."""
    run_dir.mkdir(parents=True, exist_ok=True)
    redactor = journal.redactor if journal else Redactor()
    events = read_journal(journal.path) if journal and journal.path.is_file() else []
    _write_pages(run_dir, redactor.value(report_data(events, redactor.value(result))))


class Pages(Reporter):
    """The built-in reporter: report.html, summary.md (and attacks.json) at the end of each run."""

    name = "pages"

    def write(self, run_dir: Path, result: dict[str, Any], journal: Journal) -> None:
        write_pages(run_dir, result, journal)


def render_run(run_dir: Path) -> dict[str, Any]:
    """Render report.html and summary.md again from a run folder (`aftershock report`).
    A crashed run without result.json gets one rebuilt from its journal (status `incomplete`)."""
    data = load_run(run_dir)
    if not (run_dir / "result.json").is_file():
        write_result(run_dir, {k: v for k, v in data.items() if k not in ("drift", "attacks")}, Redactor())
    _write_pages(run_dir, data)  # the journal and result were redacted when written
    return data
