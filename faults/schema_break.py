"""`data.schema_break`: requests whose shape breaks the model's input contract.

A well-built service answers them with a 4xx naming the problem — never a 5xx, never a
prediction. Kinds, applied to the encoded request body:

  missing_field  an input (OIP v2 tensor, or a row key) is left out
  extra_field    an input the model does not take is added
  wrong_dtype    an input's values are sent as strings (datatype BYTES in OIP v2)
  wrong_shape    an input loses its last column (a 1-D input gains a dimension)

`field:` names the input (default: the last input for missing_field, the first otherwise).
Bodies in the OIP v2 form (`inputs: [...]`), KServe v1 form (`instances: [...]`) and
any other JSON object (top-level keys) are understood.
"""

from __future__ import annotations

import copy
from typing import Any, Literal

import numpy as np

from faults.data_fault import Batch, DataFault, DataFaultParams, PayloadTransform, Reference

Kind = Literal["missing_field", "extra_field", "wrong_dtype", "wrong_shape"]


class SchemaBreakParams(DataFaultParams):
    kind: Kind
    field: str | None = None


def _pick_name(names: list[str], wanted: str | None, last: bool) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"data.schema_break: no field {wanted!r} in the request (it has {', '.join(names)})")
        return wanted
    return names[-1] if last else names[0]


def _strings(data: Any) -> Any:
    return [_strings(x) for x in data] if isinstance(data, list) else str(data)


def break_tensors(inputs: list[dict[str, Any]], kind: str, field: str | None) -> list[dict[str, Any]]:
    """OIP v2 `inputs`: one tensor dict per input."""
    names = [str(t.get("name")) for t in inputs]
    if kind == "extra_field":
        extra = copy.deepcopy(inputs[0])
        extra["name"] = field or "unexpected_input"
        return [*inputs, extra]
    name = _pick_name(names, field, last=kind == "missing_field")
    if kind == "missing_field":
        return [t for t in inputs if t.get("name") != name]
    out = []
    for t in inputs:
        if t.get("name") == name:
            t = dict(t)
            if kind == "wrong_dtype":
                t["datatype"], t["data"] = "BYTES", _strings(t["data"])
            else:  # wrong_shape
                shape = list(t["shape"])
                if len(shape) >= 2 and shape[-1] > 1:
                    data = np.asarray(t["data"]).reshape(shape)[..., :-1]
                    t["shape"], t["data"] = list(data.shape), data.ravel().tolist()
                else:
                    t["shape"] = [*shape, 1]
        out.append(t)
    return out


def break_row(row: dict[str, Any], kind: str, field: str | None) -> dict[str, Any]:
    """One object of named values (a KServe v1 instance, or a whole JSON body)."""
    row = dict(row)
    if kind == "extra_field":
        row[field or "unexpected_field"] = next(iter(row.values()), 0)
        return row
    name = _pick_name(list(row), field, last=kind == "missing_field")
    if kind == "missing_field":
        del row[name]
    elif kind == "wrong_dtype":
        row[name] = _strings(row[name])
    elif isinstance(row[name], list) and len(row[name]) > 1:
        row[name] = row[name][:-1]
    else:
        row[name] = [row[name]]
    return row


def break_body(body: Any, kind: str, field: str | None) -> Any:
    if isinstance(body, dict) and isinstance(body.get("inputs"), list) and body["inputs"]:
        return {**body, "inputs": break_tensors(body["inputs"], kind, field)}
    if isinstance(body, dict) and isinstance(body.get("instances"), list):
        rows = [break_row(r, kind, field) if isinstance(r, dict) else r for r in body["instances"]]
        return {**body, "instances": rows}
    if isinstance(body, dict) and body:
        return break_row(body, kind, field)
    raise ValueError(f"data.schema_break: cannot break a request body of type {type(body).__name__}")


class SchemaBreakTransform(PayloadTransform):
    def __init__(self, params: SchemaBreakParams) -> None:
        self.p = params
        self.mix = 1.0
        self.seen = 0
        self.broken = 0

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        self.mix = float(rows.mean()) if len(rows) else 0.0  # this request's share from the schedule

    def apply_body(self, body: Any, rng: np.random.Generator) -> Any:
        self.seen += 1
        if rng.random() >= self.mix * self.p.fraction:
            return body
        self.broken += 1
        return break_body(body, self.p.kind, self.p.field)

    def measured(self, batch: Batch) -> list[str]:
        return ["schema"]

    def requested(self) -> dict[str, Any]:
        return {"kind": self.p.kind, "broken_share": self.p.fraction}

    def delivered(self) -> dict[str, Any]:
        return {"broken_share": self.broken / self.seen if self.seen else None, "requests": self.seen}


class SchemaBreak(DataFault):
    type = "data.schema_break"
    Params = SchemaBreakParams

    @classmethod
    def transform(cls, params: SchemaBreakParams, reference: Reference) -> PayloadTransform:
        return SchemaBreakTransform(params)
