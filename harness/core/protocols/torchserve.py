"""TorchServe's inference API.

POST /predictions/{model}[/{version}] sends the request body to the model's handler;
what the body looks like is the handler's choice. This adapter sends
{"<input_key>": [row, ...]} (the whole batch in one request) and reads either a JSON
list with one prediction per row or an object with a `predictions_key` list.
GET /ping answers 200 "Healthy" once every model has its workers (500 otherwise), so it
serves as both liveness and readiness. Model metadata (GET /models/{model}) lives on
the management port, not the inference port: give `management_url` to have
`probe-target` read it.
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


class TorchServeOptions(ResponseFieldOptions):
    input_key: str = "data"  # the request key holding the rows
    predictions_key: str = "predictions"  # read when the handler answers an object
    version: str | None = None  # pin a registered version: /predictions/{model}/{version}
    management_url: str | None = None  # e.g. http://127.0.0.1:8081, for metadata


class TorchServeAdapter(ProtocolAdapter):
    name = "torchserve"
    Options = TorchServeOptions
    options: TorchServeOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fields = ResponseFields(self.options)

    def infer_path(self, model: str) -> str:
        path = f"/predictions/{model}"
        return f"{path}/{self.options.version}" if self.options.version else path

    def ready_path(self, model: str) -> str:
        return "/ping"

    @property
    def live_path(self) -> str:
        return "/ping"

    def metadata_path(self, model: str) -> str | None:
        """Absolute URL on the management API when `management_url` is set."""
        if self.options.management_url is None:
            return None
        return f"{self.options.management_url.rstrip('/')}/models/{model}"

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        return {self.options.input_key: rows_or_objects(batch)}

    def decode(self, response_json: Any) -> Decoded:
        return self._fields.list_or_keyed(response_json, self.options.predictions_key, "TorchServe")
