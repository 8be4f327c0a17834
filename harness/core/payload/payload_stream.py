"""Child side of data faults: applies the active ones to each payload batch and measures them.

Runs inside the Locust child (ModelUser's payloads). It polls the control file
(harness.core.payload.payload_channel), builds each newly active fault's transform from its spec (its
class from the one registry, built-in or third-party alike),
and for every batch: draws the rows the fault's schedule mixes in with a generator
seeded from the fault's seed and a per-fault batch counter (reproducible), applies the
transforms in injection order, encodes the result through the protocol adapter, and
adds what is sent to each fault's measurement sample (harness.core.payload.delivered), written out
every `write_every` seconds and when the fault ends.

What a fault changed is measured on the wire: the bytes (and labels) sent are compared
with those that would have been sent without it, so a fault whose change the protocol's
encoding drops (or that finds nothing to change) counts 0 changed requests, never the
share it was asked for.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.payload.columns import get, parse_column
from harness.core.payload.data_fault import (
    Batch,
    DataFault,
    Encode,
    PayloadTransform,
    Reference,
    Schedule,
)
from harness.core.payload.delivered import (
    DELIVERED_FILE,
    DeliveredLog,
    Reservoir,
    label_stats,
    per_row,
    shift_stats,
)
from harness.core.payload.payload_channel import CONTROL_FILE, ControlReader
from harness.core.registry import FAULTS

log = logging.getLogger("aftershock.data_faults")

Labels = list[Any] | None


def data_fault_class(spec: dict[str, Any]) -> type[DataFault]:
    """The class of a fault spec, from the one registry by its type: built-in and third-party
    alike. Only that fault's module is imported: importing every family into the Locust child
    would stall its load (a second on a busy box)."""
    cls = FAULTS.get(str(spec.get("type")))
    if not issubclass(cls, DataFault):
        raise TypeError(f"fault type {spec.get('type')!r} is not a data fault")
    return cls


def wire_bytes(body: Any) -> bytes:
    """A request body as it goes on the wire (compact JSON)."""
    return json.dumps(body, separators=(",", ":")).encode()


def build_transform(spec: dict[str, Any], reference: Reference) -> tuple[PayloadTransform, Schedule]:
    """The transform and schedule of one fault spec; ValueError/KeyError if they do not fit."""
    cls = data_fault_class(spec)
    p = cls.Params.model_validate(spec.get("params") or {})
    return cls.transform(p, reference), p.schedule


@dataclass
class ActiveFault:
    name: str
    type: str
    seed: int
    started: float
    transform: PayloadTransform | None
    schedule: Schedule | None
    error: str | None = None
    prepared: bool = False
    counter: int = 0
    samples: dict[str, Reservoir] = field(default_factory=dict)
    rows_since_write: int = 0
    requests: int = 0  # requests sent while it was active
    selected: int = 0  # of those, the ones its schedule picked rows (or the request) of
    changed: int = 0  # of those, the ones whose bytes or labels it changed

    def wire(self) -> dict[str, Any]:
        return {"requests": self.requests, "selected_requests": self.selected, "changed_requests": self.changed,
                "changed_share": self.changed / self.requests if self.requests else None}  # fmt: skip


class PayloadFaults:
    """The active data faults of one Locust process, applied to the payload stream."""

    def __init__(self, reference: Reference, load_dir: str | Path, write_every: float = 1.0) -> None:
        self.reference = reference
        self.reader = ControlReader(Path(load_dir) / CONTROL_FILE)
        self.log = DeliveredLog(Path(load_dir) / DELIVERED_FILE)
        self.write_every = write_every
        self.faults: dict[str, ActiveFault] = {}
        self._written = 0.0

    # --- the control file --------------------------------------------------------------

    def active(self) -> bool:
        """True while any fault is active (checks the control file at most every 50 ms)."""
        if self.reader.poll():
            self._sync(self.reader.faults)
        return bool(self.faults)

    def _sync(self, specs: dict[str, Any]) -> None:
        for name in [n for n in self.faults if n not in specs]:
            self._write([self.faults.pop(name)])  # its final measurement
        for name, spec in specs.items():
            if name in self.faults or not isinstance(spec, dict):
                continue
            fault = ActiveFault(name, str(spec.get("type")), int(spec.get("seed", 0)),
                                float(spec.get("started", time.time())), None, None)  # fmt: skip
            try:
                fault.transform, fault.schedule = build_transform(spec, self.reference)
            except Exception as exc:  # noqa: BLE001 - a fault that does not fit the payloads is reported, not fatal
                fault.error = f"{type(exc).__name__}: {exc}"
                log.error("aftershock: data fault %s (%s) cannot act: %s", name, fault.type, fault.error)
            self.faults[name] = fault
            log.info("aftershock: data fault %s (%s) active", name, fault.type)

    # --- the payloads ------------------------------------------------------------------

    def send(self, features: dict[str, np.ndarray], labels: np.ndarray | None, encode: Encode,
             clean: tuple[bytes, Labels]) -> tuple[bytes, Labels]:
        """The request to send for one batch (body bytes, labels) as the active faults change it.

        `clean` is what would be sent without them. Each fault's step is followed by the
        encoding it leads to (once per active fault; the last is what goes out), so each
        counts the requests whose bytes or labels its own step changed."""
        batch = Batch({n: np.array(a, copy=True) for n, a in features.items()},
                      None if labels is None else np.array(labels, copy=True))  # fmt: skip
        n = len(next(iter(batch.features.values())))
        now = time.time()
        sent, sent_labels = clean
        body: Any = None
        acting: list[tuple[ActiveFault, np.random.Generator]] = []
        for f in sorted(self.faults.values(), key=lambda f: f.started):  # row steps, in injection order
            if f.transform is None or f.schedule is None or not self._prepared(f, batch):
                continue
            mix, magnitude = f.schedule.at(now - f.started)
            rng = np.random.default_rng([f.seed, f.counter])
            f.counter += 1
            rows = rng.random(n) < mix
            f.requests += 1
            acting.append((f, rng))
            try:
                f.transform.apply(batch, rows, magnitude, rng)
            except (ValueError, KeyError, TypeError) as exc:
                self._fail(f, str(exc))
                continue
            if not f.transform.touches_body:
                f.selected += bool(rows.any())
                body = encode(batch.features)
                now_sent, now_labels = wire_bytes(body), _labels(batch.labels)
                f.changed += (now_sent, now_labels) != (sent, sent_labels)
                sent, sent_labels = now_sent, now_labels
        for f, rng in acting:  # then body steps (schema breaks), on the encoded request
            if f.transform is None or not f.transform.touches_body:
                continue
            body = body if body is not None else encode(batch.features)
            try:
                new = f.transform.apply_body(body, batch.features, encode, rng)
            except (ValueError, KeyError, TypeError) as exc:
                self._fail(f, str(exc))
                continue
            if new is body:
                continue  # this request was not picked
            f.selected += 1
            new_sent = wire_bytes(new)
            f.changed += new_sent != sent
            body, sent = new, new_sent
        for f, _ in acting:
            if f.transform is not None:
                self._record(f, batch)
        return sent, sent_labels

    def _prepared(self, f: ActiveFault, batch: Batch) -> bool:
        """Check the fault fits the payloads, on its first batch."""
        if not f.prepared:
            assert f.transform is not None
            try:
                f.transform.prepare(batch)
                f.prepared = True
            except (ValueError, KeyError) as exc:
                self._fail(f, str(exc))
        return f.prepared

    def _fail(self, f: ActiveFault, why: str) -> None:
        """The fault cannot act on these payloads: stop applying it, and say so in its record."""
        f.error, f.transform = why.strip("'\""), None
        log.error("aftershock: data fault %s cannot act: %s", f.name, f.error)

    # --- measurements ------------------------------------------------------------------

    def _record(self, f: ActiveFault, batch: Batch) -> None:
        assert f.transform is not None
        for key in f.transform.measured(batch):
            if key == "schema":
                continue
            if key == "label":
                values = batch.labels
            elif key in batch.features and batch.features[key].ndim > 2:
                values = per_row(batch.features[key])
            else:
                values = get(batch.features, parse_column(key))
            if values is None or values.dtype.kind in "USO":
                continue
            f.samples.setdefault(key, Reservoir(seed=f.seed)).add(values)
        f.rows_since_write += len(next(iter(batch.features.values())))

    def flush(self, final: bool = False) -> None:
        """Write the measurements of the active faults (every `write_every` s, or now if final)."""
        now = time.monotonic()
        if not final and now - self._written < self.write_every:
            return
        self._written = now
        self._write([f for f in self.faults.values() if f.rows_since_write or f.error])

    def _write(self, faults: list[ActiveFault]) -> None:
        records = []
        for f in faults:
            f.rows_since_write = 0
            base = {"fault": f.name, "type": f.type}
            if f.error:
                records.append(base | {"feature": "*", "error": f.error})
                continue
            assert f.transform is not None
            extra = f.transform.delivered() | f.wire()
            requested = f.transform.requested()
            for key, sample in f.samples.items():
                records.append(base | {"feature": key, "requested": requested, **self._measure(key, sample.sample()), **extra})
            if not f.samples:
                records.append(base | {"feature": "schema" if f.transform.touches_body else "*", "requested": requested, **extra})
        try:
            self.log.write(records)
        except OSError as exc:  # measuring must never stop the load
            log.warning("aftershock: cannot write delivered drift: %s", exc)

    def _measure(self, key: str, sent: np.ndarray) -> dict[str, Any]:
        if key == "label":
            assert self.reference.labels is not None
            return label_stats(self.reference.labels, sent)
        if key in self.reference.features and self.reference.features[key].ndim > 2:
            return shift_stats(per_row(self.reference.features[key]), sent)
        return shift_stats(self.reference.values(parse_column(key)), sent)


def _labels(labels: np.ndarray | None) -> Labels:
    return None if labels is None else labels.tolist()
