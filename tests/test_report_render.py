"""Reports rendered from journal.jsonl: the full page and summary of a finished run, a
crashed run's partial journal, the resilience score, the runner's write_reports call, and
`aftershock report RUN_DIR`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from report_journals import write_journal

from harness.core.windows import Window
from harness.engine.journal import Journal, read_journal
from harness.engine.record.events import journal_window, windows_from_events
from harness.engine.record.replay import result_from_journal
from harness.engine.record.score import resilience_score
from harness.reports.writers import render_run, write_reports

ROOT = Path(__file__).resolve().parents[1]


def test_window_events_are_additive_and_round_trip(tmp_path: Path) -> None:
    j = Journal(tmp_path / "journal.jsonl")
    a, b = Window(index=10, size=1.0), Window(index=10, size=1.0)
    for w, us in ((a, 1000), (b, 3000)):
        w.requests += 2
        w.latency.record_value(us)
        w.failures["http_500"] = 1
        journal_window(j, w)
    j.close()
    (w,) = windows_from_events(read_journal(tmp_path / "journal.jsonl"))
    assert w.requests == 4 and w.failed == 2 and w.latency.total_count == 2
    assert w.latency.get_max_value() >= 2990


def test_journal_alone_gives_timeline_windows_verdicts_and_extras(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    r = result_from_journal(read_journal(tmp_path / "journal.jsonl"))
    assert r["status"] == "failed" and r["exit_code"] == 1
    (f,) = r["timeline"]["faults"]
    assert (f["injected_at_s"], f["reverted_at_s"]) == (8.01, 13.02)
    assert r["timeline"]["baseline"] == {"start_s": 0.0, "end_s": 5.0}
    assert r["timeline"]["recovery"]["start_s"] == 13.02
    assert len(r["windows"]) == 20 and r["windows"][0]["t_s"] == 0.0
    fault_row = r["windows"][10]
    assert (
        fault_row["p95_ms"] > 300 and fault_row["fallback_rate"] == 1.0
    )  # slowed by 300 ms, all fallbacks
    assert r["windows"][2]["p95_ms"] < 31
    assert r["slis"]["slow-fs"]["p95(latency)"] > 300 > r["slis"]["baseline"]["p95(latency)"]
    assert r["recovery_time_s"] == {"recovers": 1.5}
    assert (
        r["attacks"][0]["metrics"]["robust_accuracy"] == 0.71 and r["attacks"][0]["start_s"] == 14.0
    )
    assert r["drift"][0]["magnitude"] == 0.31
    assert r["environment"]["python"] == "3.11.9"


def test_resilience_score_is_the_weighted_share_of_slos_met() -> None:
    slos = [
        {"passed": True, "weight": 3},
        {"passed": False},
        {"passed": None, "weight": 2},
        {"passed": True},
    ]
    s = resilience_score(slos)
    assert s.percent == 100 * 4 / 7 and (s.met, s.total) == (2, 4)
    assert s.worked() == "4 × 100 % / 7 = 57.1 %"
    assert resilience_score([]).percent is None


def test_report_page_is_self_contained_and_complete(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    render_run(tmp_path)
    html = (tmp_path / "report.html").read_text()
    markup = re.sub(r"<script>.*?</script>", "", html, flags=re.DOTALL)  # plotly.js names URLs in code
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//""", markup
    )  # nothing loaded from a network (the browser test watches the requests too)
    assert not re.search(r"<script[^>]*\bsrc", html) and html.count("Plotly.newPlot") == 1
    assert 'id="timeline"' in html and html.count("plotly.js v") == 1  # inlined once
    assert "75.0 %" in html and "score = Σ(weightᵢ × successᵢ) / Σ weightᵢ" in html
    for table in ("verdicts", "faults", "times", "drift", "attacks", "environment"):
        assert f'id="{table}"' in html, table
    assert "attack_success_rate" in html and "psi" in html and "latency=0.3" in html
    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## aftershock: demo-scn — FAILED")
    assert "**Resilience score: 75.0 %** (2 of 3 SLOs met" in md
    assert (
        "| p95 under 250 ms | `p95(latency) < 250ms during slow-fs` | " in md and "| FAIL |" in md
    )
    assert "| recovers | recovery | 1.50 s |" in md
    result = json.loads(
        (tmp_path / "result.json").read_text()
    )  # rebuilt from the journal: compare can read it
    assert result["slis"]["run"]["throughput"] == 40.0


