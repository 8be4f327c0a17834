"""A KServe model server for the iris classifier: predictor, or transformer in front of one.

The predictor is a `kserve.Model` that loads a scikit-learn model (what KServe's own
sklearnserver does) and answers v1 and v2 requests. The transformer is KServe's
transformer pattern: it validates the request and forwards it to the predictor at
`--predictor_host` through KServe's own client, as an InferenceService does between
its transformer and predictor pods. Run with the kserve venv's python.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

import joblib
import numpy as np
from kserve import InferRequest, InferResponse, Model, ModelServer, model_server
from kserve.errors import InvalidInput
from kserve.utils.utils import get_predict_input, get_predict_response

VERSION = os.environ.get("IRIS_MODEL_VERSION", "1")


class IrisPredictor(Model):
    def __init__(self, name: str, model_path: str) -> None:
        super().__init__(name)
        self.model_path = model_path
        self.model: Any = None

    def load(self) -> bool:
        self.model = joblib.load(self.model_path)
        self.ready = True
        return self.ready

    async def predict(self, payload: dict | InferRequest, headers: dict | None = None,
                      response_headers: dict | None = None) -> dict | InferResponse:
        try:
            x = np.asarray(get_predict_input(payload), dtype=np.float64)
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot read the input rows: {exc}") from None
        if x.ndim != 2 or x.shape[1] != 4:
            raise InvalidInput(f"expected rows of 4 iris features, got shape {list(x.shape)}")
        labels = self.model.predict(x)
        if isinstance(payload, InferRequest):
            response = get_predict_response(payload, labels, self.name)
            response.model_version = VERSION
            return response
        return {"predictions": labels.tolist(), "model_version": VERSION}


class IrisTransformer(Model):
    """Checks the rows, then lets KServe forward them to the predictor (Model.predict)."""

    async def preprocess(self, payload: dict | InferRequest, headers: dict | None = None) -> dict | InferRequest:
        try:
            x = np.asarray(get_predict_input(payload))
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"cannot read the input rows: {exc}") from None
        if x.ndim != 2 or x.shape[1] != 4:
            raise InvalidInput(f"expected rows of 4 iris features, got shape {list(x.shape)}")
        return payload


def main() -> None:
    parser = argparse.ArgumentParser(parents=[model_server.parser])
    parser.add_argument("--model_path", help="joblib file (predictor)")
    args, _ = parser.parse_known_args()
    if args.predictor_host:
        model: Model = IrisTransformer(args.model_name)
        model.ready = True
    else:
        model = IrisPredictor(args.model_name, args.model_path)
        model.load()
    ModelServer().start([model])


if __name__ == "__main__":
    main()
