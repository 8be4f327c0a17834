"""The protocol adapter interface: how the harness talks to one kind of model server.

Load, attacks and probes all speak to the target through an adapter, so a new server
protocol is one small class. Adapters import nothing from Locust: the harness process
uses them as well as the Locust child.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, ValidationError

from harness.core.fault import UserError

Prediction = int | float | str


class AdapterOptions(BaseModel):
    """Base for an adapter's options (from the scenario's target section): unknown keys are errors."""

    model_config = ConfigDict(extra="forbid")


class DecodeError(ValueError):
    """The response body is not what the protocol promises (counted as a `decode` failure)."""


@dataclass(frozen=True)
class Decoded:
    """What the adapter read from one response."""

    predictions: list[Prediction] | None = None  # one per row of the batch
    scores: list[list[float]] | None = None  # class scores [rows][classes], where the server sent them
    fallback: bool | None = None  # the target says it answered from a fallback
    model_version: str | None = None


class ProtocolAdapter(ABC):
    name: ClassVar[str]  # the scenario's `protocol:` value, e.g. "oip-v2"
    Options: ClassVar[type[AdapterOptions]] = AdapterOptions
    method: ClassVar[str] = "POST"

    def __init__(self, **options: Any) -> None:
        try:
            self.options = self.Options(**options)
        except ValidationError as exc:
            raise UserError(f"protocol {self.name!r}: invalid options: {exc}") from None

    @abstractmethod
    def infer_path(self, model: str) -> str:
        """URL path of the inference endpoint, e.g. /v2/models/fraud/infer."""

    @abstractmethod
    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        """JSON body for one batch (arrays share their first axis: the rows)."""

    @abstractmethod
    def decode(self, response_json: Any) -> Decoded:
        """Read predictions, fallback flag and model version; DecodeError if malformed."""

    def version_of(self, response_json: Any) -> str | None:
        """The model version a response names, also one that is no valid answer (an error
        body): so failures count against the version that failed."""
        try:
            return self.decode(response_json).model_version
        except DecodeError:
            return None

    @abstractmethod
    def ready_path(self, model: str) -> str:
        """URL path that answers 2xx once the model can serve."""

    @property
    @abstractmethod
    def live_path(self) -> str:
        """URL path that answers 2xx while the server process is alive."""

    def metadata_path(self, model: str) -> str | None:
        """URL path (GET) that describes the model (inputs, outputs, versions); None: no such
        endpoint. May be an absolute URL where the server keeps it on another port."""
        return None


def argmax_rows(scores: Any) -> list[Prediction]:
    """Class index per row of a 2-D score matrix (list of lists)."""
    arr = np.asarray(scores)
    if arr.ndim != 2 or arr.shape[1] == 0 or not np.issubdtype(arr.dtype, np.number):
        raise DecodeError(f"expected a 2-D numeric score matrix, got shape {arr.shape}")
    return [int(i) for i in arr.argmax(axis=1)]


def as_scalar(value: Any) -> Prediction:
    """A JSON value as a prediction; a list of scores becomes its argmax."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, list) and len(value) == 1:
        return as_scalar(value[0])  # a column vector's row: the value itself, not an argmax
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return int(np.argmax(value))
    raise DecodeError(f"cannot read a prediction from {value!r:.80}")


def rows_or_objects(batch: dict[str, np.ndarray]) -> list[Any]:
    """The batch as per-row JSON: one input gives its rows as they are (a row may be a
    list), several give one object per row keyed by input name."""
    columns = {name: _plain_list(np.asarray(a)) for name, a in batch.items()}
    if len(columns) == 1:
        return next(iter(columns.values()))
    n = len(next(iter(columns.values()))) if columns else 0
    return [{name: col[i] for name, col in columns.items()} for i in range(n)]


def _plain_list(array: np.ndarray) -> list[Any]:
    if array.dtype.kind == "S":
        return [v.decode() for v in array.tolist()]
    return array.tolist()


def score_rows(values: Any) -> list[list[float]] | None:
    """`values` as class scores [rows][classes] when it is a numeric matrix of two or more
    columns (e.g. BentoML's `predict_proba` answered as a plain list of lists); else None."""
    if not isinstance(values, list) or not values:
        return None
    if not all(isinstance(row, list) and len(row) > 1 for row in values):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for row in values for v in row):
        return None
    width = len(values[0])
    if any(len(row) != width for row in values):
        return None
    return [[float(v) for v in row] for row in values]


def predictions_list(values: Any, where: str) -> list[Prediction]:
    """One prediction per row from a JSON list (a row of scores becomes its argmax)."""
    if not isinstance(values, list):
        raise DecodeError(f"{where}: expected a list with one prediction per row, got {type(values).__name__}")
    return [as_scalar(v) for v in values]


def same_prediction(prediction: Prediction, label: Any) -> bool:
    """Prediction equals label: numbers compare by value (1 == 1.0), else as text."""
    if isinstance(label, np.generic):
        label = label.item()
    numeric = (int, float)
    if isinstance(prediction, numeric) and isinstance(label, numeric):
        return float(prediction) == float(label)
    return str(prediction) == str(label)
