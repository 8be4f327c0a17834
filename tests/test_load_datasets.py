"""Payload datasets from NPZ, CSV, JSONL and Parquet; batching; clear errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from harness.engine.datasets import DatasetError, load_dataset


def test_npz_arrays_by_name_with_labels(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    np.savez(p, x=np.arange(10, dtype=np.float32).reshape(5, 2), label=np.array([0, 1, 0, 1, 1]))
    ds = load_dataset(p)
    assert len(ds) == 5 and list(ds.features) == ["x"] and ds.features["x"].dtype == np.float32
    assert ds.labels.tolist() == [0, 1, 0, 1, 1]
    feats, labels = ds.batch(2, 2)  # rows 4, 0 (wraps)
    assert feats["x"].tolist() == [[8.0, 9.0], [0.0, 1.0]] and labels.tolist() == [1, 0]
    assert ds.batch_count(2) == 3 and len(list(ds.batches(2))) == 3
    other = load_dataset(p, label="y")  # no such label array: no labels, label stays a feature
    assert other.labels is None


def test_csv_columns_typed_and_stacked(tmp_path: Path) -> None:
    p = tmp_path / "d.csv"
    p.write_text("a,b,city,target\n1,0.5,oslo,1\n2,1.5,rome,0\n")
    ds = load_dataset(p, label="target")
    assert ds.features["a"].dtype == np.int64 and ds.features["b"].dtype == np.float64
    assert ds.features["city"].tolist() == ["oslo", "rome"] and ds.labels.tolist() == [1, 0]
    stacked = load_dataset(p, label="target", features=["a", "b"], stack_as="input-0")
    assert stacked.features["input-0"].dtype == np.float32
    assert stacked.features["input-0"].tolist() == [[1.0, 0.5], [2.0, 1.5]]


def test_jsonl_rows_with_vectors(tmp_path: Path) -> None:
    p = tmp_path / "d.jsonl"
    p.write_text("\n".join(json.dumps({"x": [i, i + 1], "label": i % 2}) for i in range(3)) + "\n")
    ds = load_dataset(p)
    assert ds.features["x"].shape == (3, 2) and ds.labels.tolist() == [0, 1, 0]


def test_parquet(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    p = tmp_path / "d.parquet"
    pq.write_table(pa.table({"x": [[1.0, 2.0], [3.0, 4.0]], "label": ["a", "b"]}), p)
    ds = load_dataset(p)
    assert ds.features["x"].shape == (2, 2) and ds.labels.tolist() == ["a", "b"]


def test_parquet_without_pyarrow_says_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = tmp_path / "d.parquet"
    p.write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(DatasetError, match="pip install pyarrow"):
        load_dataset(p)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("d.txt", "x", "unknown format 'txt'"),
        ("d.csv", "a,b\n1,2\n3\n", r"d.csv:3: row has a different number of fields"),
        ("d.jsonl", '{"a": 1}\n{"a": \n', r"d.jsonl:2: invalid JSON"),
        ("d.jsonl", '{"a": 1}\n{"b": 2}\n', r"d.jsonl:2: keys"),
        ("d.npz", "not a zip", "cannot read it as npz"),
        ("d.csv", "label\n1\n2\n", "no feature columns"),
        ("d.csv", "", "empty CSV"),
    ],
)
def test_bad_files_give_clear_errors(tmp_path: Path, name: str, content: str, message: str) -> None:
    p = tmp_path / name
    p.write_text(content)
    with pytest.raises(DatasetError, match=message):
        load_dataset(p)


def test_missing_file_and_feature(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no such file"):
        load_dataset(tmp_path / "nope.npz")
    p = tmp_path / "d.npz"
    np.savez(p, x=np.zeros((2, 2)), y=np.zeros(3))
    with pytest.raises(DatasetError, match="different row counts"):
        load_dataset(p)
    np.savez(p, x=np.zeros((2, 2)))
    with pytest.raises(DatasetError, match="no column 'z'"):
        load_dataset(p, features=["z"])
