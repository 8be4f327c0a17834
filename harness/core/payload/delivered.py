"""What a data fault actually delivered: the sent payloads measured against the reference.

The Locust child keeps a bounded uniform sample (reservoir) of every measured column
of what it sent while a fault was active, and periodically appends its measurements —
per feature KS statistic, PSI and Wasserstein distance against the reference dataset,
plus the mean shift in reference standard deviations — to `drift-delivered.jsonl` in
the load folder. `delivered_events()` turns that file into `drift.delivered` journal
events, so a report shows the magnitude delivered next to the one requested.
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

DELIVERED_FILE = "drift-delivered.jsonl"
SAMPLE_CAP = 20_000
PSI_BINS = 10
PSI_EPSILON = 1e-4


def psi(reference: np.ndarray, sent: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population Stability Index of `sent` against `reference`, over the reference's quantile bins."""
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    expected = np.bincount(np.searchsorted(edges, reference, side="right"), minlength=len(edges) + 1)
    actual = np.bincount(np.searchsorted(edges, sent, side="right"), minlength=len(edges) + 1)
    return psi_of_shares(actual / max(actual.sum(), 1), expected / max(expected.sum(), 1))


def psi_of_shares(sent: np.ndarray, reference: np.ndarray) -> float:
    """PSI between two share vectors over the same bins; an empty bin counts as PSI_EPSILON
    (a log of zero would make one empty bin an infinite shift)."""
    p = np.clip(sent, PSI_EPSILON, None)
    q = np.clip(reference, PSI_EPSILON, None)
    return float(np.sum((p - q) * np.log(p / q)))


# KS and Wasserstein in numpy rather than scipy.stats: this module runs inside the Locust
# child, where importing scipy stalls the request loop for a second or more (and slows it
# after); both statistics are a few lines over the two sorted samples (tests check them
# against scipy).


