"""A BentoML service serving the iris classifier (run by `bentoml serve` in the bentoml venv).

The model file comes from IRIS_MODEL (a joblib written by train_iris.py); the answer
carries the model version the service was started with, as a service that reports it
per request would.
"""

from __future__ import annotations

import os

import bentoml
import joblib
import numpy as np


@bentoml.service(workers=1)
class Iris:
    def __init__(self) -> None:
        self.model = joblib.load(os.environ["IRIS_MODEL"])
        self.version = os.environ.get("IRIS_MODEL_VERSION", "1")

    def _labels(self, rows: np.ndarray) -> np.ndarray:
        if rows.ndim != 2 or rows.shape[1] != 4:
            raise bentoml.exceptions.InvalidArgument(
                f"expected rows of 4 iris features, got shape {list(rows.shape)}"
            )
        return self.model.predict(rows)

    @bentoml.api
    def predict(self, input: np.ndarray) -> np.ndarray:
        return self._labels(input)

    @bentoml.api
    def predict_proba(self, input: np.ndarray) -> np.ndarray:
        self._labels(input)  # the same input check
        return self.model.predict_proba(input)  # a plain [rows, classes] list of lists on the wire

    @bentoml.api
    def predict_versioned(self, input: np.ndarray) -> dict:
        return {"predictions": self._labels(input).tolist(), "model_version": self.version}