def test_crashed_run_renders_as_incomplete(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl", crash_at=11)  # killed mid-fault, last line torn
    data = render_run(tmp_path)
    assert data["status"] == "incomplete" and data["exit_code"] is None
    assert len(data["windows"]) == 11 and data["slos"] == []
    (f,) = data["timeline"]["faults"]
    assert f["reverted_at_s"] is None
    html = (tmp_path / "report.html").read_text()
    assert "INCOMPLETE" in html and "not reverted" in html and 'id="timeline"' in html


def test_write_reports_lays_the_runner_result_over_the_journal(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    result = result_from_journal(read_journal(tmp_path / "journal.jsonl"))
    for k in ("drift", "attacks"):
        result.pop(k)
    result.update(description="what the runner knows", status="passed", exit_code=0)
    journal = Journal(tmp_path / "journal.jsonl", secrets=["what the runner"])
    write_reports(tmp_path, result, journal)
    journal.close()
    html = (tmp_path / "report.html").read_text()
    assert "*** knows" in html and "what the runner" not in html  # redacted
    assert "PASSED" in html and 'id="attacks"' in html  # result wins; the journal adds its extras
    assert json.loads((tmp_path / "result.json").read_text())["status"] == "passed"


def test_report_command_renders_again_and_rejects_a_folder_without_a_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_journal(run / "journal.jsonl", crash_at=5)
    proc = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "report", str(run)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert (
        "demo-scn: incomplete" in proc.stdout
        and (run / "report.html").is_file()
        and (run / "summary.md").is_file()
    )
    proc = subprocess.run(
        check=False,
        args=[sys.executable, "-m", "harness.cli", "report", str(tmp_path / "empty")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (
        proc.returncode == 2
        and "no journal.jsonl or result.json" in proc.stderr
        and "Traceback" not in proc.stderr
    )


def test_summary_sums_up_attacks_without_their_raw_vectors(tmp_path: Path) -> None:
    write_journal(tmp_path / "journal.jsonl")
    vector = [0.123456789, 0.987654321, 0.555555555]
    attacks = [
        {"attack": "hsj", "type": "evasion.hopskipjump", "start": 1_700_000_014.0, "end": 1_700_000_016.0,
         "metrics": {"samples": 4.0, "attack_success_rate": 0.25, "queries": 812.0},
         "details": {"stopped": "query budget of 812 used up", "errors": {"http_403": 12, "timeout": 1},
                     "adversarial": [vector] * 4, "examples": [{"original": vector, "adversarial": vector}]}},
        {"attack": "fuzz", "type": "abuse.fuzz", "start": 1_700_000_002.0, "end": 1_700_000_007.0,
         "metrics": {"fuzz_cases": 77.0, "server_errors": 2.0, "crashes": 1.0},
         "details": {"crash_kinds": {"reset": 1},
                     "failures": ["http_500: boom on FuzzCase(truncated, 9 bytes: b'{\"inputs|')",
                                  "reset: RemoteProtocolError() on FuzzCase(nested 9 deep, 18 bytes: b'[[[[')"]}},
    ]  # fmt: skip
    with (tmp_path / "journal.jsonl").open("a") as f:
        for a in attacks:
            f.write(json.dumps({"t": a["end"], "event": "attack.result", **a}) + "\n")
    render_run(tmp_path)
    md = (tmp_path / "summary.md").read_text()
    assert "| attack | type | window | figures | errors |" in md
    assert ("| hsj | evasion.hopskipjump | 14–16 s | samples 4, attack_success_rate 0.25, queries 812 | "
            "http_403 ×12; timeout ×1; stopped: query budget of 812 used up |") in md  # fmt: skip
    assert "| fuzz | abuse.fuzz | 2–7 s | fuzz_cases 77, server_errors 2, crashes 1 | reset ×1; 2 distinct failures (http_500, reset) |" in md
    assert "0.1234" not in md and "FuzzCase" not in md and "inputs" not in md  # no vectors, no request bodies
    assert "| fgsm | evasion |" in md and "robust_accuracy 0.71" in md  # an attack without details: errors "none"
