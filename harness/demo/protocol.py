"""Request decoding and validation for Open Inference Protocol v2 and KServe v1.

Every malformed request becomes an ``InvalidRequest`` whose message names the
field at fault and what was expected; the server turns it into a 400.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from harness.demo.data import N_ENTITIES, TRANSACTION_FEATURES, TRANSACTION_RANGES

N_FEATURES = len(TRANSACTION_FEATURES)
MAX_BATCH = 4096
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
FP32_MAX = float(np.finfo(np.float32).max)

# name → (datatype, shape with -1 for the batch dimension)
INPUTS: dict[str, tuple[str, list[int]]] = {
    "features": ("FP32", [-1, N_FEATURES]),
    "entity_id": ("INT64", [-1]),
}
OUTPUTS: dict[str, tuple[str, list[int]]] = {
    "label": ("INT64", [-1]),
    "probabilities": ("FP32", [-1, 2]),
}


class InvalidRequest(ValueError):
    """A client error; the message says what is wrong and how to fix it."""


def _flatten(data: Any, where: str, depth: int = 0) -> list[Any]:
    if not isinstance(data, list):
        raise InvalidRequest(f"{where}: data must be a JSON array, got {type(data).__name__}")
    if depth > 8:
        raise InvalidRequest(f"{where}: data is nested too deeply")
    if data and isinstance(data[0], list):
        out: list[Any] = []
        for item in data:
            out.extend(_flatten(item, where, depth + 1))
        return out
    return data


def _numbers(flat: list[Any], datatype: str, where: str) -> np.ndarray:
    if datatype == "INT64":
        for x in flat:
            if type(x) is not int or not INT64_MIN <= x <= INT64_MAX:
                raise InvalidRequest(
                    f"{where}: INT64 data must hold integers in the int64 range, found {_short(x)}"
                )
        return np.array(flat, dtype=np.int64)
    for x in flat:
        if type(x) not in (int, float):
            raise InvalidRequest(f"{where}: FP32 data must hold numbers, found {x!r}")
        if type(x) is float and not math.isfinite(x):
            raise InvalidRequest(f"{where}: data holds {x!r}; NaN and Inf are not accepted")
        if abs(x) > FP32_MAX:  # checked before numpy sees it: a huge int overflows float64
            raise InvalidRequest(f"{where}: {_short(x)} overflows FP32")
    return np.array(flat, dtype=np.float64).astype(np.float32)


def _short(value: Any) -> str:
    """A value for an error message, cut short (a fuzzer's 4000-digit integer, say)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _tensor(spec: Any, index: int) -> tuple[str, np.ndarray]:
    where = f"inputs[{index}]"
    if not isinstance(spec, dict):
        raise InvalidRequest(
            f"{where}: each input must be an object with name, shape, datatype, data"
        )
    name = spec.get("name")
    if not isinstance(name, str) or name not in INPUTS:  # a list name is unhashable
        raise InvalidRequest(
            f"{where}: unexpected input name {_short(name)}; this model takes {', '.join(INPUTS)}"
        )
    where = f"input {name!r}"
    for key in ("shape", "datatype", "data"):
        if key not in spec:
            raise InvalidRequest(f"{where}: missing field {key!r}")
    want_type, want_shape = INPUTS[name]
    if spec["datatype"] != want_type:
        raise InvalidRequest(
            f"{where}: datatype must be {want_type}, got {_short(spec['datatype'])}"
        )
    shape = spec["shape"]
    if (
        not isinstance(shape, list)
        or len(shape) != len(want_shape)
        or any(type(d) is not int or d < 0 for d in shape)
        or any(w != -1 and d != w for d, w in zip(shape, want_shape))
    ):
        wanted = "[n" + "".join(f", {w}" for w in want_shape[1:]) + "]"
        raise InvalidRequest(f"{where}: shape must be {wanted}, got {_short(shape)}")
    if not 1 <= shape[0] <= MAX_BATCH:
        raise InvalidRequest(f"{where}: batch size must be 1..{MAX_BATCH}, got {shape[0]}")
    flat = _flatten(spec["data"], where)
    if len(flat) != math.prod(shape):
        raise InvalidRequest(
            f"{where}: shape {shape} needs {math.prod(shape)} values, data has {len(flat)}"
        )
    return name, _numbers(flat, want_type, where).reshape(shape)


def _check_ids(entity_id: np.ndarray, where: str) -> None:
    bad = entity_id[(entity_id < 0) | (entity_id >= N_ENTITIES)]
    if len(bad):
        raise InvalidRequest(f"{where}: entity ids must be 0..{N_ENTITIES - 1}, got {int(bad[0])}")


def decode_v2(body: Any) -> tuple[np.ndarray, np.ndarray, str | None, list[str]]:
    """OIP v2 infer body → (features [n,6] f32, entity_id [n] i64, request id, outputs)."""
    if not isinstance(body, dict):
        raise InvalidRequest("the request body must be a JSON object with an 'inputs' array")
    inputs = body.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidRequest("'inputs' must be a non-empty array of tensors")
    tensors: dict[str, np.ndarray] = {}
    for i, spec in enumerate(inputs):
        name, values = _tensor(spec, i)
        if name in tensors:
            raise InvalidRequest(f"input {name!r} is given twice")
        tensors[name] = values
    for name in INPUTS:
        if name not in tensors:
            raise InvalidRequest(f"missing input tensor {name!r}")
    features, entity_id = tensors["features"], tensors["entity_id"]
    if features.shape[0] != entity_id.shape[0]:
        raise InvalidRequest(
            f"features has {features.shape[0]} rows but entity_id has {entity_id.shape[0]}"
        )
    _check_ids(entity_id, "input 'entity_id'")
    request_id = body.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise InvalidRequest("'id' must be a string")
    wanted = body.get("outputs") or [{"name": n} for n in OUTPUTS]
    if not isinstance(wanted, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) and o["name"] in OUTPUTS
        for o in wanted
    ):
        raise InvalidRequest(f"'outputs' may only name {', '.join(OUTPUTS)}")
    return features, entity_id, request_id, [o["name"] for o in wanted]


