"""No `${env:NAME}` secret survives in anything a run writes, in any escaping.

The property test drives the real sink writers (journal, result.json, report.html,
summary.md, load-config.json, the verdict table on stdout) with arbitrary secrets:
one character, non-ASCII, quotes, backslashes, HTML specials. Each secret is placed
between two markers, so a leak is found in any escaping (raw, JSON, HTML, URL) even
when the secret is a single letter that the page holds elsewhere for other reasons.
JSON sinks are checked harder: every document must still parse, and no string in it
may contain the secret. The end-to-end test runs a real scenario with a secret from
the environment and reads every file of the run folder, stdout, stderr and JUnit XML.
"""

from __future__ import annotations

import asyncio
import html
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import markupsafe
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.cli import _print_verdicts, out
from harness.engine.journal import Journal, read_journal
from harness.engine.load.config import LoadConfig
from harness.engine.load.process import LoadProcess
from harness.engine.load.reference_server import ReferenceServer
from harness.engine.redaction import MASK, SCHEMA_KEY, Redactor
from harness.reports.writers import write_reports
from tests.tiny_target import write_dataset

LEFT, RIGHT = "\u27e6", "\u27e7"  # markers around every placed secret

secrets = st.text(min_size=1, max_size=12).filter(
    lambda s: LEFT not in s and RIGHT not in s and s != MASK  # "***" cannot be told from its mask
)
hard_secrets = st.sampled_from(['"', "\\", "&", "<", ">", "'", "é", "1", "e", "a", "\u2028", "&amp;", "*", "**"])


def escapings(text: str) -> set[str]:
    """Every form a sink could write `text` in."""
    dumped = json.dumps(text)[1:-1]
    return {
        text,
        dumped,
        json.dumps(text, ensure_ascii=False)[1:-1],
        html.escape(text),
        html.escape(text, quote=False),
        str(markupsafe.escape(text)),  # what Jinja's autoescape writes
        str(markupsafe.escape(dumped)),
        quote(text),
        quote_plus(text),
    }


def placed(secret: str) -> str:
    return f"{LEFT}{secret}{RIGHT}"


