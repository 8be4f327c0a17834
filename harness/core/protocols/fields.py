"""Per-response metadata read from a JSON body by JMESPath: the fallback flag and model version.

Protocols without a standard place for them (KServe v1, TorchServe, BentoML, Seldon v1)
let the scenario say where the server puts them, e.g. `model_version: meta.version`.
"""

from __future__ import annotations

from typing import Any

import jmespath
from pydantic import field_validator

from harness.core.json_query import check_json_query
from harness.core.protocols.base import (
    AdapterOptions,
    Decoded,
    DecodeError,
    predictions_list,
    score_rows,
)


class ResponseFieldOptions(AdapterOptions):
    fallback: str | None = None  # JMESPath to a boolean: the answer came from a fallback
    model_version: str | None = None  # JMESPath to the model version that answered

    @field_validator("fallback", "model_version")
    @classmethod
    def _compiles(cls, expr: str | None) -> str | None:
        return check_json_query(expr)


class ResponseFields:
    """Reads the optional fallback flag and model version that `options` point at."""

    def __init__(self, options: ResponseFieldOptions) -> None:
        self._fallback = jmespath.compile(options.fallback) if options.fallback else None
        self._version = jmespath.compile(options.model_version) if options.model_version else None

    def fallback(self, body: Any) -> bool | None:
        found = self._fallback.search(body) if self._fallback and isinstance(body, dict) else None
        return bool(found) if found is not None else None

    def model_version(self, body: Any) -> str | None:
        found = self._version.search(body) if self._version and isinstance(body, dict) else None
        return str(found) if found is not None else None

    def list_or_keyed(self, body: Any, key: str, server: str) -> Decoded:
        """Servers whose handlers answer either a bare list of predictions or an object
        holding them under `key` (BentoML, TorchServe): the object may carry the fields."""
        if isinstance(body, list):
            return Decoded(predictions=predictions_list(body, server), scores=score_rows(body))
        if isinstance(body, dict) and key in body:
            return Decoded(predictions=predictions_list(body[key], server), scores=score_rows(body[key]),
                           fallback=self.fallback(body), model_version=self.model_version(body))
        raise DecodeError(f"{server} response is neither a list of predictions nor an object with {key!r}")