def ks_statistic(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the two ECDFs."""
    a, b = np.sort(a), np.sort(b)
    points = np.concatenate([a, b])
    gap = np.searchsorted(a, points, side="right") / len(a) - np.searchsorted(b, points, side="right") / len(b)
    return float(np.max(np.abs(gap)))


def wasserstein(a: np.ndarray, b: np.ndarray) -> float:
    """First Wasserstein distance between two samples: the area between their ECDFs."""
    a, b = np.sort(a), np.sort(b)
    points = np.sort(np.concatenate([a, b]))
    widths = np.diff(points)
    fa = np.searchsorted(a, points[:-1], side="right") / len(a)
    fb = np.searchsorted(b, points[:-1], side="right") / len(b)
    return float(np.sum(np.abs(fa - fb) * widths))


def shift_stats(reference: np.ndarray, sent: np.ndarray) -> dict[str, Any]:
    """KS, PSI, Wasserstein, mean shift (in reference std) and spread ratio of `sent`."""
    reference = np.asarray(reference, dtype=np.float64)
    sent = np.asarray(sent, dtype=np.float64)
    ref = reference[np.isfinite(reference)]
    finite = sent[np.isfinite(sent)]
    out: dict[str, Any] = {"rows": len(sent),
                           "nonfinite_share": float(1 - len(finite) / len(sent)) if len(sent) else None}  # fmt: skip
    if not len(finite) or not len(ref):
        return out | {"ks": None, "psi": None, "wasserstein": None, "mean_shift_std": None, "std_ratio": None}
    std = float(ref.std())
    return out | {
        "ks": ks_statistic(ref, finite),
        "psi": psi(ref, finite),
        "wasserstein": wasserstein(ref, finite),
        "mean_shift_std": ratio(float(finite.mean() - ref.mean()), std),
        "std_ratio": ratio(float(finite.std()), std),
    }


def ratio(num: float, den: float) -> float | None:
    """num / den; against a constant reference (den 0) a change is ±inf and no change is
    not measured (None): there is no scale to count it in, and 1.0 would be made up."""
    if den > 0:
        return num / den
    return None if num == 0 else math.copysign(math.inf, num)


def label_stats(reference: np.ndarray, sent: np.ndarray) -> dict[str, Any]:
    """Class shares sent vs reference, their PSI and total variation distance."""
    ref = np.array([str(x) for x in reference.tolist()])
    got = np.array([str(x) for x in sent.tolist()])
    classes = sorted(set(ref.tolist()) | set(got.tolist()))
    q = np.array([(ref == c).mean() for c in classes])
    p = np.array([(got == c).mean() if len(got) else 0.0 for c in classes])
    return {
        "rows": len(got),
        "shares": {c: float(s) for c, s in zip(classes, p)},
        "reference_shares": {c: float(s) for c, s in zip(classes, q)},
        "psi": psi_of_shares(p, q),
        "tvd": float(0.5 * np.abs(p - q).sum()),
    }


class Reservoir:
    """A uniform sample of at most `cap` values from a stream (Vitter's algorithm R, vectorised)."""

    def __init__(self, cap: int = SAMPLE_CAP, seed: int = 0) -> None:
        self.cap = cap
        self.seen = 0
        self.values: np.ndarray | None = None
        self._rng = np.random.default_rng(seed)
        self._n = 0

    def add(self, values: np.ndarray) -> None:
        values = np.asarray(values).ravel()
        if self.values is None:
            self.values = np.empty(self.cap, dtype=values.dtype)
        room = min(self.cap - self._n, len(values))
        if room > 0:
            self.values[self._n : self._n + room] = values[:room]
            self._n += room
        rest = values[room:]
        if len(rest):
            k = self.seen + room + np.arange(len(rest))
            slot = self._rng.integers(0, k + 1)
            keep = slot < self.cap
            self.values[slot[keep]] = rest[keep]
        self.seen += len(values)

    def sample(self) -> np.ndarray:
        return np.empty(0) if self.values is None else self.values[: self._n]


def per_row(array: np.ndarray) -> np.ndarray:
    """One number per row: the value itself, or the row's mean for multi-dimensional inputs (images)."""
    array = np.asarray(array)
    if array.ndim <= 1:
        return array
    return array.reshape(len(array), -1).astype(np.float64).mean(axis=1)


class DeliveredLog:
    """Appends measurement records (one JSON line each) for the runner to read."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        now, pid = time.time(), os.getpid()
        lines = "".join(json.dumps({"time": now, "pid": pid, **r}, default=_plain) + "\n" for r in records)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(lines)


def _plain(x: Any) -> Any:
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, np.ndarray):
        return x.tolist()
    return str(x)


_COMBINED = ("ks", "psi", "wasserstein", "mean_shift_std", "std_ratio", "nonfinite_share", "tvd",
             "relabelled_share", "mean_abs_pixel_change", "typo_share")  # fmt: skip
_COUNTED = ("requests", "selected_requests", "changed_requests")  # summed over processes


def read_delivered(path: str | Path) -> list[dict[str, Any]]:
    """The latest record per (fault, feature), combined over Locust processes (row-weighted)."""
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue  # a half-written last line
        latest[(rec.get("fault", ""), rec.get("feature", ""), rec.get("pid", 0))] = rec
    grouped: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for (fault, feature, _), rec in latest.items():
        grouped.setdefault((fault, feature), []).append(rec)
    return [_combine(recs) for recs in grouped.values()]


def _combine(recs: list[dict[str, Any]]) -> dict[str, Any]:
    if len(recs) == 1:
        return recs[0]
    out = dict(recs[0])
    weights = [max(r.get("rows") or 0, 0) for r in recs]
    out["rows"] = sum(weights)
    for key in _COMBINED:
        pairs = [(r[key], w) for r, w in zip(recs, weights) if isinstance(r.get(key), (int, float))]
        total = sum(w for _, w in pairs)
        out[key] = sum(v * w for v, w in pairs) / total if pairs and total else None
    for key in _COUNTED:
        counts = [r[key] for r in recs if isinstance(r.get(key), int)]
        out[key] = sum(counts) if counts else None
    if out.get("requests"):
        out["changed_share"] = (out.get("changed_requests") or 0) / out["requests"]
    out["processes"] = len(recs)
    return out


def delivered_events(load_dir: str | Path) -> list[dict[str, Any]]:
    """Fields of one `drift.delivered` journal event per (fault, feature) measured in this run:
    fault, type, feature, rows, ks, psi, wasserstein, mean_shift_std, requested, and the
    fault's own delivered figures (relabelled_share, ...) and the wire counts: requests, changed_requests, changed_share."""
    events = []
    for rec in read_delivered(Path(load_dir) / DELIVERED_FILE):
        ev = {k: v for k, v in rec.items() if k not in ("time", "pid")}
        for key, value in list(ev.items()):
            if isinstance(value, float) and not math.isfinite(value):  # strict JSON has no inf
                ev[key] = None if math.isnan(value) else ("inf" if value > 0 else "-inf")
        events.append(ev)
    return sorted(events, key=lambda e: (e.get("fault", ""), e.get("feature", "")))
