"""Open Inference Protocol v2 (KServe v2, Triton, MLServer, Seldon Core 2) over REST/JSON.

Predictions are read, in this order, from: the output named `label_output`; the first
[rows, classes] score output (its argmax per row); the first [rows] or [rows, 1] output
of an integer, boolean or string datatype (class labels, as scikit-learn servers send
them). A floating-point column alone is a regression answer: no predictions are read.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.protocols.base import (
    AdapterOptions,
    Decoded,
    DecodeError,
    Prediction,
    ProtocolAdapter,
    argmax_rows,
    score_rows,
)

OIP_DATATYPES = {
    "float16": "FP16",
    "float32": "FP32",
    "float64": "FP64",
    "int8": "INT8",
    "int16": "INT16",
    "int32": "INT32",
    "int64": "INT64",
    "uint8": "UINT8",
    "uint16": "UINT16",
    "uint32": "UINT32",
    "uint64": "UINT64",
    "bool": "BOOL",
}

_LABEL_DATATYPES = {"BYTES", "BOOL"} | {t for t in OIP_DATATYPES.values() if "INT" in t}


def oip_datatype(dtype: np.dtype) -> str:
    """The OIP v2 tensor datatype for a numpy dtype (str/bytes/object → BYTES)."""
    if dtype.kind in "USO":
        return "BYTES"
    try:
        return OIP_DATATYPES[dtype.name]
    except KeyError:
        raise ValueError(f"numpy dtype {dtype} has no Open Inference Protocol datatype") from None


class OipV2Options(AdapterOptions):
    label_output: str = "label"  # output holding the predicted class, if the server sends one
    model_version: str | None = None  # pin a version: /v2/models/{m}/versions/{v}/infer


class OipV2Adapter(ProtocolAdapter):
    name = "oip-v2"
    Options = OipV2Options
    options: OipV2Options

    def _model_path(self, model: str) -> str:
        path = f"/v2/models/{model}"
        if self.options.model_version:
            path += f"/versions/{self.options.model_version}"
        return path

    def infer_path(self, model: str) -> str:
        return self._model_path(model) + "/infer"

    def ready_path(self, model: str) -> str:
        return self._model_path(model) + "/ready"

    @property
    def live_path(self) -> str:
        return "/v2/health/live"

    def metadata_path(self, model: str) -> str | None:
        return self._model_path(model)

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        inputs = []
        for name, array in batch.items():
            array = np.asarray(array)
            datatype = oip_datatype(array.dtype)
            data = array.ravel().tolist()
            if datatype == "BYTES":
                data = [v.decode() if isinstance(v, bytes) else str(v) for v in data]
            inputs.append(
                {"name": name, "shape": list(array.shape), "datatype": datatype, "data": data}
            )
        return {"inputs": inputs}

    def decode(self, response_json: Any) -> Decoded:
        if not isinstance(response_json, dict):
            raise DecodeError("OIP v2 response is not a JSON object")
        outputs = response_json.get("outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise DecodeError("OIP v2 response has no 'outputs' list")
        params = response_json.get("parameters")
        fallback = params.get("fallback") if isinstance(params, dict) else None
        return Decoded(
            predictions=self._predictions(outputs),
            scores=_scores(outputs),
            fallback=bool(fallback) if fallback is not None else None,
            model_version=self.version_of(response_json),
        )

    def version_of(self, response_json: Any) -> str | None:
        version = response_json.get("model_version") if isinstance(response_json, dict) else None
        return str(version) if version is not None else None

    def _predictions(self, outputs: list[dict[str, Any]]) -> list[Prediction] | None:
        for out in outputs:
            if out.get("name") == self.options.label_output:
                data = out.get("data")
                if not isinstance(data, list):
                    raise DecodeError(f"output {out.get('name')!r} has no 'data' list")
                return [v if isinstance(v, (int, float, str)) else str(v) for v in data]
        for out in outputs:
            shape = out.get("shape")
            if isinstance(shape, list) and len(shape) == 2 and shape[1] != 1:
                data = out.get("data")
                try:
                    rows = np.asarray(data, dtype=float).reshape(shape)
                except (TypeError, ValueError):
                    raise DecodeError(
                        f"output {out.get('name')!r}: data does not fit shape {shape}"
                    ) from None
                return argmax_rows(rows)
        for out in outputs:
            shape = out.get("shape")
            column = isinstance(shape, list) and (len(shape) == 1 or (len(shape) == 2 and shape[1] == 1))
            if column and out.get("datatype") in _LABEL_DATATYPES:
                data = out.get("data")
                if not isinstance(data, list) or len(data) != shape[0]:
                    raise DecodeError(f"output {out.get('name')!r}: data does not fit shape {shape}")
                return [v[0] if isinstance(v, list) and len(v) == 1 else v for v in data]
        return None


def _scores(outputs: list[dict[str, Any]]) -> list[list[float]] | None:
    """Class scores from the first numeric [rows, classes] output, where there is one."""
    for out in outputs:
        shape = out.get("shape")
        if isinstance(shape, list) and len(shape) == 2 and shape[1] != 1 and out.get("datatype") not in ("BYTES", "BOOL"):
            try:
                return score_rows(np.asarray(out.get("data"), dtype=float).reshape(shape).tolist())
            except (TypeError, ValueError):
                return None
    return None
