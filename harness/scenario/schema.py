"""JSON Schema for scenario files, for editors (e.g. the YAML language server).

The fault list gets one branch per registered fault type: the common fields plus that
family's own params, selected by `type`, so editors complete and check params too.
"""

from __future__ import annotations

from typing import Any

from harness.plugins import fault_types
from harness.scenario.model import Scenario


def scenario_json_schema() -> dict[str, Any]:
    schema = Scenario.model_json_schema(mode="validation")
    defs = schema.setdefault("$defs", {})
    common = defs["FaultEntry"]
    branches = []
    for type_name, cls in sorted(fault_types().items()):
        params = cls.Params.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        props = {**common["properties"], **params.get("properties", {}), "type": {"const": type_name}}
        required = sorted({*common.get("required", []), *params.get("required", [])})
        branch_name = f"Fault_{type_name.replace('.', '_')}"
        defs[branch_name] = {"type": "object", "title": type_name, "description": (cls.__doc__ or "").strip(),
                             "properties": props, "required": required, "additionalProperties": False}
        branches.append({"$ref": f"#/$defs/{branch_name}"})
    if branches:
        defs["Timeline"]["properties"]["faults"] = {"type": "array", "items": {"oneOf": branches}}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "aftershock scenario"
    return schema
