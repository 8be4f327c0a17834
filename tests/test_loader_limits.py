"""Bounded input: the loader refuses, with file:line:col, what would hang, blow up or break
a run (huge files, alias bombs, NaN/infinite/negative/huge numbers, long names), and
`validate` never answers with a traceback."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.engine.scenario.loader import (
    MAX_FILE_BYTES,
    ScenarioError,
    load_scenario,
    parse_scenario,
)

ROOT = Path(__file__).resolve().parents[1]
BASE = """\
name: limits
seed: 1
target: {url: "http://127.0.0.1:9", protocol: oip-v2, model: m}
dependencies:
  store: {upstream: "127.0.0.1:9"}
jobs:
  trainer: {command: [sleep, "1"]}
load: {users: 2, duration: 10s, window: 0.5s, data: {dataset: rows.npz}}
timeline:
  faults:
    - {name: slow, type: network.latency, dependency: store, at: 1s, duration: 2s, latency: 100ms}
slos:
  - {name: available, expect: availability >= 99%}
"""
WHERE = re.compile(r"^x\.yaml:(\d+):(\d+): ")


def base() -> dict[str, Any]:
    return yaml.safe_load(BASE)


def refused(doc: dict[str, Any] | str) -> str:
    text = doc if isinstance(doc, str) else yaml.safe_dump(doc, sort_keys=False)
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "x.yaml")
    message = str(info.value)
    assert WHERE.match(message), message  # every problem says where
    return message


def fault(**params: Any) -> dict[str, Any]:
    doc = base()
    doc["timeline"]["faults"][0] = {"name": "f", "at": "1s", "duration": "2s", **params}
    return doc


def test_the_base_document_is_accepted() -> None:
    parse_scenario(BASE, "x.yaml")


@pytest.mark.parametrize("field, value", [("at", ".nan"), ("duration", ".nan"), ("at", ".inf"),
                                          ("duration", "-.inf")])
def test_fault_times_that_are_not_finite_are_refused(field: str, value: str) -> None:
    text = BASE.replace(f"{field}: {'1s' if field == 'at' else '2s'}", f"{field}: {value}")
    message = refused(text)
    assert f"timeline.faults[0].{field}" in message and WHERE.match(message).group(1) == "11"


@pytest.mark.parametrize("value", [float("nan"), float("inf"), "nan", "inf"])
def test_latencies_and_load_durations_must_be_finite(value: Any) -> None:
    assert "timeline.faults[0].latency" in refused(fault(type="network.latency", dependency="store", latency=value))
    doc = base()
    doc["load"]["duration"] = value
    assert "load.duration" in refused(doc)


@pytest.mark.parametrize("seed", [-1, 2**32, 10**30])
def test_seed_out_of_range(seed: int) -> None:
    doc = base()
    doc["seed"] = seed
    assert "seed" in refused(doc)


@pytest.mark.parametrize("value", [float("inf"), "inf", float("nan"), "nan", 1e300])
def test_slo_weight_must_be_finite_and_sane(value: Any) -> None:
    doc = base()
    doc["slos"][0]["weight"] = value
    assert "slos[0].weight" in refused(doc)


def test_huge_reschedule_after_is_refused() -> None:
    doc = fault(type="gpu.preemption", process="trainer", reschedule_after="1000000000h")
    assert "reschedule_after" in refused(doc)


def test_400_digit_numbers_are_refused_not_a_traceback() -> None:
    doc = base()
    doc["timeline"]["faults"][0]["duration"] = 10**400
    assert "400" in refused(doc) or "digit" in refused(doc)
    assert "duration" in refused(BASE.replace("duration: 2s", f"duration: {'1' + '0' * 400}s"))
    assert "rate" in refused(fault(type="network.bandwidth", dependency="store", rate="9" * 400 + "KB"))
    assert "rate" in refused(fault(type="network.bandwidth", dependency="store", rate=10**100))


def test_numbers_in_free_form_fields_are_bounded_too() -> None:
    doc = base()
    doc["target"]["options"] = {"threshold": float("nan")}
    assert "target.options.threshold" in refused(doc)


def test_names_are_bounded() -> None:
    for where in ("name", "fault", "dependency", "job"):
        doc = base()
        long = "a" * 300
        if where == "name":
            doc["name"] = long
        elif where == "fault":
            doc["timeline"]["faults"][0]["name"] = long
        elif where == "dependency":
            doc["dependencies"][long] = doc["dependencies"].pop("store")
        else:
            doc["jobs"][long] = doc["jobs"].pop("trainer")
        assert "300 characters" in refused(doc), where


def test_a_list_as_probe_type_is_refused() -> None:
    doc = base()
    doc["probes"] = [{"type": ["http"], "name": "p", "url": "http://127.0.0.1:9/"}]
    assert "probes[0].type" in refused(doc)


def test_alias_bomb_is_refused_before_it_expands() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]  # 9**9 values
    message = refused("\n".join(lines) + "\n")
    assert "expands to more than" in message


def test_file_over_the_size_limit_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_text(BASE + "# padding\n" * (MAX_FILE_BYTES // 10 + 1), encoding="utf-8")
    with pytest.raises(ScenarioError, match=r"big\.yaml:1:1: the file is \d+ bytes, over the"):
        load_scenario(big)


def test_validate_cli_exits_2_without_traceback(tmp_path: Path) -> None:
    cases = {
        "nan.yaml": BASE.replace("at: 1s", "at: .nan"),
        "longname.yaml": BASE.replace("name: limits", "name: " + "n" * 300),
        "probe.yaml": BASE + "probes:\n  - {type: [http], name: p}\n",
        "digits.yaml": BASE.replace("duration: 2s", "duration: " + "9" * 400),
    }
    for name, text in cases.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", *sorted(cases)], check=False, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stdout + proc.stderr
    for name in cases:
        assert re.search(rf"^{re.escape(name)}:\d+:\d+: ", proc.stderr, re.MULTILINE), (name, proc.stderr)


def test_a_jsonpath_query_is_refused_with_the_jmespath_to_write() -> None:
    text = BASE + (
        "probes:\n"
        "  - {name: p, type: http, url: 'http://127.0.0.1:9/', measure: json, json_path: $.model.score}\n"
        "  - {name: f, type: file, path: p.jsonl, field: $.metrics.val_acc}\n"
    )
    message = refused(text)
    probe_line = BASE.count("\n") + 2
    assert f"x.yaml:{probe_line}:" in message, message
    assert "JSONPath" in message and "write the JMESPath 'model.score'" in message
    assert "'metrics.val_acc'" in message
    parse_scenario(text.replace("$.", ""), "x.yaml")  # the JMESPath form loads
