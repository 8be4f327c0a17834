"""ModelUser: the Locust user that sends dataset batches to the model through the adapter.

Imported only in the Locust child. Bodies are encoded once per batch and reused; each
request carries its batch's labels in the request context, and the decoded response,
so the plugin can count accuracy and fallbacks without decoding twice.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from harness.core.payload.data_fault import Reference
from harness.core.payload.payload_stream import PayloadFaults
from harness.core.protocols import DecodeError, ProtocolAdapter
from harness.engine.datasets import PayloadDataset, load_dataset
from harness.engine.load.config import LoadConfig
from harness.engine.load.failures import DecodeFailure
from harness.engine.load.pacing import PacedStart, pace
from harness.engine.load.plugin import CONTEXT_DECODED, CONTEXT_LABELS
from harness.engine.load.response_decoder import ResponseDecoder

JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}


@dataclass
class Payloads:
    """Dataset batches in turn, shared by all users of this process."""

    dataset: PayloadDataset
    adapter: ProtocolAdapter
    batch_size: int
    faults: Any = None  # harness.core.payload.payload_stream.PayloadFaults: active data faults, if any
    _bodies: dict[int, tuple[bytes, list[Any] | None]] = field(default_factory=dict)
    _turn: itertools.count = field(default_factory=itertools.count)

    def next(self) -> tuple[bytes, list[Any] | None]:
        i = next(self._turn) % self.dataset.batch_count(self.batch_size)
        body = self._bodies.get(i)
        if body is None:
            features, labels = self.dataset.batch(i, self.batch_size)
            encoded = json.dumps(self.adapter.encode(features), separators=(",", ":")).encode()
            body = self._bodies[i] = (encoded, labels.tolist() if labels is not None else None)
        if self.faults is not None and self.faults.active():
            # batch i as the active data faults change it (encoded afresh), measured against `body`
            features, labels = self.dataset.batch(i, self.batch_size)
            return self.faults.send(features, labels, self.adapter.encode, body)
        return body


class ModelUser(PacedStart, FastHttpUser):
    """POSTs one batch per task to the model's inference endpoint."""

    wait_time = constant(0)
    payloads: Payloads | None = None
    infer_path: str = "/"
    decoder: ResponseDecoder | None = None

    @task
    def infer(self) -> None:
        assert self.payloads is not None and self.decoder is not None
        body, labels = self.payloads.next()
        context = {CONTEXT_LABELS: labels, CONTEXT_DECODED: None}
        with self.client.post(
            self.infer_path, data=body, headers=JSON_HEADERS, catch_response=True, context=context
        ) as resp:
            if resp.request_meta["exception"] is not None:
                return  # HTTP or network failure: the plugin names its kind
            try:
                decoded = self.decoder.decode(resp.content)
            except (ValueError, DecodeError) as exc:
                resp.failure(DecodeFailure(str(exc)))
                return
            if labels is not None and (
                decoded.predictions is None or len(decoded.predictions) != len(labels)
            ):
                got = "none" if decoded.predictions is None else len(decoded.predictions)
                resp.failure(DecodeFailure(f"expected {len(labels)} predictions, got {got}"))
                return
            resp.request_meta["context"][CONTEXT_DECODED] = decoded


def prepare_model_user(
    config: LoadConfig, decoder: ResponseDecoder | None, load_dir: Path | None = None
) -> None:
    """Bind the run's config to ModelUser before users spawn (timeouts, payloads, pacing).

    `load_dir`: the load's work folder, where data faults' control file appears."""
    ModelUser.network_timeout = config.request_timeout
    ModelUser.connection_timeout = config.request_timeout
    pace(ModelUser, config)
    if config.dataset is None or decoder is None or ModelUser.payloads is not None:
        return
    adapter = decoder.adapter
    dataset = load_dataset(
        config.dataset, label=config.label, features=config.features, stack_as=config.stack_as
    )
    ModelUser.decoder = decoder
    ModelUser.infer_path = adapter.infer_path(config.model)
    ModelUser.payloads = Payloads(dataset, adapter, config.batch_size)
    if load_dir is not None:
        reference = Reference(dataset.features, dataset.labels)
        ModelUser.payloads.faults = PayloadFaults(reference, load_dir, write_every=config.window)


def flush_data_faults(final: bool = False) -> None:
    """Write what the active data faults delivered so far (called every window tick)."""
    payloads = ModelUser.payloads
    if payloads is not None and payloads.faults is not None:
        payloads.faults.flush(final)
