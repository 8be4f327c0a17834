"""Column selectors for payload data faults: `amount`, or `features[2]` for column 2 of a 2-D input.

A payload batch is a dict of arrays that share their first axis (the rows). Tabular
data faults act on columns; a selector names one, whether the model takes one tensor
per feature or one stacked [rows, features] tensor.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_SELECTOR = re.compile(r"^(?P<name>[^\[\]]+?)(?:\[(?P<col>\d+)\])?$")


@dataclass(frozen=True)
class Column:
    name: str  # the input array
    index: int | None  # column of a 2-D input; None: the whole 1-D input

    def __str__(self) -> str:
        return self.name if self.index is None else f"{self.name}[{self.index}]"


def parse_column(text: str) -> Column:
    m = _SELECTOR.match(text.strip())
    if not m:
        raise ValueError(f"invalid column {text!r}: write NAME or NAME[INDEX], e.g. features[2]")
    col = m.group("col")
    return Column(m.group("name"), None if col is None else int(col))


def check_selector(text: str) -> str:
    """Pydantic validator: the selector parses."""
    parse_column(text)
    return text


def get(batch: dict[str, np.ndarray], column: Column) -> np.ndarray:
    """The column's values, one per row (a view where numpy allows)."""
    if column.name not in batch:
        raise KeyError(f"no input {column.name!r} in the payload (it has {', '.join(batch)})")
    array = batch[column.name]
    if column.index is None:
        if array.ndim != 1:
            raise KeyError(f"input {column.name!r} has shape {array.shape}: pick a column, e.g. {column.name}[0]")
        return array
    if array.ndim != 2 or column.index >= array.shape[1]:
        raise KeyError(f"input {column.name!r} has shape {array.shape}: no column {column.index}")
    return array[:, column.index]


def put(batch: dict[str, np.ndarray], column: Column, values: np.ndarray) -> None:
    """Write one value per row into the column (in place), cast to the input's dtype."""
    array = batch[column.name]
    values = np.asarray(values)
    if np.issubdtype(array.dtype, np.integer) and np.issubdtype(values.dtype, np.floating):
        if not np.all(np.isfinite(values)):  # an integer input cannot hold NaN: go float
            array = batch[column.name] = array.astype(np.float64)
        else:
            values = np.rint(values)
    if column.index is None:
        array[:] = values
    else:
        array[:, column.index] = values


def numeric_columns(batch: dict[str, np.ndarray]) -> list[Column]:
    """Every floating-point column (2-D inputs split into their columns): the measured features."""
    out: list[Column] = []
    for name, array in batch.items():
        if not np.issubdtype(array.dtype, np.floating):
            continue
        if array.ndim == 1:
            out.append(Column(name, None))
        elif array.ndim == 2:
            out.extend(Column(name, j) for j in range(array.shape[1]))
    return out


def resolve(selectors: list[str] | None, batch: dict[str, np.ndarray]) -> list[Column]:
    """The selected columns, checked against the batch; None selects every numeric column."""
    columns = numeric_columns(batch) if selectors is None else [parse_column(s) for s in selectors]
    for c in columns:
        get(batch, c)  # raises KeyError naming the problem
    return columns
