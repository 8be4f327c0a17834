"""JSON Schema for scenario files, for editors (e.g. the YAML language server).

Generated from the pydantic model the loader validates with, plus the registries: the
fault, attack and probe lists get one branch per registered type (the common fields
plus that type's own params, selected by `type`), and `target.protocol` lists the
registered protocol adapters, so an editor completes and checks exactly what the loader
accepts. Durations, percentages and sizes keep their human forms (`10s`, see units.py).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from harness.engine.scenario.model import Scenario


def _branches(defs: dict[str, Any], common: dict[str, Any], models: dict[str, type[BaseModel]],
              docs: dict[str, str], prefix: str) -> dict[str, Any]:
    """`items` of a list whose entries are one registered type each: one `oneOf` branch per type."""
    branches = []
    for type_name, params_model in sorted(models.items()):
        params = params_model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        type_doc = {"const": type_name, "description": docs.get(type_name, "")}
        props = {**common.get("properties", {}), **params.get("properties", {}), "type": type_doc}
        required = sorted({*common.get("required", []), *params.get("required", []), "type"})
        branch_name = f"{prefix}_{type_name.replace('.', '_')}"
        defs[branch_name] = {"type": "object", "title": type_name, "description": docs.get(type_name, ""),
                             "properties": props, "required": required, "additionalProperties": False}
        branches.append({"$ref": f"#/$defs/{branch_name}"})
    return {"oneOf": branches}


def _doc(cls: type) -> str:
    return (cls.__doc__ or "").strip()


def scenario_json_schema() -> dict[str, Any]:
    from harness.core.attack import attack_types
    from harness.core.protocols import adapter_types
    from harness.core.registry import fault_types
    from harness.engine.probes import probe_types

    schema = Scenario.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    timeline = defs["Timeline"]["properties"]
    faults, attacks = fault_types(), attack_types()
    timeline["faults"] = {"type": "array", "items": _branches(
        defs, defs["FaultEntry"], {n: c.Params for n, c in faults.items()},
        {n: _doc(c) for n, c in faults.items()}, "Fault")}
    timeline["attacks"] = {"type": "array", "items": _branches(
        defs, defs["FaultEntry"], {n: c.Params for n, c in attacks.items()},
        {n: _doc(c) for n, c in attacks.items()}, "Attack")}
    probes = probe_types()
    schema["properties"]["probes"] = {"type": "array", "items": _branches(
        defs, {}, {n: c.Config for n, c in probes.items()}, {n: _doc(c) for n, c in probes.items()}, "Probe")}
    protocols = sorted(adapter_types())
    defs["Target"]["properties"]["protocol"] = {
        "enum": protocols, "default": "oip-v2", "description": "the protocol adapter the load, attacks and probes speak"}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aftershock scenario"
    return schema