def strings_in(value: Any) -> list[str]:
    """Every string value, and every key that is data (the harness's own keys are kept)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        keys = [k for k in value if not SCHEMA_KEY.fullmatch(k)]
        return [*keys, *(s for v in value.values() for s in strings_in(v))]
    if isinstance(value, list):
        return [s for v in value for s in strings_in(v)]
    return []


def a_result(secret: str) -> dict[str, Any]:
    """A result.json as the runner builds it, with the secret in every kind of field."""
    p = placed(secret)
    return {
        "schema": 1,
        "scenario": "secrets",
        "description": f"token {p} in the description",
        "file": f"/tmp/{p}.yaml",
        "run_id": "20260101T000000.000000Z",
        "status": "failed",
        "exit_code": 1,
        "message": f"internal error: cannot reach http://127.0.0.1:1/?key={p}",
        "quick": True,
        "started_at": "2026-01-01T00:00:00+00:00",
        "timeline": {
            "run": {"start_s": 0.0, "end_s": 4.0},
            "baseline": {"start_s": 0.0, "end_s": 1.0},
            "faults": [
                {
                    "name": "slow",
                    "type": "network.latency",
                    "planned_at_s": 1.0,
                    "planned_duration_s": 1.0,
                    "injected_at_s": 1.0,
                    "reverted_at_s": 2.0,
                    "inject_skew_s": 0.001,
                    "revert_skew_s": 0.002,
                    "params": {"header": f"Bearer {p}", f"X-{p}": [p, {"nested": p}]},
                    "error": None,
                }
            ],
        },
        "slos": [
            {
                "name": f"slo {p}",
                "expect": "p95(latency) < 250ms",
                "weight": 1.0,
                "passed": False,
                "measured": 300.0,
                "unit": "ms",
                "threshold": 250.0,
                "scope": "run",
                "detail": f"p95 was 300 ms while {p} was slow",
            }
        ],
        "recovery_time_s": {f"slo {p}": 1.5},
        "detection_time_s": {},
        "attacks": [{"attack": "fuzz", "case": p}],
        "environment": {"argv": ["aftershock", "run", p], "path": Path(p)},
    }


def check_text_sink(name: str, text: str, secret: str) -> None:
    for form in escapings(placed(secret)):
        assert form not in text, f"{name} holds the secret as {form!r}"
    assert any(form in text for form in escapings(placed(MASK))), f"{name} lost the masked value"


def check_json_sink(name: str, documents: list[Any], raw: str, secret: str) -> None:
    for doc in documents:
        for s in strings_in(doc):
            # markers around the secret: a secret such as "*" is also a piece of the mask
            assert placed(secret) not in s, f"{name}: {s!r} holds the secret"
    check_text_sink(name, raw, secret)


@settings(
    max_examples=500,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(secret=st.one_of(hard_secrets, secrets), other=st.one_of(st.none(), secrets))
def test_no_sink_holds_a_secret_in_any_escaping(tmp_path_factory, secret: str, other: str | None) -> None:
    run_dir = tmp_path_factory.mktemp("run")
    names = [secret] if other is None else [secret, other]
    journal = Journal(run_dir / "journal.jsonl", names)
    p = placed(secret)
    journal.write("run.started", scenario="secrets", file=f"/tmp/{p}.yaml")
    journal.write("process.started", name="target", argv=["python", "-m", "srv", f"--key={p}"])
    journal.write("probe.sample", probe="auth", headers={"Authorization": f"Bearer {p}"}, value=1.0)
    journal.write("run.error", error=ValueError(f"bad key {p}"), where=Path(p), pair=(p, 2))
    result = a_result(secret)
    write_reports(run_dir, result, journal)
    journal.close()

    raw = (run_dir / "journal.jsonl").read_text(encoding="utf-8")
    events = read_journal(run_dir / "journal.jsonl")
    assert len(events) == len(raw.splitlines()) == 4, "a journal line no longer parses"
    check_json_sink("journal.jsonl", events, raw, secret)
    raw = (run_dir / "result.json").read_text(encoding="utf-8")
    check_json_sink("result.json", [json.loads(raw)], raw, secret)
    check_text_sink("report.html", (run_dir / "report.html").read_text(encoding="utf-8"), secret)
    check_text_sink("summary.md", (run_dir / "summary.md").read_text(encoding="utf-8"), secret)

    load = LoadProcess(
        LoadConfig(
            target_url="http://127.0.0.1:1",
            protocol="http-json",
            protocol_options={"path": f"/predict?key={p}"},
            dataset=f"/data/{p}.npz",
            duration=1,
        ),
        workdir=run_dir / "load",
        redactor=journal.redactor,
    )
    load.workdir.mkdir()
    child_reads = load.write_child_config()
    raw = load.config_path.read_text(encoding="utf-8")
    check_json_sink("load-config.json", [json.loads(raw)], raw, secret)
    assert child_reads != load.config_path and not child_reads.is_relative_to(run_dir)
    assert stat.S_IMODE(child_reads.stat().st_mode) == 0o600
    assert json.loads(child_reads.read_text(encoding="utf-8"))["load"]["dataset"] == f"/data/{p}.npz"
    asyncio.run(load.stop())
    assert not child_reads.exists(), "the child's unmasked config outlived the load"

    with out.capture() as captured:
        _print_verdicts(journal.redactor.value(a_result(secret)))
    check_text_sink("stdout", captured.get(), secret)


def test_redactor_masks_values_not_text() -> None:
    redactor = Redactor(['"', "1"])
    assert redactor.value({"a": 'x"y', "n": 1, "l": [1.5, "21"]}) == {"a": "x***y", "n": 1, "l": [1.5, "2***"]}
    assert Redactor([]).value({"k": object}) == {"k": object}  # no secrets: untouched
    keys = Redactor(["e"]).value({"expect": "e", "p95(latency)": 1, "slow store": 2})
    assert keys == {"expect": "***", "p95(latency)": 1, "slow stor***": 2}  # data keys only


SECRET = 's3cr"t&\\é<b>'


@pytest.mark.parametrize("secret", ["*", "**", "a*", "e"])
def test_masking_twice_changes_nothing(secret: str) -> None:
    # the journal masks a value, and the report masks what it reads from the journal again
    redactor = Redactor([secret])
    once = redactor.text(f"x {secret} y")
    assert once == f"x {MASK} y" and redactor.text(once) == once


def test_a_validation_error_does_not_quote_a_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.engine.scenario.loader import ScenarioError, parse_scenario

    monkeypatch.setenv("AFTERSHOCK_TEST_SECRET", SECRET)
    text = """\
