"""TorchServe handler for the iris TorchScript model (packed into a .mar by the launcher).

Each request body is {"data": [[4 features], ...]}; the answer is an object with one
label per row and the model version from the archive's manifest (TorchServe itself
sends no version per request).
"""

from __future__ import annotations

import json

import torch
from ts.torch_handler.base_handler import BaseHandler
from ts.utils.util import PredictionException


class IrisHandler(BaseHandler):
    def preprocess(self, requests: list[dict]) -> list[torch.Tensor]:
        rows = []
        for req in requests:
            body = req.get("body") or req.get("data")
            if isinstance(body, (bytes, bytearray)):
                body = json.loads(body)
            try:
                x = torch.tensor(body["data"], dtype=torch.float32)
            except (KeyError, TypeError, ValueError) as exc:
                raise PredictionException(f"cannot read the rows under 'data': {exc}", 400) from None
            if x.ndim != 2 or x.shape[1] != 4:
                raise PredictionException(f"expected rows of 4 iris features, got shape {list(x.shape)}", 400)
            rows.append(x)
        return rows

    def inference(self, rows: list[torch.Tensor], *args, **kwargs) -> list[torch.Tensor]:
        with torch.no_grad():
            return [self.model(x).argmax(dim=1) for x in rows]

    def postprocess(self, labels: list[torch.Tensor]) -> list[dict]:
        version = self.context.manifest["model"].get("modelVersion") if self.context else None
        return [{"predictions": y.tolist(), "model_version": version} for y in labels]
