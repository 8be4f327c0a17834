"""Protocol adapters: encoding batches, decoding predictions/fallback/version, the registry."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.core.fault import UserError
from harness.core.protocols import (
    Decoded,
    DecodeError,
    adapter_types,
    make_adapter,
    same_prediction,
)


def test_registry_names_and_unknown_protocol() -> None:
    assert {"oip-v2", "http-json"} <= set(adapter_types())
    with pytest.raises(UserError, match="unknown protocol 'grpc-x'.*oip-v2"):
        make_adapter("grpc-x")


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError, match="oip-v2.*invalid options"):
        make_adapter("oip-v2", no_such_option=1)
    with pytest.raises(UserError, match="invalid JMESPath"):
        make_adapter("http-json", predictions="a[[")


def test_oip_v2_paths() -> None:
    a = make_adapter("oip-v2")
    assert a.infer_path("fraud") == "/v2/models/fraud/infer"
    assert a.ready_path("fraud") == "/v2/models/fraud/ready"
    assert a.live_path == "/v2/health/live"
    pinned = make_adapter("oip-v2", model_version="3")
    assert pinned.infer_path("fraud") == "/v2/models/fraud/versions/3/infer"


def test_oip_v2_encode_datatypes_shapes_and_flattening() -> None:
    batch = {
        "x": np.array([[1.5, 2.0], [3.0, 4.0]], dtype=np.float32),
        "d": np.array([1.0, 2.0], dtype=np.float64),
        "i": np.array([1, 2], dtype=np.int64),
        "j": np.array([1, 2], dtype=np.int32),
        "b": np.array([True, False]),
        "s": np.array(["a", "b"]),
    }
    body = make_adapter("oip-v2").encode(batch)
    by_name = {t["name"]: t for t in body["inputs"]}
    assert by_name["x"] == {
        "name": "x",
        "shape": [2, 2],
        "datatype": "FP32",
        "data": [1.5, 2.0, 3.0, 4.0],
    }
    assert [by_name[n]["datatype"] for n in "dijbs"] == ["FP64", "INT64", "INT32", "BOOL", "BYTES"]
    assert by_name["s"]["data"] == ["a", "b"] and by_name["b"]["data"] == [True, False]


def test_oip_v2_decode_label_output_fallback_version() -> None:
    resp = {
        "model_name": "fraud",
        "model_version": "7",
        "outputs": [
            {"name": "scores", "shape": [2, 2], "datatype": "FP32", "data": [0.1, 0.9, 0.8, 0.2]},
            {"name": "label", "shape": [2], "datatype": "INT64", "data": [1, 1]},
        ],
        "parameters": {"fallback": True},
    }
    assert make_adapter("oip-v2").decode(resp) == Decoded(
        predictions=[1, 1], scores=[[0.1, 0.9], [0.8, 0.2]], fallback=True, model_version="7"
    )
    custom = make_adapter("oip-v2", label_output="nope")
    assert custom.decode(resp).predictions == [1, 0]  # argmax of the first 2-D output


SCORES = [[0.1, 0.7, 0.2], [0.6, 0.3, 0.1]]  # predict_proba: class 1, then class 0
FLAT_SCORES = [0.1, 0.7, 0.2, 0.6, 0.3, 0.1]


@pytest.mark.parametrize(
    ("protocol", "options", "answer"),
    [
        ("bentoml", {}, SCORES),  # a plain list of lists, as BentoML returns predict_proba
        ("bentoml", {}, {"predictions": SCORES}),
        ("kserve-v1", {}, {"predictions": SCORES}),
        ("torchserve", {}, SCORES),
        ("seldon-v1", {}, {"data": {"ndarray": SCORES}}),
        ("seldon-v1", {}, {"data": {"tensor": {"shape": [2, 3], "values": FLAT_SCORES}}}),
        ("http-json", {}, {"predictions": SCORES}),
        ("oip-v2", {}, {"outputs": [{"name": "p", "shape": [2, 3], "datatype": "FP64", "data": FLAT_SCORES}]}),
    ],
)
def test_score_matrices_are_read_as_scores(protocol: str, options: dict, answer) -> None:
    decoded = make_adapter(protocol, **options).decode(answer)
    assert decoded.predictions == [1, 0] and decoded.scores == SCORES


@pytest.mark.parametrize("answer", [[1, 0], [[1], [0]], ["a", "b"], [[0.1, 0.9], [0.5]]])
def test_labels_and_ragged_rows_are_not_scores(answer) -> None:
    assert make_adapter("bentoml").decode(answer).scores is None


def test_oip_v2_decode_without_predictions_or_malformed() -> None:
    a = make_adapter("oip-v2")
    plain = a.decode({"outputs": [{"name": "y", "shape": [3], "data": [0.1, 0.2, 0.3]}]})
    assert plain == Decoded(predictions=None, fallback=None, model_version=None)
    for bad in ([1, 2], {"outputs": 3}, {"outputs": [{"name": "s", "shape": [2, 2], "data": [1]}]}):
        with pytest.raises(DecodeError):
            a.decode(bad)


def test_http_json_template_and_paths() -> None:
    a = make_adapter(
        "http-json",
        path="/models/{model}:predict",
        template={"instances": "$rows", "meta": {"cols": "$columns"}, "fixed": 1},
        predictions="predictions[*].label",
        fallback="meta.fallback",
        model_version="meta.version",
    )
    assert a.infer_path("m1") == "/models/m1:predict"
    body = a.encode({"x": np.array([1.0, 2.0]), "name": np.array(["a", "b"])})
    assert body == {
        "instances": [{"x": 1.0, "name": "a"}, {"x": 2.0, "name": "b"}],
        "meta": {"cols": {"x": [1.0, 2.0], "name": ["a", "b"]}},
        "fixed": 1,
    }
    resp = {
        "predictions": [{"label": "cat"}, {"label": "dog"}],
        "meta": {"fallback": False, "version": 2},
    }
    assert a.decode(resp) == Decoded(predictions=["cat", "dog"], fallback=False, model_version="2")


def test_http_json_scores_become_argmax_and_missing_path_is_decode_error() -> None:
    a = make_adapter("http-json")
    assert a.decode({"predictions": [[0.2, 0.7, 0.1], [0.9, 0.05, 0.05]]}).predictions == [1, 0]
    assert a.decode({"predictions": 3}).predictions == [3]
    with pytest.raises(DecodeError, match="nothing at 'predictions'"):
        a.decode({"other": 1})
    with pytest.raises(DecodeError):
        a.decode({"predictions": [{"nested": "object"}]})


def test_same_prediction_compares_numbers_by_value() -> None:
    assert same_prediction(1, np.int64(1)) and same_prediction(1.0, 1)
    assert not same_prediction(2, 1)
    assert same_prediction("cat", np.str_("cat"))


def test_adapters_do_not_import_locust() -> None:
    code = "import sys, harness.core.protocols, harness.engine.load, harness.engine.datasets; print('locust' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
