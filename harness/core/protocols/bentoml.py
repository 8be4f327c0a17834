"""BentoML services (1.2+ `@bentoml.service` with `@bentoml.api` methods).

POST /{api} with a JSON object whose keys are the API method's parameters. By default
each input array of the batch is sent as the parameter of the same name (a dataset
array `input` fills `def predict(self, input: np.ndarray)`); `param` instead sends
the whole batch, as rows, under one parameter. The answer is the method's return
value: a JSON list with one prediction per row, or an object holding such a list at
`predictions_key`. GET /readyz and /livez are BentoML's readiness and liveness;
GET /docs.json is the service's OpenAPI description (its APIs and their schemas).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from harness.core.protocols.base import (
    Decoded,
    ProtocolAdapter,
    rows_or_objects,
)
from harness.core.protocols.fields import ResponseFieldOptions, ResponseFields


class BentoMLOptions(ResponseFieldOptions):
    api: str = "predict"  # the @bentoml.api method's route
    param: str | None = None  # send all rows under this one parameter
    predictions_key: str = "predictions"  # read when the API answers an object


class BentoMLAdapter(ProtocolAdapter):
    name = "bentoml"
    Options = BentoMLOptions
    options: BentoMLOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fields = ResponseFields(self.options)

    def infer_path(self, model: str) -> str:
        return "/" + self.options.api.lstrip("/")

    def ready_path(self, model: str) -> str:
        return "/readyz"

    @property
    def live_path(self) -> str:
        return "/livez"

    def metadata_path(self, model: str) -> str | None:
        return "/docs.json"

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        if self.options.param is not None:
            return {self.options.param: rows_or_objects(batch)}
        return {name: rows_or_objects({name: array}) for name, array in batch.items()}

    def decode(self, response_json: Any) -> Decoded:
        return self._fields.list_or_keyed(response_json, self.options.predictions_key, "BentoML")
