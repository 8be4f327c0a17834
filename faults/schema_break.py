"""`data.schema_break`: requests whose shape breaks the model's input contract.

A well-built service answers them with a 4xx naming the problem — never a 5xx, never a
prediction. The break is made on the batch and encoded through the target's protocol
adapter, so it reaches the wire in that protocol's own form (OIP v2 tensors, KServe v1
instances, BentoML / TorchServe / Seldon / JSON bodies alike). Kinds:

  missing_field  an input is left out; the only input: its data is left out of the body
  extra_field    an input the model does not take is added (a copy of the first one)
  wrong_dtype    an input's values are sent as strings (datatype BYTES in OIP v2)
  wrong_shape    an input loses its last column (an input of one column gains a dimension)

`field:` names the input (default: the last input for missing_field, the first otherwise).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    DataFaultParams,
    Encode,
    PayloadTransform,
    Reference,
)

Kind = Literal["missing_field", "extra_field", "wrong_dtype", "wrong_shape"]


class SchemaBreakParams(DataFaultParams):
    kind: Kind
    field: str | None = None


def _pick_name(names: list[str], wanted: str | None, last: bool) -> str:
    if wanted is not None:
        if wanted not in names:
            raise ValueError(f"data.schema_break: no input {wanted!r} in the payload (it has {', '.join(names)})")
        return wanted
    return names[-1] if last else names[0]


def break_batch(features: dict[str, np.ndarray], kind: str, field: str | None) -> dict[str, np.ndarray]:
    """The batch with its schema broken (`kind`); arrays keep their rows."""
    names = list(features)
    if kind == "extra_field":
        extra = field or "unexpected_input"
        if extra in features:
            raise ValueError(f"data.schema_break: extra_field {extra!r} is already an input")
        return {**features, extra: features[names[0]]}
    name = _pick_name(names, field, last=kind == "missing_field")
    array = features[name]
    if kind == "missing_field":
        return {k: v for k, v in features.items() if k != name}
    if kind == "wrong_dtype":
        return {**features, name: array.astype(str)}
    broken = array[..., :-1] if array.ndim >= 2 and array.shape[-1] > 1 else array[..., np.newaxis]
    return {**features, name: broken}


def without_data(body: Any, features: dict[str, np.ndarray], encode: Encode) -> Any:
    """The body of a one-input batch with that input's data left out: every top-level key
    whose value holds the data (it differs when the data does) is dropped."""
    (name,) = features
    other = encode({name: np.full(features[name].shape, "x")})
    if not isinstance(body, dict) or not isinstance(other, dict):
        raise TypeError("data.schema_break: missing_field needs a JSON object body")
    return {k: v for k, v in body.items() if other.get(k) == v}


class SchemaBreakTransform(PayloadTransform):
    def __init__(self, params: SchemaBreakParams) -> None:
        self.p = params
        self.mix = 1.0

    def prepare(self, batch: Batch) -> None:
        if self.p.kind != "extra_field":
            _pick_name(list(batch.features), self.p.field, last=self.p.kind == "missing_field")

    def apply(self, batch: Batch, rows: np.ndarray, magnitude: float, rng: np.random.Generator) -> None:
        self.mix = float(rows.mean()) if len(rows) else 0.0  # this request's share from the schedule

    def apply_body(self, body: Any, features: dict[str, np.ndarray], encode: Encode,
                   rng: np.random.Generator) -> Any:
        if rng.random() >= self.mix * self.p.fraction:
            return body
        if self.p.kind == "missing_field" and len(features) == 1:
            return without_data(body, features, encode)
        return encode(break_batch(features, self.p.kind, self.p.field))

    def requested(self) -> dict[str, Any]:
        return {"kind": self.p.kind, "changed_share": self.p.fraction}


class SchemaBreak(DataFault):
    type = "data.schema_break"
    Params = SchemaBreakParams

    @classmethod
    def transform(cls, params: SchemaBreakParams, reference: Reference) -> PayloadTransform:
        return SchemaBreakTransform(params)
