"""What a data fault changed, measured on the bytes sent: every protocol, every schema break.

The real child-side pipeline (harness.core.payload.payload_stream) runs against the real control file,
encoding through each real protocol adapter; the truth is the clean encoding of the same
batch, which the test computes itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from faults.corruption import Noise
from faults.schema_break import SchemaBreak
from harness.core.fault import FaultContext
from harness.core.payload.data_fault import DataFault, DataFaultDidNotAct, Reference
from harness.core.payload.payload_stream import PayloadFaults, wire_bytes
from harness.core.protocols import make_adapter

PROTOCOLS = ["oip-v2", "kserve-v1", "bentoml", "torchserve", "seldon-v1", "http-json"]
KINDS = ["missing_field", "extra_field", "wrong_dtype", "wrong_shape"]
REQUESTS = 40


def one_input() -> dict[str, np.ndarray]:
    return {"features": np.arange(24, dtype=np.float32).reshape(8, 3)}


def two_inputs() -> dict[str, np.ndarray]:
    return {"features": np.arange(24, dtype=np.float32).reshape(8, 3), "entity_id": np.arange(8, dtype=np.int64)}


def drive(tmp_path: Path, fault: DataFault, protocol: str, data: dict[str, np.ndarray]) -> list[tuple[bytes, bytes]]:
    """Send REQUESTS 2-row batches with `fault` active; (clean, sent) bytes per request."""
    adapter = make_adapter(protocol)
    pf = PayloadFaults(Reference(data, None), tmp_path, write_every=0)
    pf.reader.min_interval = 0
    fault.inject()
    try:
        assert pf.active()
        pairs = []
        for i in range(REQUESTS):
            rows = np.arange(2 * i, 2 * i + 2) % len(next(iter(data.values())))
            batch = {k: v[rows] for k, v in data.items()}
            clean = wire_bytes(adapter.encode(batch))
            sent, _ = pf.send(batch, None, adapter.encode, (clean, None))
            pairs.append((clean, sent))
    finally:
        fault.revert()
    assert not pf.active()  # the child wrote its final record
    return pairs


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", [one_input, two_inputs])
def test_schema_break_changes_every_protocols_body(tmp_path: Path, protocol: str, kind: str, form) -> None:
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=3)
    fault = SchemaBreak("broken", SchemaBreak.Params.model_validate({"kind": kind}), ctx)
    pairs = drive(tmp_path, fault, protocol, form())
    assert all(sent != clean for clean, sent in pairs)
    for _, sent in pairs:
        json.loads(sent)  # still JSON: the break is in the schema, not the syntax
    assert fault.metrics() == {"changed_share": 1.0}


def test_changed_share_counts_the_requests_changed(tmp_path: Path) -> None:
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=3)
    fault = SchemaBreak("some", SchemaBreak.Params.model_validate({"kind": "wrong_dtype", "fraction": 0.5}), ctx)
    pairs = drive(tmp_path, fault, "kserve-v1", one_input())
    truth = sum(sent != clean for clean, sent in pairs) / len(pairs)
    assert 0.2 < truth < 0.8
    assert fault.metrics()["changed_share"] == pytest.approx(truth)


def test_a_fault_that_changes_no_byte_fails_loudly(tmp_path: Path) -> None:
    # noise in reference standard deviations on a constant column: there is no scale to add it in
    data = {"pixels": np.zeros((8, 3), np.float32)}
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=3)
    fault = Noise("noise", Noise.Params.model_validate({"std": 2.0, "fraction": 1.0}), ctx)
    pairs = drive(tmp_path, fault, "oip-v2", data)
    assert all(sent == clean for clean, sent in pairs)
    with pytest.raises(DataFaultDidNotAct, match="bytes and labels sent are those"):
        fault.metrics()


def test_too_few_picks_to_judge_report_zero_without_failing(tmp_path: Path) -> None:
    data = {"pixels": np.zeros((8, 3), np.float32)}
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=3)
    fault = Noise("noise", Noise.Params.model_validate({"std": 2.0, "fraction": 0.1}), ctx)
    drive(tmp_path, fault, "oip-v2", data)  # 40 requests x 0.1: 4 expected changes, too few to call it broken
    assert fault.metrics() == {"changed_share": 0.0}


def test_a_fault_without_requests_is_not_measured(tmp_path: Path) -> None:
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=3)
    fault = SchemaBreak("idle", SchemaBreak.Params.model_validate({"kind": "wrong_dtype"}), ctx)
    fault.inject()
    fault.revert()
    assert fault.metrics() == {}


def test_ratios_against_a_constant_reference_are_not_made_up() -> None:
    from harness.core.payload.delivered import shift_stats

    flat = np.zeros(200)
    noisy = shift_stats(flat, np.random.default_rng(0).normal(0, 2, 200))
    assert noisy["std_ratio"] == float("inf")  # was 2.0: the made-up scale of 1 raw unit
    same = shift_stats(flat, np.zeros(50))
    assert same["std_ratio"] is None and same["mean_shift_std"] is None
    assert shift_stats(flat, np.ones(50))["mean_shift_std"] == float("inf")
