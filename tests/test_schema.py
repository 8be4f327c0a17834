"""`aftershock schema`: every shipped scenario validates against it, and invalid files are
rejected by it as by the loader (misspelled types, unknown protocol, bad durations, ...)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from harness.core.registry import fault_types
from harness.engine.scenario.loader import ScenarioError, parse_scenario
from harness.engine.scenario.param_tables import readme_blocks, tables, updated_readme
from harness.engine.scenario.schema import scenario_json_schema

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "scenarios").rglob("*.yaml"))
VALIDATOR = jsonschema.Draft202012Validator(scenario_json_schema())

GOOD = {
    "name": "t",
    "target": {"demo": "fraud", "protocol": "oip-v2"},
    "dependencies": {"feature-store": {"upstream": "demo"}},
    "load": {"users": 2, "duration": "10s", "request_timeout": "500ms"},
    "timeline": {
        "baseline": "2s",
        "faults": [{"name": "slow", "type": "network.latency", "dependency": "feature-store",
                    "at": "2s", "duration": "3s", "latency": "250ms"},
                   {"name": "drift", "type": "data.covariate_shift", "columns": ["features[0]"],
                    "at": "5s", "duration": 3, "schedule": "gradual"}],
        "attacks": [{"name": "fuzz", "type": "abuse.fuzz", "at": "8s", "duration": "1s", "rate_limit": "50/s"}],
    },
    "probes": [{"name": "breaker", "type": "prometheus", "url": "{target}/metrics", "metric": "m"}],
    "slos": [{"name": "fast", "expect": "p95(latency) < 250ms during slow"}],
}


def _errors(data: dict) -> list[str]:
    return [e.message for e in VALIDATOR.iter_errors(data)]


def test_the_schema_is_valid_json_schema_and_the_cli_prints_it() -> None:
    jsonschema.Draft202012Validator.check_schema(VALIDATOR.schema)
    r = subprocess.run([sys.executable, "-m", "harness.cli", "schema"], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, check=False)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == json.loads(json.dumps(VALIDATOR.schema))


def test_shipped_scenarios_are_many() -> None:
    assert len(SHIPPED) >= 15 and any(p.parent.name == "servers" for p in SHIPPED)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT / "scenarios")))
def test_every_shipped_scenario_validates(path: Path) -> None:
    assert _errors(yaml.safe_load(path.read_text(encoding="utf-8"))) == []


def test_good_sample_validates_and_loads() -> None:
    assert _errors(GOOD) == []
    parse_scenario(yaml.safe_dump(GOOD), "good.yaml")


def _edit(path: str, value: object) -> dict:
    """GOOD with the value at a dotted path replaced (`...` deletes the key)."""
    data = json.loads(json.dumps(GOOD))
    *parents, last = [int(k) if k.isdigit() else k for k in path.split(".")]
    node = data
    for key in parents:
        node = node[key]
    if value is ...:
        del node[last]
    else:
        node[last] = value
    return data


# (dotted path, bad value, a word the schema's error says); the loader refuses each too
INVALID = [
    ("timeline.faults.0.type", "network.latncy", "is not valid under any of the given schemas"),
    ("target.protocol", "grpc-magic", "is not one of"),
    ("load.duration", "10 parsecs", "is not valid under any of the given schemas"),
    ("timeline.faults.0.at", ..., "is not valid under any of the given schemas"),
    ("timeline.faults.0.latency", "fast", "is not valid under any of the given schemas"),
    ("timeline.faults.1.schedule", "sideways", "is not valid under any of the given schemas"),
    ("timeline.attacks.0.rate_limit", "fast", "is not valid under any of the given schemas"),
    ("slos.0.expect", ..., "'expect' is a required property"),
    ("target", ..., "'target' is a required property"),
    ("target.mode", "sturdy", "is not one of"),
    ("load.users", "many", "is not of type 'integer'"),
    ("loads", {"users": 2}, "Additional properties are not allowed"),
    ("probes.0.type", "telepathy", "is not valid under any of the given schemas"),
]


@pytest.mark.parametrize(("path", "value", "message"), INVALID, ids=[f"{p}={v}" for p, v, _ in INVALID])
def test_invalid_scenarios_are_rejected(path: str, value: object, message: str) -> None:
    data = _edit(path, value)
    errors = _errors(data)
    assert any(message in e for e in errors), errors
    if path == "target.protocol":
        return  # the loader leaves the protocol to the adapter registry at run time
    with pytest.raises(ScenarioError):
        parse_scenario(yaml.safe_dump(data), "bad.yaml")


def test_fault_branches_offer_each_types_params() -> None:
    defs = VALIDATOR.schema["$defs"]
    latency = defs["Fault_network_latency"]
    assert latency["properties"]["type"]["const"] == "network.latency"
    assert {"name", "at", "duration", "dependency", "latency"} <= set(latency["required"])
    assert "10s" in json.dumps(latency["properties"]["at"]) or "pattern" in json.dumps(latency["properties"]["at"])
    kinds = json.dumps(defs["Fault_data_schema_break"]["properties"]["kind"])
    assert all(k in kinds for k in ("missing_field", "extra_field", "wrong_dtype", "wrong_shape"))
    assert "Attack_evasion_hopskipjump" in defs and "Probe_http" in defs


def test_readme_parameter_tables_match_the_schema() -> None:
    """README's fault and attack tables are what the generator makes from the schema now;
    refresh them with `python -m harness.engine.scenario.param_tables --write README.md`."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme_blocks(readme) == {name: table.strip() for name, table in tables().items()}
    assert updated_readme(readme) == readme


def test_parameter_tables_show_each_types_params_and_catch_drift() -> None:
    fault, attack = tables()["fault-params"], tables()["attack-params"]
    for type_name in fault_types():
        assert f"| `{type_name}` |" in fault
    assert "|  | `latency` | duration | **required** |" in fault
    assert "| `abuse.fuzz` |" in attack and "| `every attack` | `samples` | integer | `20` |" in attack
    stale = updated_readme((ROOT / "README.md").read_text(encoding="utf-8")).replace(
        "|  | `latency` | duration | **required** |", "|  | `latency` | number | **required** |")
    assert readme_blocks(stale)["fault-params"] != tables()["fault-params"].strip()
    r = subprocess.run([sys.executable, "-m", "harness.cli", "schema", "--markdown"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stdout.strip() == "\n\n".join(tables().values()).strip()