name: s
target: {url: "http://127.0.0.1:9/", model: m}
load: {users: 1, duration: "${env:AFTERSHOCK_TEST_SECRET}"}
slos: [{name: a, expect: availability >= 99%}]
"""
    with pytest.raises(ScenarioError) as err:
        parse_scenario(text, "s.yaml")
    assert "load.duration" in str(err.value) and MASK in str(err.value) and SECRET not in str(err.value)


def test_a_real_run_leaks_its_secret_nowhere(tmp_path: Path) -> None:
    write_dataset(tmp_path)
    scenario = tmp_path / "leak.yaml"
    with ReferenceServer() as srv:
        scenario.write_text(
            f"""\
name: leak
description: "the token is ${{env:AFTERSHOCK_TEST_SECRET}}"
target: {{url: {srv.url}, protocol: oip-v2, model: m}}
load: {{users: 2, duration: 2s, window: 0.5s, data: {{dataset: rows.npz}}}}
probes:
  - name: auth
    type: http
    url: "{srv.url}/v2/health/ready"
    headers: {{Authorization: "Bearer ${{env:AFTERSHOCK_TEST_SECRET}}"}}
slos:
  - name: "failing for ${{env:AFTERSHOCK_TEST_SECRET}}"
    expect: error_rate >= 50%
  - name: available
    expect: availability >= 99%
""",
            encoding="utf-8",
        )
        env = {**os.environ, "AFTERSHOCK_TEST_SECRET": SECRET}
        junit = tmp_path / "junit.xml"
        cli = subprocess.run(
            [sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(tmp_path / "reports")],
            check=False, env=env, capture_output=True, text=True, timeout=180,
        )
        tests = subprocess.run(
            [sys.executable, "-m", "pytest", str(scenario), "-v", "-p", "no:cacheprovider",
             f"--junitxml={junit}", f"--aftershock-output={tmp_path / 'reports'}",
             "--rootdir", str(tmp_path)],
            check=False, env=env, capture_output=True, text=True, timeout=180, cwd=tmp_path,
        )
    assert cli.returncode == 1, cli.stdout + cli.stderr  # that SLO fails (no request errs): its name is shown
    assert tests.returncode == 1, tests.stdout + tests.stderr
    texts = {"cli stdout": cli.stdout, "cli stderr": cli.stderr, "pytest output": tests.stdout + tests.stderr}
    texts["junit"] = junit.read_text(encoding="utf-8")
    run_files = [f for f in (tmp_path / "reports").rglob("*") if f.is_file()]
    assert {f.name for f in run_files} >= {"journal.jsonl", "result.json", "report.html", "summary.md", "load-config.json"}
    for f in run_files:
        texts[str(f.relative_to(tmp_path))] = f.read_bytes().decode("utf-8", "replace")
    for name, text in texts.items():
        for form in escapings(SECRET):
            assert form not in text, f"{name} holds the secret as {form!r}"
    assert "failing for ***" in cli.stdout and "failing for ***" in texts["junit"]