def encode_v2(
    model_name: str,
    version: str,
    request_id: str,
    labels: np.ndarray,
    probabilities: np.ndarray,
    parameters: dict[str, Any],
    outputs: list[str],
) -> dict[str, Any]:
    """The OIP v2 infer response."""
    tensors = {
        "label": {
            "name": "label",
            "shape": [len(labels)],
            "datatype": "INT64",
            "data": labels.astype(int).tolist(),
        },
        "probabilities": {
            "name": "probabilities",
            "shape": list(probabilities.shape),
            "datatype": "FP32",
            "data": [round(float(p), 6) for p in probabilities.ravel()],
        },
    }
    return {
        "model_name": model_name,
        "model_version": version,
        "id": request_id,
        "parameters": parameters,
        "outputs": [tensors[name] for name in outputs],
    }


def decode_v1(body: Any) -> tuple[np.ndarray, np.ndarray]:
    """KServe v1 body {"instances": [{"features": [6 numbers], "entity_id": int}, ...]}."""
    if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
        raise InvalidRequest("the request body must be a JSON object with an 'instances' array")
    instances = body["instances"]
    if not 1 <= len(instances) <= MAX_BATCH:
        raise InvalidRequest(f"'instances' must hold 1..{MAX_BATCH} items, got {len(instances)}")
    features, ids = [], []
    for i, inst in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(inst, dict) or "features" not in inst or "entity_id" not in inst:
            raise InvalidRequest(f"{where}: must be an object with 'features' and 'entity_id'")
        row = inst["features"]
        if not isinstance(row, list) or len(row) != N_FEATURES:
            raise InvalidRequest(f"{where}.features: must be an array of {N_FEATURES} numbers")
        features.append(_numbers(row, "FP32", f"{where}.features"))
        ids.append(_numbers([inst["entity_id"]], "INT64", f"{where}.entity_id")[0])
    entity_id = np.array(ids, dtype=np.int64)
    _check_ids(entity_id, "entity_id")
    return np.stack(features), entity_id


def validate_training_row(row: Any) -> str | None:
    """Schema and range check of one ingested row; returns the problem, or None."""
    if not isinstance(row, dict) or set(row) != {"features", "entity_id", "label"}:
        return "a row must be an object with exactly 'features', 'entity_id', 'label'"
    features = row["features"]
    if not isinstance(features, list) or len(features) != N_FEATURES:
        return f"'features' must be an array of {N_FEATURES} numbers"
    for name, value in zip(TRANSACTION_FEATURES, features):
        if type(value) not in (int, float) or (type(value) is float and not math.isfinite(value)):
            return f"feature {name!r} must be a finite number, got {_short(value)}"
        low, high = TRANSACTION_RANGES[name]
        if not low <= value <= high:
            return f"feature {name!r} = {_short(value)} is outside {low}..{high}"
    if type(row["entity_id"]) is not int or not 0 <= row["entity_id"] < N_ENTITIES:
        return f"'entity_id' must be an integer 0..{N_ENTITIES - 1}"
    if type(row["label"]) is not int or row["label"] not in (0, 1):
        return "'label' must be 0 or 1"
    return None
