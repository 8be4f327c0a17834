"""Drift faults on the payload stream: delivered magnitudes measured against the requested ones.

These drive the real child-side pipeline (harness.core.payload.payload_stream.PayloadFaults) through the
real control file, the way the Locust child does, on the demo's synthetic data.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from faults.drift import ConceptDrift, CovariateShift, FeatureSwap, PriorShift
from harness.core.fault import FaultContext, UserError
from harness.core.payload.data_fault import Reference, Schedule
from harness.core.payload.delivered import DELIVERED_FILE, delivered_events, psi, shift_stats
from harness.core.payload.payload_channel import CONTROL_FILE, ControlReader, put_fault
from harness.core.payload.payload_stream import PayloadFaults, wire_bytes
from harness.core.protocols import make_adapter
from harness.demo.data import sample

OIP = make_adapter("oip-v2")

ROOT = Path(__file__).resolve().parents[1]

ROWS = 2000


@pytest.fixture(scope="module")
def data() -> dict[str, np.ndarray]:
    s = sample(ROWS, sample_seed=5)
    return {"features": s.features, "entity_id": s.entity_id, "label": s.label}


def reference(data: dict[str, np.ndarray]) -> Reference:
    return Reference({"features": data["features"], "entity_id": data["entity_id"]}, data["label"])


def send(pf: PayloadFaults, features: dict[str, np.ndarray], labels: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """One batch through the pipeline as the load sends it (OIP v2), read back from the bytes sent."""
    clean = (wire_bytes(OIP.encode(features)), labels.tolist())
    body, sent_labels = pf.send(features, labels, OIP.encode, clean)
    inputs = json.loads(body)["inputs"]
    return {t["name"]: np.array(t["data"]).reshape(t["shape"]) for t in inputs}, np.array(sent_labels)


def stream(data, tmp_path: Path, faults: list, batch: int = 1, rows: int = ROWS, seed: int = 7):
    """Inject `faults` [(cls, name, params)], send `rows` rows through the pipeline, revert;
    returns (sent features, sent labels, delivered events by (fault, feature))."""
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=seed)
    pf = PayloadFaults(reference(data), tmp_path, write_every=0)
    made = [cls(name, cls.Params.model_validate(params), ctx) for cls, name, params in faults]
    for f in made:
        f.inject()
    pf.reader.min_interval = 0
    assert pf.active()
    sent, labels = [], []
    for i in range(0, rows, batch):
        idx = np.arange(i, i + batch) % ROWS
        feats, y = send(pf, {"features": data["features"][idx], "entity_id": data["entity_id"][idx]}, data["label"][idx])
        sent.append(feats["features"])
        labels.append(y)
    for f in made:
        f.revert()
        f.revert()  # idempotent
    assert not pf.active()  # the child noticed; the final measurements are written
    events = {(e["fault"], e["feature"]): e for e in delivered_events(tmp_path)}
    return np.concatenate(sent), np.concatenate(labels), events


@pytest.mark.parametrize("shift", [0.5, 1.0, 2.0])
def test_covariate_shift_delivers_the_requested_std_shift(data, tmp_path: Path, shift: float) -> None:
    params = {"columns": ["features[1]", "features[3]"], "shift": shift}
    sent, _, events = stream(data, tmp_path, [(CovariateShift, "cs", params)], batch=4)
    for col in (1, 3):
        ev = events[("cs", f"features[{col}]")]
        assert ev["requested"]["shift_std"] == shift
        assert ev["mean_shift_std"] == pytest.approx(shift, abs=0.05)
        ref = data["features"][:, col].astype(np.float64)
        # a pure translation: Wasserstein distance = shift * std (float32 rounding aside)
        assert ev["wasserstein"] == pytest.approx(shift * ref.std(), rel=0.05)
        assert ev["ks"] > 0.15 and ev["psi"] > 0.1
    untouched = sent[:, 0]
    assert np.allclose(untouched, data["features"][:, 0])


def test_scale_and_fraction(data, tmp_path: Path) -> None:
    params = {"columns": ["features[3]"], "shift": 0.0, "scale": 2.0}
    _, _, events = stream(data, tmp_path / "a", [(CovariateShift, "cs", params)])
    assert events[("cs", "features[3]")]["std_ratio"] == pytest.approx(2.0, rel=0.05)
    params = {"columns": ["features[3]"], "shift": 2.0, "fraction": 0.5}
    _, _, events = stream(data, tmp_path / "b", [(CovariateShift, "half", params)])
    ev = events[("half", "features[3]")]
    assert ev["requested"]["shift_std"] == 1.0  # half the rows moved by 2 std: the mean moves by 1
    assert ev["mean_shift_std"] == pytest.approx(1.0, abs=0.12)


def test_no_shift_measures_as_no_drift(data) -> None:
    x = data["features"][:, 0].astype(np.float64)
    stats = shift_stats(x, x.copy())
    assert stats["ks"] == 0 and stats["mean_shift_std"] == 0 and stats["psi"] < 1e-9
    assert psi(x, x + 10 * x.std()) > 5


def test_seeded_and_reproducible(data, tmp_path: Path) -> None:
    params = {"columns": ["features[2]"], "shift": 1.0, "fraction": 0.3}
    a, _, _ = stream(data, tmp_path / "a", [(CovariateShift, "x", params)], rows=300)
    b, _, _ = stream(data, tmp_path / "b", [(CovariateShift, "x", params)], rows=300)
    c, _, _ = stream(data, tmp_path / "c", [(CovariateShift, "x", params)], rows=300, seed=8)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_schedules() -> None:
    gradual = Schedule(kind="gradual", position=10, width=4)
    assert gradual.at(10)[0] == pytest.approx(0.5)
    assert gradual.at(10 + 4)[0] == pytest.approx(1 / (1 + math.exp(-4)))  # river's sigmoid
    assert gradual.at(0)[0] < 0.001 and gradual.at(30)[0] > 0.999
    inc = Schedule(kind="incremental", ramp=10)
    assert inc.at(2.5) == (1.0, 0.25) and inc.at(20) == (1.0, 1.0)
    rec = Schedule(kind="recurring", period=10, duty=0.3)
    assert [rec.at(t)[0] for t in (1, 4, 11, 14)] == [1.0, 0.0, 1.0, 0.0]
    assert Schedule().at(0) == (1.0, 1.0)


def test_gradual_schedule_mixes_in_over_time(data, tmp_path: Path) -> None:
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path, seed=1)
    params = CovariateShift.Params.model_validate(
        {"columns": ["features[3]"], "shift": 3.0, "schedule": {"kind": "gradual", "position": "100s", "width": "10s"}})
    fault = CovariateShift("g", params, ctx)
    fault.inject()
    pf = PayloadFaults(reference(data), tmp_path, write_every=0)
    assert pf.active()
    f = pf.faults["g"]
    moved = []
    for started_ago in (70, 100, 130):  # before, at and after the sigmoid's centre
        f.started = time.time() - started_ago
        feats, _ = send(pf, {"features": data["features"], "entity_id": data["entity_id"]}, data["label"])
        moved.append(float(np.mean(feats["features"][:, 3] != data["features"][:, 3])))
    fault.revert()
    assert moved[0] < 0.01 and moved[1] == pytest.approx(0.5, abs=0.05) and moved[2] > 0.99


def test_prior_shift_delivers_the_class_mix(data, tmp_path: Path) -> None:
    params = {"proportions": {0: 0.9, 1: 0.1}}
    sent, labels, events = stream(data, tmp_path, [(PriorShift, "prior", params)], batch=8)
    ev = events[("prior", "label")]
    assert ev["shares"]["0"] == pytest.approx(0.9, abs=0.03)
    assert np.mean(labels == 0) == pytest.approx(0.9, abs=0.03)
    assert ev["tvd"] > 0.3
    # resampled rows are real reference rows with their own labels
    rows = {tuple(r) + (int(y),) for r, y in zip(data["features"], data["label"])}
    assert all(tuple(r) + (int(y),) in rows for r, y in zip(sent[:200], labels[:200]))


def test_concept_drift_relabels_but_keeps_features(data, tmp_path: Path) -> None:
    sent, labels, events = stream(data, tmp_path, [(ConceptDrift, "concept", {"fraction": 0.4})])
    assert np.array_equal(sent, data["features"])
    changed = np.mean(labels != data["label"])
    ev = events[("concept", "label")]
    assert ev["requested"]["relabelled_share"] == pytest.approx(0.4)
    assert ev["relabelled_share"] == pytest.approx(changed) and changed == pytest.approx(0.4, abs=0.04)
    assert set(np.unique(labels[labels != data["label"]] + data["label"][labels != data["label"]])) == {1}


def test_feature_swap(data, tmp_path: Path) -> None:
    sent, _, _ = stream(data, tmp_path, [(FeatureSwap, "swap", {"columns": ["features[0]", "features[3]"]})])
    assert np.array_equal(sent[:, 0], data["features"][:, 3]) and np.array_equal(sent[:, 3], data["features"][:, 0])


def test_control_file_and_replay_undo(tmp_path: Path) -> None:
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path)
    fault = CovariateShift("cs", CovariateShift.Params.model_validate({"columns": ["x"]}), ctx)
    record = fault.undo_record()
    fault.inject()
    reader = ControlReader(tmp_path / CONTROL_FILE, min_interval=0)
    assert reader.poll() and set(reader.faults) == {"cs"}
    assert not reader.poll()  # unchanged: one stat, no re-read
    assert "removed" in CovariateShift.replay_undo(record)  # after a crash: undone from the record alone
    assert reader.poll() and reader.faults == {}
    assert "already gone" in CovariateShift.replay_undo(record)


def test_without_a_load_folder_is_a_user_error() -> None:
    fault = CovariateShift("cs", CovariateShift.Params.model_validate({"columns": ["x"]}), FaultContext(toxiproxy_url=""))
    with pytest.raises(UserError, match="load"):
        fault.inject()
    fault.revert()  # safe after a failed inject


def test_a_fault_that_does_not_fit_the_payloads_is_reported(data, tmp_path: Path) -> None:
    put_fault(tmp_path / CONTROL_FILE, "bad", {"type": "data.covariate_shift", "params": {"columns": ["nope"]}, "seed": 1,
                                               "started": time.time()})
    pf = PayloadFaults(reference(data), tmp_path, write_every=0)
    assert pf.active()
    feats, _ = send(pf, {"features": data["features"][:2], "entity_id": data["entity_id"][:2]}, data["label"][:2])
    assert np.array_equal(feats["features"], data["features"][:2])  # the payload is sent unchanged
    pf.flush(final=True)
    (event,) = delivered_events(tmp_path)
    assert "nope" in event["error"]


def test_delivered_events_combine_processes(tmp_path: Path) -> None:
    lines = [
        '{"time": 1, "pid": 1, "fault": "f", "feature": "x", "rows": 100, "ks": 0.2, "mean_shift_std": 1.0}',
        '{"time": 2, "pid": 1, "fault": "f", "feature": "x", "rows": 300, "ks": 0.4, "mean_shift_std": 1.0}',
        '{"time": 2, "pid": 2, "fault": "f", "feature": "x", "rows": 100, "ks": 0.8, "mean_shift_std": 2.0}',
        '{"time": 3, "pid": 2, "fault": "f", "feat',
    ]
    (tmp_path / DELIVERED_FILE).write_text("\n".join(lines))
    (ev,) = delivered_events(tmp_path)
    assert ev["rows"] == 400 and ev["ks"] == pytest.approx(0.5) and ev["mean_shift_std"] == pytest.approx(1.25)


def test_delivered_ks_and_wasserstein_agree_with_scipy() -> None:
    from scipy import stats

    from harness.core.payload.delivered import ks_statistic, wasserstein

    rng = np.random.default_rng(3)
    for n, m, shift in [(100, 80, 0.3), (1000, 37, 1.0), (5, 5, 0.0), (2000, 2000, 0.01)]:
        a, b = rng.normal(0, 1, n), rng.normal(shift, 1.5, m)
        b[:3] = a[:3]  # ties between the samples
        assert ks_statistic(a, b) == pytest.approx(stats.ks_2samp(a, b, method="asymp").statistic, abs=1e-12)
        assert wasserstein(a, b) == pytest.approx(stats.wasserstein_distance(a, b), rel=1e-9)


def test_the_load_child_modules_do_not_import_scipy() -> None:
    # scipy in the Locust child stalls its request loop for a second when first imported
    code = "import sys, harness.core.payload.payload_stream, harness.engine.load.plugin, harness.engine.load.model_user; print('scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "False"
