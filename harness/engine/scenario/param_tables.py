"""Markdown tables of every fault and attack type's parameters, generated from the schema.

README.md holds them between marker comments; `python -m harness.engine.scenario.param_tables
--write README.md` refreshes them and a test fails when they differ, so the tables
cannot drift from what the loader accepts. `aftershock schema --markdown` prints them.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

from harness.core.units import DURATION_PATTERN, PERCENT_PATTERN, SIZE_PATTERN, format_duration
from harness.engine.scenario.schema import scenario_json_schema

COMMON_ENTRY_FIELDS = ("name", "type", "at", "duration")  # every timeline entry has them
BLOCKS = ("fault-params", "attack-params")
_RATE = "rate (`50/s`, `600/m`)"
_UNIT_KINDS = ("duration", "percentage", "size", _RATE)


def _kind(prop: dict[str, Any]) -> str:
    """What a value may be, in words: duration, percentage, an enum's choices, ..."""
    if "anyOf" in prop:
        kinds = [_kind(p) for p in prop["anyOf"] if p.get("type") != "null"]
        if any(k in _UNIT_KINDS for k in kinds):  # `10s` or a bare number of seconds: one kind
            kinds = [k for k in kinds if k not in ("number", "integer")]
        return " or ".join(dict.fromkeys(kinds))
    pattern = prop.get("pattern")
    if pattern == DURATION_PATTERN:
        return "duration"
    if pattern == PERCENT_PATTERN:
        return "percentage"
    if pattern == SIZE_PATTERN:
        return "size"
    if pattern and "/" in pattern:
        return _RATE
    if "$ref" in prop:
        return "mapping"
    if "enum" in prop:
        return " \\| ".join(f"`{v}`" for v in prop["enum"])
    if prop.get("type") == "array":
        return f"list of {_kind(prop.get('items', {}))}"
    return {"string": "text", "number": "number", "integer": "integer", "boolean": "true/false",
            "object": "mapping"}.get(prop.get("type", ""), "any")


def _default(prop: dict[str, Any], required: bool) -> str:
    if required:
        return "**required**"
    if "default" not in prop or prop["default"] is None:
        return "—"
    value, kind = prop["default"], _kind(prop)
    if "duration" in kind and isinstance(value, int | float):
        return f"`{format_duration(value)}`"
    if kind.startswith("percentage") and isinstance(value, int | float):
        return f"`{value * 100:g}%`"
    return f"`{json.dumps(value) if not isinstance(value, str) else value}`"


def _meaning(prop: dict[str, Any]) -> str:
    text = prop.get("description", "")
    if text.startswith(("a duration:", "a percentage", "a size:")):  # the unit's own help, not the field's
        return ""
    return " ".join(text.split()).replace("|", "\\|")


def _rows(type_name: str, branch: dict[str, Any], skip: dict[str, Any]) -> list[str]:
    required = set(branch.get("required", []))
    rows = []
    for field, prop in branch["properties"].items():
        if field in COMMON_ENTRY_FIELDS or skip.get(field) == prop:
            continue
        rows.append(f"| {'`' + type_name + '`' if not rows else ''} | `{field}` | {_kind(prop)} | "
                    f"{_default(prop, field in required)} | {_meaning(prop)} |")
    return rows or [f"| `{type_name}` | — | | | no parameters of its own |"]


_HEAD = ["| type | parameter | value | default | meaning |", "|---|---|---|---|---|"]


def fault_table(schema: dict[str, Any] | None = None) -> str:
    defs = (schema or scenario_json_schema())["$defs"]
    lines = [("Every fault also has `name`, `type`, `at` and `duration` (durations: `250ms`, `10s`, "
             "`2m`, or seconds; percentages: `50%` or `0.5`)."), "", *_HEAD]
    for key in sorted(k for k in defs if k.startswith("Fault_")):
        lines += _rows(defs[key]["title"], defs[key], {})
    return "\n".join(lines)


def attack_table(schema: dict[str, Any] | None = None) -> str:
    from harness.core.attack import AttackParams

    defs = (schema or scenario_json_schema())["$defs"]
    common = AttackParams.model_json_schema(mode="validation")
    common_branch = {"properties": common["properties"], "required": common.get("required", [])}
    lines = [("Every attack also has `name`, `type`, `at` and `duration`, and these (each type below "
             "lists only its own parameters and changed defaults):"), "", *_HEAD,
             *_rows("every attack", common_branch, {}), "", *_HEAD]
    for key in sorted(k for k in defs if k.startswith("Attack_")):
        lines += _rows(defs[key]["title"], defs[key], common["properties"])
    return "\n".join(lines)


def tables() -> dict[str, str]:
    schema = scenario_json_schema()
    return {"fault-params": fault_table(schema), "attack-params": attack_table(schema)}


def _block(name: str) -> re.Pattern[str]:
    return re.compile(rf"(<!-- {name}:start[^>]*-->\n)(.*?)(<!-- {name}:end -->)", re.DOTALL)


def readme_blocks(text: str) -> dict[str, str | None]:
    """The generated blocks as they stand in a README (None: markers missing)."""
    found = {name: _block(name).search(text) for name in BLOCKS}
    return {name: None if m is None else m.group(2).strip() for name, m in found.items()}


def updated_readme(text: str) -> str:
    for name, table in tables().items():
        text = _block(name).sub(lambda m, t=table: f"{m.group(1)}\n{t}\n\n{m.group(3)}", text)
    return text


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", type=Path, metavar="README", help="refresh the tables between the markers in this file")
    args = ap.parse_args(argv)
    if args.write:
        args.write.write_text(updated_readme(args.write.read_text(encoding="utf-8")), encoding="utf-8")
        return 0
    sys.stdout.write("\n\n".join(tables().values()) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
