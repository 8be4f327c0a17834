"""A fuzzer over the scenario schema: documents generated from the model's own structure
(every field of Scenario and of each fault family's params) set to random and edge
values. `validate` must never answer with a traceback, and a scenario it accepts must
start and run without an internal error (exit 4) and without hanging.

Validation runs on ~200 documents; a handful of the accepted ones run for real (the CLI
in a child process, the embedded proxy, Locust) against a local OIP v2 server, bounded
by a SIGINT after a few seconds (a fuzzed load may be days long)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo
from tiny_target import write_dataset

from harness.core.registry import fault_types
from harness.engine.load.reference_server import ReferenceServer
from harness.engine.scenario.loader import ScenarioError, parse_scenario
from harness.engine.scenario.model import Scenario

ROOT = Path(__file__).resolve().parents[1]
VALIDATE_EXAMPLES = 200
RUN_SAFE_EXAMPLES = 100  # more, with run-safe changes only: the runnable ones come from these
RUNS = 4  # accepted scenarios run for real
RUN_FOR_S = 15.0  # then SIGINT: the run must end (exit 130) within HANG_S
HANG_S = 60.0

BASE = """\
name: fuzz
seed: 3
target: {url: "http://127.0.0.1:9", protocol: oip-v2, model: m}  # the server's URL in runs
dependencies:
  store: {upstream: "127.0.0.1:9"}
load: {users: 2, duration: 3s, window: 0.5s, data: {dataset: DATASET}}
timeline:
  faults:
    - {name: slow, type: network.latency, dependency: store, at: 0.5s, duration: 1s, latency: 50ms}
slos:
  - {name: available, expect: availability >= 50%}
"""

EDGES: list[Any] = [
    math.nan, math.inf, -math.inf, -1, 0, 1, -0.0, 0.5, 3, 2**53 + 1, 2**64, 10**400, 1e308, -1e308,
    "", " ", "a" * 300, "9" * 400, "9" * 400 + "KB", "1e400s", ".nan", "nan", "inf", "-1s", "0s", "0.1s",
    "1s", "2s", "250ms", "7d", "9999h", "50%", "200%", "-5%", "10KB", "1GiB", True, False, None, [], {},
    ["x"], {"a": 1}, [1, 2], "http://127.0.0.1:9", "127.0.0.1:9", "store", "target", "x", "{deps[store]}",
    "p95(latency) < 1ms", "availability >= 999%",
]
PLAUSIBLE: list[Any] = [1, 2, 3, 10, 0.5, 0.1, "1s", "0.5s", "2s", "100ms", "50%", "10KB", "store", "target",
                        "fuzz-b", True, False]
# a required param of a fault family, by its name: what makes an entry of that type valid
REQUIRED = {"dependency": "store", "process": "target", "rate": "10KB", "bytes": "1KB", "average_size": 100,
            "delay": "50ms", "latency": "50ms"}
NUMBER_EDGES: list[Any] = [math.nan, math.inf, -math.inf, -1, 0, 2**53 + 1, 2**64, 10**400, 1e308, "nan", "-inf"]
BY_KIND: dict[str, st.SearchStrategy[Any]] = {
    "duration": st.one_of(
        st.sampled_from([10**400, math.nan, math.inf, -1, "9" * 400, "1" + "0" * 400 + "s", "1e400s", ".nan",
                         "-1s", "9999999h", 1e12, "0s", "100ms", "1s"]),
        st.sampled_from([10**400, math.nan, math.inf, "nan", 1e300]),
        st.from_regex(r"\d{1,5}(\.\d{1,3})?(us|ms|s|m|h)", fullmatch=True)),
    "size": st.sampled_from(["9" * 400 + "KB", "9" * 40 + "GiB", 10**100, math.nan, -1, "1GiB", "10KB", "0KB", 2**60]),
    "percent": st.sampled_from([*NUMBER_EDGES, "200%", "-5%", "nan%", 0.5, "50%", "1" + "0" * 400 + "%"]),
    "number": st.one_of(st.sampled_from(NUMBER_EDGES), st.floats(), st.integers()),
    "text": st.one_of(st.text(max_size=20), st.sampled_from(["", "a" * 300, "x", "fuzz-b", "{deps[nope]}", 5])),
    "container": st.sampled_from([[], {}, ["x"], [1], {"a": 1}, [{}], "x", [math.nan], {"a": [10**400]},
                                  [{"type": ["http"], "name": "p"}], [{"type": "http", "name": "p", "url": 5}],
                                  [{"type": {"a": 1}}], ["p95(latency) < 1ms"]]),
}
WILD = st.one_of(st.sampled_from(PLAUSIBLE), st.sampled_from(EDGES), st.text(max_size=12),
                 st.lists(st.sampled_from(EDGES[:12]), max_size=3))


def values_for(info: FieldInfo) -> st.SearchStrategy[Any]:
    """Values for one field: mostly edge cases of its own kind, some of any kind."""
    text = f"{info.annotation!r} {info.metadata!r}"
    kind = next((k for k, marker in (("duration", "parse_duration"), ("size", "parse_size"),
                                     ("percent", "parse_percent"), ("container", "list["), ("container", "dict["),
                                     ("number", "float"), ("number", "int"), ("text", "str")) if marker in text), None)
    return WILD if kind is None else st.one_of(BY_KIND[kind], BY_KIND[kind], BY_KIND[kind], WILD)


def _models_in(annotation: Any) -> list[tuple[Any, type[BaseModel]]]:
    """(path step, model) for each pydantic model reachable through Optional/list/dict."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    if origin in (typing.Union, types.UnionType):
        return [m for a in args for m in _models_in(a)]
    if origin is list and args:
        return [(0 if step is None else step, m) for step, m in _models_in(args[0])]
    if origin is dict and len(args) == 2:
        return [("store" if step is None else step, m) for step, m in _models_in(args[1])]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(None, annotation)]
    return []


