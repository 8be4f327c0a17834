"""Payload datasets: the rows the load sends, with their labels where given.

A dataset is a set of named feature arrays that share their first axis (the rows)
plus an optional label array, read from NPZ, CSV, JSONL or Parquet. Labels make
accuracy an SLI: the load compares each prediction with its row's label.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.core.fault import UserError

FORMATS = ("npz", "csv", "jsonl", "parquet")


class DatasetError(UserError):
    """A dataset file that cannot be used as payloads; the message says why and how to fix it."""


@dataclass
class PayloadDataset:
    features: dict[str, np.ndarray]  # name -> array, all with the same number of rows
    labels: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(next(iter(self.features.values())))

    def batch(self, i: int, batch_size: int) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
        """The i-th batch of `batch_size` consecutive rows, wrapping around the end."""
        n = len(self)
        rows = (np.arange(batch_size) + i * batch_size) % n
        labels = self.labels[rows] if self.labels is not None else None
        return {name: a[rows] for name, a in self.features.items()}, labels

    def batch_count(self, batch_size: int) -> int:
        """How many batches before the rows repeat (the last one may wrap)."""
        return -(-len(self) // batch_size)

    def batches(self, batch_size: int) -> Iterator[tuple[dict[str, np.ndarray], np.ndarray | None]]:
        for i in range(self.batch_count(batch_size)):
            yield self.batch(i, batch_size)


def load_dataset(
    path: str | Path,
    *,
    label: str | None = "label",
    features: list[str] | None = None,
    stack_as: str | None = None,
    format: str | None = None,
) -> PayloadDataset:
    """Read a payload dataset.

    label: the column/array holding labels (None: no labels; missing column: no labels).
    features: keep only these columns/arrays (default: all but the label).
    stack_as: stack all feature columns into one float32 (rows, features) array of this
      name — what a tabular model behind one input tensor expects.
    format: npz | csv | jsonl | parquet (default: from the file suffix).
    """
    p = Path(path)
    fmt = (format or p.suffix.lstrip(".")).lower()
    if fmt == "ndjson":
        fmt = "jsonl"
    if fmt not in FORMATS:
        raise DatasetError(
            f"dataset {p}: unknown format {fmt!r}; use a .npz, .csv, .jsonl or .parquet file"
        )
    if not p.is_file():
        raise DatasetError(f"dataset {p}: no such file")
    try:
        arrays = _READERS[fmt](p)
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: say which and why
        raise DatasetError(f"dataset {p}: cannot read it as {fmt}: {exc}") from None
    return _assemble(arrays, p, label=label, features=features, stack_as=stack_as)


def _assemble(
    arrays: dict[str, np.ndarray],
    path: Path,
    *,
    label: str | None,
    features: list[str] | None,
    stack_as: str | None,
) -> PayloadDataset:
    labels = arrays.pop(label) if label is not None and label in arrays else None
    if features is not None:
        missing = [f for f in features if f not in arrays]
        if missing:
            raise DatasetError(
                f"dataset {path}: no column {missing[0]!r}; it has {', '.join(arrays) or 'none'}"
            )
        arrays = {f: arrays[f] for f in features}
    if not arrays:
        raise DatasetError(f"dataset {path}: no feature columns (only the label {label!r})")
    lengths = {name: len(a) if a.ndim else 0 for name, a in arrays.items()}
    if labels is not None:
        lengths[str(label)] = len(labels)
    if len(set(lengths.values())) != 1:
        raise DatasetError(f"dataset {path}: columns have different row counts: {lengths}")
    if next(iter(lengths.values())) == 0:
        raise DatasetError(f"dataset {path}: no rows")
    if stack_as is not None:
        try:
            cols = [a.reshape(len(a), -1).astype(np.float32) for a in arrays.values()]
        except ValueError:
            raise DatasetError(f"dataset {path}: stack_as needs numeric feature columns") from None
        arrays = {stack_as: np.concatenate(cols, axis=1)}
    return PayloadDataset(features=arrays, labels=labels, source=str(path))


def _column(values: list[Any]) -> np.ndarray:
    """A typed array from one column's values: int64, float64, bool, nested lists, or str."""
    if all(isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=bool)
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.int64)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=np.float64)
    if all(isinstance(v, list) for v in values):
        arr = np.asarray(values)
        if arr.dtype == object:
            raise ValueError("list values in one column must all have the same length")
        return arr
    return np.asarray([str(v) for v in values])


def _read_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def _csv_value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _read_csv(path: Path) -> dict[str, np.ndarray]:
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if not reader.fieldnames:
            raise DatasetError(f"dataset {path}: empty CSV; the first line must name the columns")
        columns: dict[str, list[Any]] = {name: [] for name in reader.fieldnames}
        for line_no, row in enumerate(reader, start=2):
            if None in row or any(v is None for v in row.values()):
                raise DatasetError(
                    f"dataset {path}:{line_no}: row has a different number of fields than the header"
                )
            for name, text in row.items():
                columns[name].append(_csv_value(text))
    return {name: _column(values) for name, values in columns.items()}


def _read_jsonl(path: Path) -> dict[str, np.ndarray]:
    columns: dict[str, list[Any]] = {}
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DatasetError(f"dataset {path}:{line_no}: invalid JSON: {exc.msg}") from None
            if not isinstance(row, dict):
                raise DatasetError(f"dataset {path}:{line_no}: each line must be a JSON object")
            if columns and row.keys() != columns.keys():
                raise DatasetError(
                    f"dataset {path}:{line_no}: keys {sorted(row)} differ from the first line's {sorted(columns)}"
                )
            for name, value in row.items():
                columns.setdefault(name, []).append(value)
    return {name: _column(values) for name, values in columns.items()}


def _read_parquet(path: Path) -> dict[str, np.ndarray]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(
            f"dataset {path}: reading Parquet needs pyarrow; install it with `pip install pyarrow`"
        ) from None
    table = pq.read_table(path)
    return {name: _column(table.column(name).to_pylist()) for name in table.column_names}


_READERS = {"npz": _read_npz, "csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}
