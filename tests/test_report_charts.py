"""The interactive report's content, checked against journals whose truth the test writes:
SLO lines over exactly the scope they judge (attack scopes included), sane axes for an
all-zero series, attack tables summarised with the raw vectors in a linked attachment,
shaded verdict rows, and attack figures named as such."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import plotly.graph_objects as go
import pytest
from report_journals import ATTACK_VERDICT, T0, write_journal

from harness.engine.journal import Journal, read_journal
from harness.reports.attack_table import attack_rows
from harness.reports.plot import timeline_figure
from harness.engine.record.replay import result_from_journal
from harness.reports.writers import render_run, report_html, write_reports


def run_data(tmp_path: Path, **kw: Any) -> dict[str, Any]:
    write_journal(tmp_path / "journal.jsonl", **kw)
    return result_from_journal(read_journal(tmp_path / "journal.jsonl"))


def traces(fig: go.Figure) -> dict[str, Any]:
    return {t.name: t for t in fig.data}


def axis_of(fig: go.Figure, trace: Any) -> Any:
    return fig.layout["yaxis" + trace.yaxis.removeprefix("y")]


def test_every_slo_line_covers_exactly_its_scope(tmp_path: Path) -> None:
    data = run_data(tmp_path)
    data["slos"].append(ATTACK_VERDICT)
    fig = timeline_figure(data)
    t = traces(fig)
    # the fault slow-fs ran 8.01..13.02 s, the attack 14..17 s, the run 0..20 s
    assert list(t["SLO: p95 under 250 ms"].x) == [8.01, 13.02, None]
    assert set(t["SLO: p95 under 250 ms"].y) == {250.0, None}
    assert list(t["SLO: availability"].x) == [0.0, 20.0, None]
    assert set(t["SLO: availability"].y) == {5.0, None}  # 95 % available = 5 % errors
    line = t["SLO: robust under fgsm"]
    assert list(line.x) == [14.0, 17.0, None] and set(line.y) == {0.8, None}
    figure = t["robust_accuracy (attack figure)"]
    assert list(figure.x) == [14.0, 17.0, None] and list(figure.y)[:2] == [0.71, 0.71]
    assert line.yaxis == figure.yaxis and axis_of(fig, figure).title.text == "attack figure"
    assert "SLO: recovers" not in t  # recovery_time has no line on a chart of SLIs
    assert not any("probe" in name for name in t)
    fault_shades = [s for s in fig.layout.shapes if s.name == "fault: slow-fs"]
    attack_shades = [s for s in fig.layout.shapes if s.name == "attack: fgsm"]
    panels = sum(1 for k in fig.layout if k.startswith("yaxis"))
    assert len(fault_shades) == len(attack_shades) == panels  # shaded on every panel
    assert (fault_shades[0].x0, fault_shades[0].x1) == (8.01, 13.02)
    assert (attack_shades[0].x0, attack_shades[0].x1) == (14.0, 17.0)


def test_measured_series_match_the_journal(tmp_path: Path) -> None:
    data = run_data(tmp_path)
    t = traces(timeline_figure(data))
    rows = data["windows"]
    assert list(t["p95"].y) == [r["p95_ms"] for r in rows]
    assert t["p95"].x[0] == 0.5  # a window is drawn at its midpoint
    assert list(t["error rate"].y) == [100 * r["error_rate"] for r in rows]
    timeouts = max(t["errors: timeout"].y)
    assert timeouts > 0 and timeouts == pytest.approx(max(t["error rate"].y))  # the only kind
    assert list(t["fallback rate"].y)[10] == 100.0  # every answer in the fault was a fallback


def test_an_all_zero_series_sits_on_the_axis(tmp_path: Path) -> None:
    data = run_data(tmp_path, fail_share=0.0, extras=False)
    data["slos"] = []
    fig = timeline_figure(data)
    t = traces(fig)
    assert set(t["error rate"].y) == {0.0}
    assert list(axis_of(fig, t["error rate"]).range) == [0.0, 1.08]  # not plotly's [-1, 1]
    data["slos"] = [
        s for s in run_data(tmp_path, fail_share=0.0)["slos"] if s["name"] == "availability"
    ]
    fig = timeline_figure(data)
    low, high = axis_of(fig, traces(fig)["error rate"]).range
    assert low == 0.0 and 5.0 < high < 6.0  # the 5 % line stays in view


def test_attack_table_is_summarised_and_the_raw_vectors_are_attached(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    data = render_run(tmp_path)
    raw = data["attacks"][0]["details"]
    html = (tmp_path / "report.html").read_text()
    table = html[
        html.index('<table id="attacks">') : html.index(
            "</table>", html.index('<table id="attacks">')
        )
    ]
    assert "robust_accuracy 71.0 %" in table and "attack_success_rate 29.0 %" in table
    assert "queries 300" in table and "3 × http_429, 1 × timeout" in table
    assert (
        "14.0–17.0 s" in table
        and "in attacks.json: rows (12 items), adversarial (12 items)" in table
    )
    first = raw["examples"][0]
    assert f"row {first['row']}, label 1, adversarial_prediction 0; moved x" in table
    assert table.count("<li>row ") == 3 and "examples (5)" in table  # a few shown, all attached
    assert str(raw["adversarial"][-1][0]) not in table  # no raw vector on the page
    assert 'href="attacks.json"' in html
    attached = json.loads((tmp_path / "attacks.json").read_text())
    assert attached[0]["details"]["adversarial"] == raw["adversarial"]
    write_journal(tmp_path / "journal.jsonl", extras=False)
    render_run(tmp_path)  # rendered again without attacks: no stale attachment, no link
    assert not (tmp_path / "attacks.json").exists()
    assert "attacks.json" not in (tmp_path / "report.html").read_text()


def test_verdict_rows_are_shaded_and_attack_figures_named(tmp_path: Path) -> None:
    data = run_data(tmp_path)
    data["slos"].append(ATTACK_VERDICT)
    data["slos"].append({**ATTACK_VERDICT, "name": "no data", "passed": None, "measured": None})
    html = report_html(data)
    assert '<tr class="row-FAIL"><td>p95 under 250 ms</td>' in html
    assert '<tr class="row-PASS"><td>availability</td>' in html
    assert '<tr class="row-NODATA"><td>no data</td>' in html
    assert "attack figure robust_accuracy during fgsm was 0.71" in html
    assert "probe.robust_accuracy" not in html


def test_a_probe_slo_is_drawn_on_the_probe_panel(tmp_path: Path) -> None:
    data = run_data(tmp_path, extras=False)
    for i, row in enumerate(data["windows"]):
        row["probes"] = {"queue": float(i)} if i >= 2 else {}  # not measured before 2 s
    data["slos"] = [
        {"name": "short queue", "expect": "max(probe.queue) < 100 during recovery",
         "passed": True, "measured": 19.0, "unit": "", "threshold": 100.0, "scope": "recovery"},
    ]  # fmt: skip
    fig = timeline_figure(data)
    t = traces(fig)
    assert list(t["probe.queue"].y)[:3] == [None, None, 2.0]  # a gap, not a 0
    line = t["SLO: short queue"]
    assert list(line.x) == [13.02, 20.0, None] and line.yaxis == t["probe.queue"].yaxis
    assert axis_of(fig, line).title.text == "probe value"


def test_only_shares_are_shown_as_percentages() -> None:
    rows = attack_rows(
        [{"attack": "flood", "metrics": {"flood_rate": 13.9, "rate_limited_share": 0.25,
          "clean_accuracy_drop": -0.02, "flood_requests": 118.0}, "details": {"errors": {}}}]
    )  # fmt: skip
    assert rows[0].rates == [("rate_limited_share", "25.0 %"), ("clean_accuracy_drop", "-2.0 %")]
    assert rows[0].counts == [("flood_rate", "13.9"), ("flood_requests", "118")]
    assert rows[0].errors == "none"


def test_a_broken_attack_is_shown_with_its_error_and_window(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl", extras=False)
    broke = {"t": T0 + 12, "event": "attack.error", "attack": "hsj", "type": "evasion.hopskipjump",
             "error": "ConnectError: connection refused", "start": T0 + 10, "end": T0 + 12}  # fmt: skip
    with (tmp_path / "journal.jsonl").open("a") as f:
        f.write(json.dumps(broke) + "\n")
    data = render_run(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert (
        '<tr class="attack-cell row-FAIL"><td>hsj<br><strong>broke:</strong> ConnectError' in html
    )
    assert "10.0–12.0 s" in html
    shades = [s for s in timeline_figure(data).layout.shapes if s.name == "attack: hsj"]
    assert shades and (shades[0].x0, shades[0].x1) == (10.0, 12.0)


def test_the_attachment_is_masked_like_every_other_sink(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    result = result_from_journal(read_journal(tmp_path / "journal.jsonl"))
    result["attacks"][0]["details"]["stopped"] = "token s3cr3t-t0ken rejected"
    journal = Journal(tmp_path / "journal.jsonl", secrets=["s3cr3t-t0ken"])
    write_reports(tmp_path, result, journal)
    journal.close()
    attached = (tmp_path / "attacks.json").read_text()
    assert "s3cr3t-t0ken" not in attached and "token *** rejected" in attached
    assert "s3cr3t-t0ken" not in (tmp_path / "report.html").read_text()


def test_a_stall_is_drawn_where_the_verdicts_count_it() -> None:
    """Windows no request started or moved in leave no record; the chart must still show
    them, at the error rate the SLIs give them: 100 % for a hang that ended in timeouts,
    0 for a pause the stuck requests came through (slow, not failed)."""
    from harness.core.windows import Window
    from harness.engine.phases import RunTimeline, Span
    from harness.engine.record.result import window_rows

    timeline = RunTimeline(run=Span("run", "run", 10.0, 16.0))
    for stuck, expected in (({"failures": {"timeout": 4}}, 1.0), ({}, 0.0)):
        after = {"carried_failed": 4} if stuck else {"carried_ok": 4}
        windows = [Window(index=10, size=1.0, requests=4, **stuck), Window(index=13, size=1.0, requests=4, **after),
                   Window(index=14, size=1.0, requests=4)]
        rows = window_rows(windows, 10.0, timeline)
        assert [(r["t_s"], r.get("stalled", False)) for r in rows] == [
            (0.0, False), (1.0, True), (2.0, True), (3.0, False), (4.0, False)]
        assert [r["error_rate"] for r in rows if r.get("stalled")] == [expected, expected]
        assert [r["throughput"] for r in rows if r.get("stalled")] == [0.0, 0.0]
        fig = timeline_figure({"scenario": "stall", "status": "failed", "windows": rows, "timeline": {
            "run": {"start_s": 0.0, "end_s": 6.0}, "baseline": None, "recovery": None, "faults": []}, "slos": []})
        marks = traces(fig)["stalled: nothing moved"]
        assert [y for y in marks.y if y is not None] == [100.0 * expected] * 2
