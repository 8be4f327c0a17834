"""Seldon Core v1's prediction API (the Python wrapper and the v1 executor).

POST {prefix}/api/v1.0/predictions with {"data": {"ndarray": rows, "names": [...]}}
(or {"data": {"tensor": {"shape": [...], "values": [...]}}} with `payload: tensor`)
answers the same message shape, plus a `meta` object. Behind a Seldon ingress the
prefix is /seldon/{namespace}/{deployment}. Readiness is /health/ping on the
microservice (the executor answers /ready); liveness /health/ping (executor: /live).

Per-request metadata: `meta.tags` holds what the model's `tags()` returns, so the
model version and fallback flag are read from `meta.tags.model_version` and
`meta.tags.fallback` unless options point elsewhere; failing a tag, the version is
the image tag in `meta.requestPath` (e.g. "seldonio/sklearn:1.3" → "1.3").
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np

from harness.core.protocols.base import (
    Decoded,
    DecodeError,
    ProtocolAdapter,
    argmax_rows,
    predictions_list,
    score_rows,
)
from harness.core.protocols.fields import ResponseFieldOptions, ResponseFields


class SeldonV1Options(ResponseFieldOptions):
    prefix: str = ""  # e.g. /seldon/models/iris behind a Seldon ingress
    payload: Literal["ndarray", "tensor"] = "ndarray"
    fallback: str | None = "meta.tags.fallback"
    model_version: str | None = "meta.tags.model_version"
    ready: str = "/health/ping"
    live: str = "/health/ping"


class SeldonV1Adapter(ProtocolAdapter):
    name = "seldon-v1"
    Options = SeldonV1Options
    options: SeldonV1Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fields = ResponseFields(self.options)

    def _prefixed(self, path: str) -> str:
        return self.options.prefix.rstrip("/") + path

    def infer_path(self, model: str) -> str:
        return self._prefixed("/api/v1.0/predictions")

    def ready_path(self, model: str) -> str:
        return self._prefixed(self.options.ready)

    @property
    def live_path(self) -> str:
        return self._prefixed(self.options.live)

    def metadata_path(self, model: str) -> str | None:
        return self._prefixed("/api/v1.0/metadata")

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        columns = [np.asarray(a).reshape(len(a), -1) for a in batch.values()]
        names = [
            name if a.ndim == 1 else f"{name}:{i}"
            for name, a in batch.items()
            for i in range(int(np.prod(np.asarray(a).shape[1:], dtype=int)))
        ]
        matrix = np.concatenate(columns, axis=1) if len(columns) > 1 else columns[0]
        if self.options.payload == "tensor":
            data: dict[str, Any] = {"tensor": {"shape": list(matrix.shape), "values": matrix.ravel().tolist()}}
        else:
            data = {"ndarray": matrix.tolist()}
        return {"data": {"names": names, **data}}

    def decode(self, response_json: Any) -> Decoded:
        if not isinstance(response_json, dict):
            raise DecodeError("Seldon v1 response is not a JSON object")
        data = response_json.get("data")
        if not isinstance(data, dict):
            raise DecodeError("Seldon v1 response has no 'data' object")
        version = self._fields.model_version(response_json) or _image_tag(response_json)
        return Decoded(
            predictions=self._predictions(data),
            scores=_scores(data),
            fallback=self._fields.fallback(response_json),
            model_version=version,
        )

    def _predictions(self, data: dict[str, Any]) -> list[Any]:
        if "ndarray" in data:
            return predictions_list(data["ndarray"], "Seldon v1 data.ndarray")
        tensor = data.get("tensor")
        if isinstance(tensor, dict):
            shape, values = tensor.get("shape"), tensor.get("values")
            try:
                arr = np.asarray(values, dtype=float).reshape(shape)
            except (TypeError, ValueError):
                raise DecodeError(f"Seldon v1 data.tensor: values do not fit shape {shape}") from None
            if arr.ndim == 2 and arr.shape[1] > 1:
                return argmax_rows(arr)
            return [v.item() for v in arr.reshape(len(arr))]
        raise DecodeError("Seldon v1 'data' has neither 'ndarray' nor 'tensor'")


def _scores(data: dict[str, Any]) -> list[list[float]] | None:
    """Class scores, where `data` holds a [rows, classes] matrix."""
    if "ndarray" in data:
        return score_rows(data["ndarray"])
    tensor = data.get("tensor")
    if isinstance(tensor, dict) and isinstance(tensor.get("shape"), list) and len(tensor["shape"]) == 2:
        try:
            return score_rows(np.asarray(tensor.get("values"), dtype=float).reshape(tensor["shape"]).tolist())
        except (TypeError, ValueError):
            return None
    return None


def _image_tag(response_json: dict[str, Any]) -> str | None:
    meta = response_json.get("meta")
    path = meta.get("requestPath") if isinstance(meta, dict) else None
    if isinstance(path, dict) and path:
        image = str(next(iter(path.values())))
        if ":" in image.rsplit("/", 1)[-1]:
            return image.rsplit(":", 1)[1]
    return None
