"""A plain JSON-over-HTTP model server: a request template and JMESPath expressions.

For servers that speak no standard protocol, e.g. `POST /predict {"instances": [...]}`
answering `{"predictions": [...]}`. The template is any JSON value; the strings
`$rows` (list of per-row objects) and `$columns` (object of column lists) anywhere
in it are replaced by the batch. The predictions expression must yield one value per
row (a list of class scores counts as one value: its argmax).
"""

from __future__ import annotations

from typing import Any

import jmespath
import numpy as np
from pydantic import Field, field_validator

from harness.core.json_query import check_json_query
from harness.core.protocols.base import (
    AdapterOptions,
    Decoded,
    DecodeError,
    ProtocolAdapter,
    as_scalar,
    score_rows,
)


class HttpJsonOptions(AdapterOptions):
    path: str = "/predict"  # `{model}` is replaced by the model name
    template: Any = Field(default_factory=lambda: {"instances": "$rows"})
    predictions: str = "predictions"  # JMESPath to the prediction (or score list) per row
    fallback: str | None = None  # JMESPath to a boolean
    model_version: str | None = None  # JMESPath to the model version
    ready: str = "/ready"
    live: str = "/health"

    @field_validator("predictions", "fallback", "model_version")
    @classmethod
    def _compiles(cls, expr: str | None) -> str | None:
        return check_json_query(expr)


def _plain(value: Any) -> Any:
    return value.decode() if isinstance(value, bytes) else value


class HttpJsonAdapter(ProtocolAdapter):
    name = "http-json"
    Options = HttpJsonOptions
    options: HttpJsonOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._predictions = jmespath.compile(self.options.predictions)
        self._fallback = jmespath.compile(self.options.fallback) if self.options.fallback else None
        self._version = (
            jmespath.compile(self.options.model_version) if self.options.model_version else None
        )

    def infer_path(self, model: str) -> str:
        return self.options.path.replace("{model}", model)

    def ready_path(self, model: str) -> str:
        return self.options.ready.replace("{model}", model)

    @property
    def live_path(self) -> str:
        return self.options.live

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        columns = {name: [_plain(v) for v in np.asarray(a).tolist()] for name, a in batch.items()}
        n = len(next(iter(columns.values()))) if columns else 0
        rows = [{name: col[i] for name, col in columns.items()} for i in range(n)]
        return self._fill(self.options.template, {"$rows": rows, "$columns": columns})

    def _fill(self, node: Any, values: dict[str, Any]) -> Any:
        if isinstance(node, str) and node in values:
            return values[node]
        if isinstance(node, dict):
            return {k: self._fill(v, values) for k, v in node.items()}
        if isinstance(node, list):
            return [self._fill(v, values) for v in node]
        return node

    def decode(self, response_json: Any) -> Decoded:
        found = self._predictions.search(response_json)
        if found is None:
            raise DecodeError(f"response has nothing at {self.options.predictions!r}")
        predictions = (
            [as_scalar(v) for v in found] if isinstance(found, list) else [as_scalar(found)]
        )
        fallback = self._fallback.search(response_json) if self._fallback else None
        version = self._version.search(response_json) if self._version else None
        return Decoded(
            predictions=predictions,
            scores=score_rows(found),
            fallback=bool(fallback) if fallback is not None else None,
            model_version=str(version) if version is not None else None,
        )
