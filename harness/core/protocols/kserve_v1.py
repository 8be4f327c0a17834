"""KServe's v1 protocol (the TensorFlow Serving REST shape).

POST /v1/models/{model}:predict with {"instances": [row, ...]} answers
{"predictions": [one per row]}. GET /v1/models/{model} says whether the model is ready
(200 with "ready": true; 503 until then) and is all the metadata v1 has; GET / says
the server is alive. v1 has no field for the model version: point `model_version`
(and `fallback`) at wherever the server puts them, if it does.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.protocols.base import (
    Decoded,
    DecodeError,
    ProtocolAdapter,
    predictions_list,
    rows_or_objects,
    score_rows,
)
from harness.core.protocols.fields import ResponseFieldOptions, ResponseFields


class KServeV1Options(ResponseFieldOptions):
    predictions_key: str = "predictions"  # the key holding one prediction (or score list) per row


class KServeV1Adapter(ProtocolAdapter):
    name = "kserve-v1"
    Options = KServeV1Options
    options: KServeV1Options

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fields = ResponseFields(self.options)

    def infer_path(self, model: str) -> str:
        return f"/v1/models/{model}:predict"

    def ready_path(self, model: str) -> str:
        return f"/v1/models/{model}"

    @property
    def live_path(self) -> str:
        return "/"

    def metadata_path(self, model: str) -> str | None:
        return f"/v1/models/{model}"

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return {"instances": rows_or_objects(batch)}

    def decode(self, response_json: Any) -> Decoded:
        if not isinstance(response_json, dict) or self.options.predictions_key not in response_json:
            raise DecodeError(f"KServe v1 response has no {self.options.predictions_key!r} list")
        return Decoded(
            predictions=predictions_list(response_json[self.options.predictions_key], "KServe v1"),
            scores=score_rows(response_json[self.options.predictions_key]),
            fallback=self._fields.fallback(response_json),
            model_version=self._fields.model_version(response_json),
        )
