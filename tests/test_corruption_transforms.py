"""Tabular corruptions, schema breaks and image corruptions: what they do to the payloads."""

from __future__ import annotations

import numpy as np
import pytest

from faults.corruption import TABULAR_CORRUPTIONS, typo
from faults.image_corruption import CORRUPTIONS, ImageCorruption, corrupt_image
from faults.schema_break import SchemaBreak
from harness.core.payload.data_fault import Batch, Reference
from harness.core.protocols import make_adapter
from harness.core.protocols.oip_v2 import OipV2Adapter

RNG_SEED = 3


def table(n: int = 4000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"x": rng.normal(10, 2, (n, 3)).astype(np.float32), "city": np.array(["paris", "berlin"] * (n // 2))}


def run(fault_type: str, params: dict, data: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], object]:
    cls = TABULAR_CORRUPTIONS[fault_type]
    ref = Reference(data, np.zeros(len(data["x"])))
    t = cls.transform(cls.Params.model_validate(params), ref)
    batch = Batch({k: v.copy() for k, v in data.items()}, None)
    t.prepare(batch)
    t.apply(batch, np.ones(len(data["x"]), bool), 1.0, np.random.default_rng(RNG_SEED))
    return batch.features, t


def test_missing_mcar_hits_the_requested_fraction_and_fill() -> None:
    data = table()
    out, _ = run("data.missing", {"columns": ["x[0]"], "fraction": 0.3}, data)
    assert np.isnan(out["x"][:, 0]).mean() == pytest.approx(0.3, abs=0.03)
    assert not np.isnan(out["x"][:, 1:]).any()
    out, _ = run("data.missing", {"columns": ["x[1]"], "fraction": 0.3, "fill": "mean"}, data)
    changed = out["x"][:, 1] != data["x"][:, 1]
    assert np.allclose(out["x"][changed, 1], data["x"][:, 1].mean(), atol=1e-3)


def test_missing_mnar_and_mar_depend_on_values() -> None:
    data = table()
    out, _ = run("data.missing", {"columns": ["x[0]"], "fraction": 0.3, "mechanism": "MNAR"}, data)
    gone = np.isnan(out["x"][:, 0])
    assert gone.mean() == pytest.approx(0.3, abs=0.04)
    assert data["x"][gone, 0].mean() > data["x"][~gone, 0].mean() + 1  # high values go missing
    out, _ = run("data.missing", {"columns": ["x[0]"], "fraction": 0.3, "mechanism": "MAR", "depends_on": "x[2]"}, data)
    gone = np.isnan(out["x"][:, 0])
    assert data["x"][gone, 2].mean() > data["x"][~gone, 2].mean() + 1  # driven by the other column


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_nan_and_inf(value: str) -> None:
    out, _ = run("data.nan", {"fraction": 0.1, "value": value}, table())
    bad = ~np.isfinite(out["x"])
    assert bad.mean() == pytest.approx(0.1, abs=0.02)
    assert np.all(out["x"][bad] == float(value)) if value != "nan" else np.isnan(out["x"][bad]).all()


def test_out_of_range_unit_scale_noise() -> None:
    data = table()
    out, _ = run("data.out_of_range", {"columns": ["x[0]"], "fraction": 0.2}, data)
    changed = out["x"][:, 0] != data["x"][:, 0]
    assert changed.mean() == pytest.approx(0.2, abs=0.03)
    assert (out["x"][changed, 0] > data["x"][:, 0].max()).all()
    out, _ = run("data.unit_scale", {"columns": ["x[1]"], "fraction": 1.0, "factor": 1000}, data)
    assert np.allclose(out["x"][:, 1], data["x"][:, 1] * 1000, rtol=1e-5)
    out, _ = run("data.noise", {"columns": ["x[2]"], "std": 0.5}, data)
    noise = out["x"][:, 2].astype(np.float64) - data["x"][:, 2]
    assert noise.std() == pytest.approx(0.5 * data["x"][:, 2].std(), rel=0.08)  # in reference std units


def test_swap_columns_and_typos() -> None:
    data = table()
    out, _ = run("data.swap_columns", {"columns": ["x[0]", "x[1]"], "fraction": 0.25}, data)
    swapped = out["x"][:, 0] != data["x"][:, 0]
    assert swapped.mean() == pytest.approx(0.25, abs=0.03)
    assert np.array_equal(out["x"][swapped, 0], data["x"][swapped, 1])
    out, t = run("data.category_typo", {"columns": ["city"], "fraction": 0.2}, data)
    changed = out["city"] != data["city"]
    assert changed.mean() == pytest.approx(0.2, abs=0.03)
    assert t.delivered()["typo_share"] == pytest.approx(changed.mean(), abs=0.01)
    rng = np.random.default_rng(1)
    assert all(typo("berlin", rng) != "berlin" for _ in range(50))
    with pytest.raises(ValueError, match="not text"):
        run("data.category_typo", {"columns": ["x[0]"]}, data)


def test_every_tabular_corruption_has_five_valid_severities() -> None:
    for cls in TABULAR_CORRUPTIONS.values():
        assert len(cls.SEVERITIES) == 5
        if cls.type != "data.category_typo":  # that one needs its text columns named
            for s in cls.SEVERITIES:
                cls.Params.model_validate(s)


OIP = OipV2Adapter()


def body() -> dict:
    return OIP.encode({"features": np.ones((2, 6), np.float32), "entity_id": np.array([1, 2])})


def broken(kind: str, field: str | None = None, adapter=OIP, features: dict | None = None) -> dict:
    t = SchemaBreak.transform(SchemaBreak.Params.model_validate({"kind": kind, "field": field}), None)  # type: ignore[arg-type]  # the transform does not use the reference here
    features = features or {"features": np.ones((2, 6), np.float32), "entity_id": np.array([1, 2])}
    t.prepare(Batch(features, None))
    t.apply(Batch(features, None), np.ones(2, bool), 1.0, np.random.default_rng(0))
    return t.apply_body(adapter.encode(features), features, adapter.encode, np.random.default_rng(0))


def test_schema_breaks_on_oip_v2_bodies() -> None:
    names = lambda b: [t["name"] for t in b["inputs"]]
    assert names(broken("missing_field")) == ["features"]
    assert names(broken("missing_field", "features")) == ["entity_id"]
    assert names(broken("extra_field")) == ["features", "entity_id", "unexpected_input"]
    wrong = broken("wrong_dtype", "features")["inputs"][0]
    assert wrong["datatype"] == "BYTES" and all(isinstance(v, str) for v in wrong["data"])
    shaped = broken("wrong_shape", "features")["inputs"][0]
    assert shaped["shape"] == [2, 5] and len(shaped["data"]) == 10
    assert broken("wrong_shape", "entity_id")["inputs"][1]["shape"] == [2, 1]
    assert broken("missing_field", features={"x": np.ones((2, 3))}) == {}  # the only input: no data at all
    with pytest.raises(ValueError, match="no input 'nope'"):
        broken("missing_field", "nope")


def test_schema_breaks_on_kserve_v1_rows() -> None:
    v1 = make_adapter("kserve-v1")
    one = {"x": np.array([[1.0, 2.0]])}
    assert broken("wrong_dtype", adapter=v1, features=one) == {"instances": [["1.0", "2.0"]]}
    assert broken("wrong_shape", adapter=v1, features=one) == {"instances": [[1.0]]}
    assert broken("extra_field", adapter=v1, features=one) == {"instances": [{"x": [1.0, 2.0], "unexpected_input": [1.0, 2.0]}]}
    assert broken("missing_field", adapter=v1, features=one) == {}


def test_schema_break_share_of_requests() -> None:
    t = SchemaBreak.transform(SchemaBreak.Params.model_validate({"kind": "extra_field", "fraction": 0.3}), None)  # type: ignore[arg-type]  # the transform does not use the reference here
    rng = np.random.default_rng(0)
    features = {"x": np.ones((1, 2))}
    picked = 0
    for _ in range(2000):
        t.apply(Batch(features, None), np.ones(1, bool), 1.0, rng)
        b = OIP.encode(features)
        picked += t.apply_body(b, features, OIP.encode, rng) is not b
    assert picked / 2000 == pytest.approx(0.3, abs=0.03)


def images(n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(0)
    base = np.linspace(0, 255, 32 * 32 * 3).reshape(32, 32, 3)
    return np.clip(base[None] + rng.normal(0, 20, (n, 32, 32, 3)), 0, 255).astype(np.uint8)


@pytest.mark.parametrize("name", sorted(CORRUPTIONS))
def test_image_corruptions_grow_with_severity(name: str) -> None:
    x = images(1)[0].astype(np.float64) / 255
    change = [np.abs(corrupt_image(x, name, s, np.random.default_rng(1)) - x).mean() for s in (1, 3, 5)]
    assert change[0] > 0
    assert change[2] >= change[0] * 0.9  # severity 5 changes at least about as much as severity 1


@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_image_corruption_transform_keeps_shape_and_dtype(layout: str) -> None:
    x = images()
    if layout == "CHW":
        x = np.ascontiguousarray(np.moveaxis(x, -1, 1))
    ref = Reference({"img": x}, None)
    t = ImageCorruption.transform(ImageCorruption.Params.model_validate({"corruption": "contrast", "severity": 5}), ref)
    batch = Batch({"img": x.copy()}, None)
    t.prepare(batch)
    t.apply(batch, np.ones(len(x), bool), 1.0, np.random.default_rng(0))
    out = batch.features["img"]
    assert out.shape == x.shape and out.dtype == np.uint8
    assert out.astype(float).std() < x.astype(float).std() * 0.5  # contrast 0.15: much flatter
    assert t.delivered()["images"] == len(x) and t.delivered()["mean_abs_pixel_change"] > 0.05