def field_paths(model: type[BaseModel], prefix: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], FieldInfo]]:
    """Every field of `model` with its path, nested models included (lists at index 0)."""
    out = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        out.append((path, info))
        for step, inner in _models_in(info.annotation):
            out += field_paths(inner, path if step is None else (*path, step))
    return out


SCENARIO_PATHS = field_paths(Scenario)
FAULT_TYPES = sorted(fault_types())
NETWORK_TYPES = [t for t in FAULT_TYPES if t.startswith(("network.", "http."))]
FAULT = ("timeline", "faults", 0)
# what a run may carry out here: no commands, containers, clusters, GPUs or other folders
RUN_SAFE = [("name",), ("seed",), ("description",), ("load", "users"), ("load", "duration"), ("load", "warmup"),
            ("load", "window"), ("load", "spawn_rate"), ("load", "request_timeout"), ("load", "data", "batch_size"),
            ("timeline", "baseline"), ("slos", 0, "weight"), ("settings",), (*FAULT,)]


def set_path(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`doc` with the value at `path` set, creating (or replacing) containers on the way."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(step, int):
        items = doc if isinstance(doc, list) else []
        while len(items) <= step:
            items.append({})
        items[step] = set_path(items[step], rest, value)
        return items
    mapping = doc if isinstance(doc, dict) else {}
    mapping[step] = set_path(mapping.get(step), rest, value)
    return mapping


@st.composite
def scenario_docs(draw: st.DrawFn, run_safe: bool = False) -> tuple[dict[str, Any], list[tuple[Any, ...]]]:
    """A document and the paths changed; `run_safe`: only changes a run may carry out here."""
    doc = yaml.safe_load(BASE)
    kind = draw(st.sampled_from(NETWORK_TYPES) if run_safe else
                st.one_of(st.sampled_from(NETWORK_TYPES), st.sampled_from(FAULT_TYPES)))
    params = fault_types()[kind].Params.model_fields
    entry = {k: doc["timeline"]["faults"][0][k] for k in ("name", "at", "duration")}
    entry.update({name: REQUIRED.get(name, draw(values_for(info))) for name, info in params.items()
                  if info.is_required()})
    doc["timeline"]["faults"][0] = {**entry, "type": kind}
    fields = SCENARIO_PATHS + [((*FAULT, name), info) for name, info in params.items()]
    safe = [f for f in fields if _is_run_safe(f[0])]  # most changes: ones a run may carry out here
    changed = []
    for _ in range(draw(st.integers(0, 4))):
        path, info = draw(st.sampled_from(safe if run_safe else safe * 3 + fields))
        doc = set_path(doc, path, draw(values_for(info)))
        changed.append(path)
    return doc, changed


def _is_run_safe(path: tuple[Any, ...]) -> bool:
    return any(path[: len(s)] == s for s in RUN_SAFE)


def _run_safe(doc: dict[str, Any], changed: list[tuple[Any, ...]]) -> bool:
    if not changed or not all(map(_is_run_safe, changed)):
        return False
    return (doc["timeline"]["faults"][0].get("type") in NETWORK_TYPES
            and isinstance(doc["load"].get("users"), int) and doc["load"]["users"] <= 20)


@dataclass
class Fuzzed:
    accepted: int = 0
    refused: int = 0
    runnable: list[tuple[dict[str, Any], list[tuple[Any, ...]]]] = field(default_factory=list)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Fuzzed:
    """Validate fuzzed documents (any change; then run-safe changes only, to find runnable
    ones); a traceback fails here, with the document that caused it."""
    folder = tmp_path_factory.mktemp("fuzz")
    dataset = write_dataset(folder)
    seen = Fuzzed()

    def check(case: tuple[dict[str, Any], list[tuple[Any, ...]]]) -> None:
        doc, changed = case
        text = yaml.safe_dump(doc, sort_keys=False).replace("DATASET", str(dataset))
        try:
            parse_scenario(text, str(folder / "fuzz.yaml"), base_dir=folder)
        except ScenarioError as err:
            assert all(p.line >= 1 and p.col >= 1 for p in err.problems)
            seen.refused += 1
            return
        seen.accepted += 1
        if _run_safe(doc, changed):
            seen.runnable.append(case)

    # CI replays the same examples each run (a gate must not turn red by luck); elsewhere
    # every run explores new ones
    quiet = settings(deadline=None, database=None, derandomize=os.environ.get("CI") == "true",
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    settings(quiet, max_examples=VALIDATE_EXAMPLES)(given(scenario_docs())(check))()
    settings(quiet, max_examples=RUN_SAFE_EXAMPLES)(given(scenario_docs(run_safe=True))(check))()
    return seen


def test_validate_never_answers_with_a_traceback(fuzzed: Fuzzed) -> None:
    """Every fuzzed document was refused with file:line:col problems or accepted."""
    assert fuzzed.accepted + fuzzed.refused >= VALIDATE_EXAMPLES
    assert fuzzed.accepted > 0 and fuzzed.refused > 0  # the fuzzer reaches both sides
    print(f"accepted {fuzzed.accepted}, refused {fuzzed.refused}, runnable {len(fuzzed.runnable)}")


def test_accepted_fuzzed_scenarios_run_without_internal_error(tmp_path: Path, fuzzed: Fuzzed) -> None:
    assert fuzzed.runnable, "no run-safe fuzzed scenario was accepted: the fuzzer lost its way"
    distinct: dict[tuple[Any, ...], tuple[dict[str, Any], list]] = {}
    for doc, changed in fuzzed.runnable:  # one per set of changed fields, the most changed first
        distinct.setdefault(tuple(sorted(map(str, changed))), (doc, changed))
    cases = sorted(distinct.values(), key=lambda c: -len(c[1]))[:RUNS]
    dataset = write_dataset(tmp_path)
    with ReferenceServer() as srv:
        for i, (doc, changed) in enumerate(cases):
            doc["target"]["url"] = srv.url  # unchanged by the fuzzer in run-safe cases
            text = yaml.safe_dump(doc, sort_keys=False).replace("DATASET", str(dataset))
            path = tmp_path / f"case{i}.yaml"
            path.write_text(text, encoding="utf-8")
            code, out = _run_briefly(path, tmp_path / "out")
            print(f"run {i}: exit {code}, changed {changed}")  # shown with -rP
            assert code != 4 and "Traceback" not in out, f"exit {code}: {changed}\n{text}\n{out[-3000:]}"
            assert code in (0, 1, 3, 130), f"exit {code}: {changed}\n{text}\n{out[-3000:]}"


def _run_briefly(path: Path, out: Path) -> tuple[int, str]:
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(path), "-o", str(out)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = proc.communicate(timeout=RUN_FOR_S)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            output, _ = proc.communicate(timeout=HANG_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            output, _ = proc.communicate()
            pytest.fail(f"the run hung after SIGINT: {path.read_text()}\n{output[-3000:]}")
    return proc.returncode, output
