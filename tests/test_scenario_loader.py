"""The scenario loader: good files load; every kind of bad file names file:line:col and the field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.engine.scenario.loader import ScenarioError, load_scenario, parse_scenario

ROOT = Path(__file__).resolve().parents[1]

GOOD = textwrap.dedent(
    """\
    name: t
    target:
      demo: fraud
    dependencies:
      feature-store: {upstream: demo}
    load:
      users: 2
      duration: 10s
    timeline:
      baseline: 2s
      faults:
        - name: slow
          type: network.latency
          dependency: feature-store
          at: 2s
          duration: 3s
          latency: 250ms
    slos:
      - name: fast
        expect: p95(latency) < 250ms during slow
    """
)


def problems_of(text: str) -> list:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "s.yaml")
    return info.value.problems


def test_flagship_scenarios_load() -> None:
    for path in sorted((ROOT / "scenarios").glob("*.yaml")):
        loaded = load_scenario(path)
        assert loaded.scenario.slos, path
        assert len(loaded.faults) == len(loaded.scenario.timeline.faults)


def test_good_scenario_units() -> None:
    s = parse_scenario(GOOD, "s.yaml").scenario
    assert s.load.duration == 10.0
    assert s.timeline.faults[0].at == 2.0
    assert s.timeline.faults[0].params()["latency"] == "250ms"


def test_bad_indentation_points_at_line() -> None:
    bad = GOOD.replace("  users: 2\n", "  users: 2\n    duration: 10s\n  x: [\n")
    (p,) = problems_of(bad)
    assert p.file == "s.yaml" and p.line >= 7
    assert "YAML syntax error" in p.message


def test_unknown_key_with_did_you_mean() -> None:
    (p,) = problems_of(GOOD.replace("  users: 2", "  usres: 2"))
    assert (p.line, p.col) == (7, 3)
    assert p.path == "load.usres"
    assert "did you mean 'users'" in p.message


def test_unknown_fault_type_with_did_you_mean() -> None:
    (p,) = problems_of(GOOD.replace("type: network.latency", "type: network.latncy"))
    assert p.line == 13 and p.path == "timeline.faults[0].type"
    assert "did you mean 'network.latency'" in p.message


def test_unknown_protocol_is_refused_with_did_you_mean() -> None:
    (p,) = problems_of(GOOD.replace("  demo: fraud\n", "  demo: fraud\n  protocol: oip-v3\n"))
    assert p.line == 4 and p.path == "target.protocol"
    assert "did you mean 'oip-v2'" in p.message


def test_bad_duration_names_field_and_line() -> None:
    (p,) = problems_of(GOOD.replace("duration: 3s", "duration: 3 parsecs"))
    assert p.line == 16 and p.path == "timeline.faults[0].duration"
    assert "invalid duration" in p.message


def test_fault_param_error_and_unknown_dependency() -> None:
    probs = problems_of(GOOD.replace("latency: 250ms", "latency: fast").replace("dependency: feature-store", "dependency: feature-stor"))
    text = "\n".join(map(str, probs))
    assert "timeline.faults[0].latency" in text or "feature-stor" in text


def test_missing_field_and_several_problems_at_once() -> None:
    probs = problems_of(GOOD.replace("name: t\n", "").replace("users: 2", "users: -1"))
    paths = {p.path for p in probs}
    assert "name" in paths and "load.users" in paths


def test_slo_syntax_error_points_into_expression() -> None:
    (p,) = problems_of(GOOD.replace("p95(latency) < 250ms during slow", "p95(latency) <<< 250ms"))
    assert p.path == "slos[0].expect" and p.line == 20 and p.col > 13


def test_duplicate_key() -> None:
    (p,) = problems_of(GOOD.replace("  users: 2\n", "  users: 2\n  users: 3\n"))
    assert "duplicate key" in p.message and p.line == 8


def test_fault_outside_load_duration() -> None:
    (p,) = problems_of(GOOD.replace("duration: 3s", "duration: 30s"))
    assert "after the load ends" in p.message


def test_env_interpolation_and_missing_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AFTERSHOCK_T_DESC", "s3cret-value")
    loaded = parse_scenario(GOOD.replace("name: t\n", "name: t\ndescription: ${env:AFTERSHOCK_T_DESC}\n"), "s.yaml")
    assert loaded.scenario.description == "s3cret-value"
    assert loaded.secrets == ["s3cret-value"]
    (p,) = problems_of(GOOD.replace("name: t\n", "name: t\ndescription: ${env:AFTERSHOCK_NOT_SET_X}\n"))
    assert "AFTERSHOCK_NOT_SET_X is not set" in p.message and p.line == 2


def test_non_loopback_target_refused_unless_allowed() -> None:
    attach = GOOD.replace("  demo: fraud\n", "  url: http://10.1.2.3:8080\n").replace("feature-store: {upstream: demo}", "feature-store: {upstream: '127.0.0.1:6379'}")
    (p,) = problems_of(attach)
    assert p.path == "target.url" and "outside loopback" in p.message
    allowed = attach.replace("slos:", "safety: {allowed_hosts: [10.1.2.3]}\nslos:")
    assert parse_scenario(allowed, "s.yaml").scenario.target.url == "http://10.1.2.3:8080"
    (p,) = problems_of(GOOD.replace("  demo: fraud\n", "  url: http://127.0.0.1:1\n").replace("upstream: demo", "upstream: 'db.example.com:5432'"))
    assert p.path == "dependencies.feature-store.upstream"


def test_not_a_mapping_and_missing_file(tmp_path: Path) -> None:
    (p,) = problems_of("- just\n- a list\n")
    assert "must be a mapping" in p.message
    with pytest.raises(ScenarioError, match="file not found"):
        load_scenario(tmp_path / "nope.yaml")


yaml_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=12))
yaml_docs = st.recursive(
    yaml_scalars,
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.sampled_from(["name", "target", "load", "timeline", "slos", "faults",
                                                                "demo", "url", "users", "duration", "type", "at", "x"]),
                                               children, max_size=5)),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=yaml_docs)
def test_random_documents_never_traceback(doc: object) -> None:
    text = yaml.safe_dump(doc)
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError as exc:
        assert all(str(p).startswith("fuzz.yaml:") for p in exc.problems)


@settings(max_examples=300, deadline=None)
@given(text=st.text(max_size=200))
def test_random_text_never_tracebacks(text: str) -> None:
    try:
        parse_scenario(text, "fuzz.yaml")
    except ScenarioError:
        pass


def test_allow_host_flag_admits_a_non_loopback_target(tmp_path: Path) -> None:
    path = tmp_path / "remote.yaml"
    path.write_text(GOOD.replace("  demo: fraud\n", "  url: http://10.1.2.3:8080\n")
                    .replace("feature-store: {upstream: demo}", "feature-store: {upstream: '127.0.0.1:6379'}"))
    with pytest.raises(ScenarioError, match="outside loopback"):
        load_scenario(path)
    assert load_scenario(path, allow_hosts=["10.1.2.3"]).scenario.safety.allowed_hosts == ["10.1.2.3"]
