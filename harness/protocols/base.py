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

from harness.fault import UserError

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

    @abstractmethod
    def ready_path(self, model: str) -> str:
        """URL path that answers 2xx once the model can serve."""

    @property
    @abstractmethod
    def live_path(self) -> str:
        """URL path that answers 2xx while the server process is alive."""


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
    if (
        isinstance(value, list)
        and value
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    ):
        return int(np.argmax(value))
    raise DecodeError(f"cannot read a prediction from {value!r:.80}")


def same_prediction(prediction: Prediction, label: Any) -> bool:
    """Prediction equals label: numbers compare by value (1 == 1.0), else as text."""
    if isinstance(label, np.generic):
        label = label.item()
    numeric = (int, float)
    if isinstance(prediction, numeric) and isinstance(label, numeric):
        return float(prediction) == float(label)
    return str(prediction) == str(label)
