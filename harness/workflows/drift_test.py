"""`aftershock drift-test`: accuracy under every corruption at every severity, without load.

RobustBench-style: the labelled dataset is sent once clean and once per (corruption,
severity 1..5), in batches, through the target's protocol adapter; each cell is the
share of rows predicted right (a rejected request counts its rows wrong, and is
counted as a 4xx or 5xx). The table gives each corruption's mean over severities
and the mean over all corruptions. Tabular datasets get the tabular corruptions
(faults.corruption), image datasets the CIFAR-10-C ones (faults.image_corruption).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import signal
import subprocess
import sys
import tempfile
import zlib
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from pydantic import ValidationError

from faults.corruption import TABULAR_CORRUPTIONS
from faults.image_corruption import CORRUPTIONS as IMAGE_CORRUPTIONS
from faults.image_corruption import ImageCorruption
from harness.core.fault import UserError
from harness.core.payload.data_fault import Batch, PayloadTransform, Reference
from harness.core.polling import wait_until
from harness.core.protocols import DecodeError, ProtocolAdapter, make_adapter
from harness.core.protocols.base import same_prediction
from harness.core.safety import check_host_allowed
from harness.engine.datasets import PayloadDataset, load_dataset

SEVERITIES = (1, 2, 3, 4, 5)


@dataclass
class Cell:
    corruption: str
    severity: int  # 0: clean
    accuracy: float | None  # None: the corruption does not apply to this data
    rows: int = 0
    client_errors: int = 0  # requests answered 4xx
    server_errors: int = 0  # 5xx
    other_errors: int = 0  # connection, timeout, undecodable answer
    note: str = ""
    right: int = 0  # rows predicted right
    rejected_rows: int = 0  # rows of the requests answered 4xx
    # rows predicted right or, for corrupted data, rejected with a 4xx: refusing a corrupted
    # input is the right answer (the clean data is valid, so there a rejection stays wrong)
    handled: float | None = None


@dataclass
class GridResult:
    clean: Cell
    cells: list[Cell] = field(default_factory=list)

    def by_corruption(self) -> dict[str, list[Cell]]:
        out: dict[str, list[Cell]] = {}
        for c in self.cells:
            out.setdefault(c.corruption, []).append(c)
        return out

    def mean(self, corruption: str, figure: str = "accuracy") -> float | None:
        """The mean over severities of `figure` (accuracy or handled) for one corruption."""
        values = [getattr(c, figure) for c in self.by_corruption()[corruption] if getattr(c, figure) is not None]
        return float(np.mean(values)) if values else None

    def mean_corruption_accuracy(self, figure: str = "accuracy") -> float | None:
        means = [m for m in (self.mean(c, figure) for c in self.by_corruption()) if m is not None]
        return float(np.mean(means)) if means else None


def is_image_data(dataset: PayloadDataset) -> bool:
    return any(a.ndim >= 3 for a in dataset.features.values())


def default_corruptions(dataset: PayloadDataset) -> list[str]:
    if is_image_data(dataset):
        return list(IMAGE_CORRUPTIONS)
    return [t.removeprefix("data.") for t in TABULAR_CORRUPTIONS]


def make_transform(name: str, severity: int, reference: Reference) -> PayloadTransform:
    """The transform of corruption `name` (tabular: `noise`, image: `gaussian_noise`) at a severity."""
    if name in IMAGE_CORRUPTIONS:
        params = ImageCorruption.Params.model_validate({"corruption": name, "severity": severity})
        return ImageCorruption.transform(params, reference)
    cls = TABULAR_CORRUPTIONS.get(f"data.{name}")
    if cls is None:
        known = [t.removeprefix("data.") for t in TABULAR_CORRUPTIONS] + list(IMAGE_CORRUPTIONS)
        raise UserError(f"drift-test: unknown corruption {name!r}; known: {', '.join(known)}")
    return cls.transform(cls.Params.model_validate(cls.SEVERITIES[severity - 1]), reference)


class Scorer:
    """Sends batches through the adapter and counts right answers and rejections."""

    def __init__(self, url: str, adapter: ProtocolAdapter, model: str, timeout: float) -> None:
        self.adapter = adapter
        self.path = adapter.infer_path(model)
        self.client = httpx.Client(base_url=url, timeout=timeout, trust_env=False)

    def score(self, cell: Cell, batches: list[tuple[Any, np.ndarray]]) -> Cell:
        right = 0
        for body, labels in batches:
            cell.rows += len(labels)
            try:
                resp = self.client.post(self.path, content=json.dumps(body).encode(),
                                        headers={"Content-Type": "application/json"})  # fmt: skip
            except httpx.HTTPError:
                cell.other_errors += 1
                continue
            if resp.status_code >= 500:
                cell.server_errors += 1
                continue
            if resp.status_code >= 400:
                cell.client_errors += 1
                cell.rejected_rows += len(labels)
                continue
            try:
                predictions = self.adapter.decode(resp.json()).predictions or []
            except (ValueError, DecodeError):
                cell.other_errors += 1
                continue
            right += sum(same_prediction(p, y) for p, y in zip(predictions, labels.tolist()))
        cell.right = right
        cell.accuracy = right / cell.rows if cell.rows else None
        correct = right + (cell.rejected_rows if cell.severity > 0 else 0)
        cell.handled = correct / cell.rows if cell.rows else None
        return cell

    def close(self) -> None:
        self.client.close()


def run_grid(url: str, dataset: PayloadDataset, adapter: ProtocolAdapter, model: str, *,
             corruptions: list[str] | None = None, severities: tuple[int, ...] = SEVERITIES,
             batch_size: int = 50, rows: int | None = 500, seed: int = 0, timeout: float = 10.0,
             progress: Any = None) -> GridResult:  # fmt: skip
    """Accuracy clean and under each (corruption, severity)."""
    if dataset.labels is None:
        raise UserError("drift-test needs labelled data: the dataset has no label column")
    n = min(len(dataset), rows) if rows else len(dataset)
    reference = Reference(dataset.features, dataset.labels)
    plain = [dataset.batch(i, batch_size) for i in range(-(-n // batch_size))]
    plain = [({k: v[: n - i * batch_size] for k, v in f.items()}, y[: n - i * batch_size])  # type: ignore[index]  # dataset.batch returns labels as an optional array; the demo data has them
             for i, (f, y) in enumerate(plain)]  # fmt: skip
    scorer = Scorer(url, adapter, model, timeout)
    try:
        clean = scorer.score(Cell("clean", 0, None), [(adapter.encode(f), y) for f, y in plain])
        result = GridResult(clean)
        for name in corruptions or default_corruptions(dataset):
            for s in severities:
                if progress:
                    progress(name, s)
                cell = Cell(name, s, None)
                try:
                    transform = make_transform(name, s, reference)
                    batches = []
                    for i, (f, y) in enumerate(plain):
                        batch = Batch({k: v.copy() for k, v in f.items()}, y.copy())
                        rng = np.random.default_rng([seed, zlib.crc32(name.encode()), s, i])
                        if i == 0:
                            transform.prepare(batch)
                        transform.apply(batch, np.ones(len(y), bool), 1.0, rng)
                        assert batch.labels is not None
                        body = adapter.encode(batch.features)
                        batches.append((transform.apply_body(body, batch.features, adapter.encode, rng), batch.labels))
                except (ValueError, KeyError, ValidationError) as exc:
                    cell.note = f"not applicable: {str(exc).splitlines()[0]}"
                    result.cells.append(cell)
                    continue
                result.cells.append(scorer.score(cell, batches))
        return result
    finally:
        scorer.close()


# --- output ----------------------------------------------------------------------------


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def markdown(result: GridResult, severities: tuple[int, ...] = SEVERITIES) -> str:
    head = "| corruption | " + " | ".join(f"s{s}" for s in severities) + " | mean | mean, 4xx right | 4xx | 5xx |"
    lines = [f"Clean accuracy: {_pct(result.clean.accuracy)} %  ", "", head,
             "|---" * (len(severities) + 5) + "|"]  # fmt: skip
    for name, cells in result.by_corruption().items():
        by_s = {c.severity: c for c in cells}
        accs = [_pct(by_s[s].accuracy) if s in by_s else "" for s in severities]
        c4 = sum(c.client_errors for c in cells)
        c5 = sum(c.server_errors for c in cells)
        lines.append(f"| {name} | " + " | ".join(accs)
                     + f" | {_pct(result.mean(name))} | {_pct(result.mean(name, 'handled'))} | {c4} | {c5} |")
    mean = (f"Mean corruption accuracy: {_pct(result.mean_corruption_accuracy())} % "
            f"({_pct(result.mean_corruption_accuracy('handled'))} % counting a 4xx rejection as right)")
    notes = ("Accuracy in %; a rejected request counts its rows wrong. \"mean, 4xx right\": a corrupted "
             "request rejected with a 4xx counts its rows right. 4xx/5xx: requests rejected.")
    lines += ["", mean, "", notes]
    return "\n".join(lines) + "\n"


def write_outputs(result: GridResult, out: Path) -> list[Path]:
    """drift-test-<UTC time>.json/.md/.csv in `out`: each run adds its own, earlier tables stay."""
    out.mkdir(parents=True, exist_ok=True)
    doc = {"clean": asdict(result.clean), "cells": [asdict(c) for c in result.cells],
           "mean_by_corruption": {k: result.mean(k) for k in result.by_corruption()},
           "mean_handled_by_corruption": {k: result.mean(k, "handled") for k in result.by_corruption()},
           "mean_corruption_accuracy": result.mean_corruption_accuracy(),
           "mean_corruption_handled": result.mean_corruption_accuracy("handled")}  # fmt: skip
    stem = "drift-test-" + datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    paths = [out / f"{stem}.json", out / f"{stem}.md", out / f"{stem}.csv"]
    paths[0].write_text(json.dumps(doc, indent=2), encoding="utf-8")
    paths[1].write_text(markdown(result), encoding="utf-8")
    with paths[2].open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(asdict(result.clean)))
        w.writeheader()
        for c in [result.clean, *result.cells]:
            w.writerow(asdict(c))
    return paths


# --- the demo, for `--demo` ------------------------------------------------------------


class DemoTarget:
    """The demo fraud service and its exported labelled data, started and always stopped."""

    def __init__(self, mode: str, workdir: Path, extra_args: list[str] | None = None) -> None:
        from harness.core.processes import free_port
        from harness.engine.target import demo_state_dir

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.data = workdir / "demo-data.npz"
        self.log = workdir / "demo.log"
        self.argv = [sys.executable, "-m", "harness.demo", "all", "--mode", mode, "--port", str(self.port),
                     "--state-dir", str(demo_state_dir()), *(extra_args or [])]  # fmt: skip
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> DemoTarget:
        subprocess.run([sys.executable, "-m", "harness.demo", "export-data", "--out", str(self.data)],
                       check=True, capture_output=True, timeout=120)  # fmt: skip
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        proc = self.proc

        def ready() -> bool:
            if proc.poll() is not None:
                raise RuntimeError(f"the demo exited with {proc.returncode}; see {self.log}")
            try:
                return httpx.get(self.url + "/v2/health/ready", timeout=1, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        if wait_until(ready, 120, interval=0.2):
            return self
        self.__exit__()
        raise RuntimeError(f"the demo was not ready within 120 s; see {self.log}")

    def __exit__(self, *exc: object) -> None:
        if self.proc is None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.proc.pid, sig)
                self.proc.wait(timeout=wait)
                break
            except (ProcessLookupError, subprocess.TimeoutExpired):
                continue
        self.proc = None


# --- command line ----------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aftershock drift-test", description=__doc__.split("\n\n")[0])
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="A running target, e.g. http://127.0.0.1:8080")
    where.add_argument("--demo", action="store_true", help="Start the demo fraud service and use its data")
    p.add_argument("--mode", default="resilient", choices=["resilient", "fragile"], help="Demo mode")
    p.add_argument("--dataset", help="Labelled NPZ/CSV/JSONL/Parquet (required with --url)")
    p.add_argument("--label", default="label", help="The label column (default: label)")
    p.add_argument("--protocol", default="oip-v2", help="The target's protocol (default: oip-v2)")
    p.add_argument("--model", default=None, help="Model name (default: fraud with --demo, else model)")
    p.add_argument("--corruptions", help="Comma-separated (default: all that fit the data)")
    p.add_argument("--severities", default="1,2,3,4,5", help="Comma-separated, 1..5")
    p.add_argument("--rows", type=int, default=500, help="Rows of the dataset to send (0: all)")
    p.add_argument("--batch-size", type=int, default=50, help="Rows per request (default: 50)")
    p.add_argument("--seed", type=int, default=0, help="Seed of the corruptions (default: 0)")
    p.add_argument("--timeout", type=float, default=10.0, help="Seconds per request")
    p.add_argument("--allow-host", action="append", default=[], help="A non-loopback host the target may be on")
    p.add_argument("-o", "--out", default="reports/drift-test", help="Folder for the table (md, csv, json)")
    return p


def _severities(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(s) for s in text.split(","))
    except ValueError:
        raise UserError(f"--severities {text!r}: write numbers 1..5 separated by commas, e.g. 1,3,5") from None
    if not values or any(not 1 <= s <= 5 for s in values):
        raise UserError(f"--severities {text!r}: each must be 1..5")
    return values


def main(argv: list[str] | None = None) -> int:
    """Run the grid; 0 on success, 2 on bad input. Prints the table."""
    args = parser().parse_args(argv)
    try:
        severities = _severities(args.severities)
        corruptions = [c.strip() for c in args.corruptions.split(",")] if args.corruptions else None
        adapter = make_adapter(args.protocol)
        if args.demo:
            with tempfile.TemporaryDirectory(prefix="aftershock-drift-test-") as tmp, DemoTarget(args.mode, Path(tmp)) as demo:
                dataset = load_dataset(demo.data, label=args.label)
                result = _grid(demo.url, dataset, adapter, args.model or "fraud", corruptions, severities, args)
        else:
            if not args.dataset:
                raise UserError("drift-test --url needs --dataset (a labelled file to corrupt)")
            check_host_allowed(args.url, args.allow_host)
            dataset = load_dataset(args.dataset, label=args.label)
            result = _grid(args.url, dataset, adapter, args.model or "model", corruptions, severities, args)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    paths = write_outputs(result, Path(args.out))
    print(markdown(result, severities))
    print("written: " + ", ".join(str(p) for p in paths))
    return 0


def _grid(url: str, dataset: PayloadDataset, adapter: ProtocolAdapter, model: str,
          corruptions: list[str] | None, severities: tuple[int, ...], args: argparse.Namespace) -> GridResult:  # fmt: skip
    for name in corruptions or []:
        if name not in IMAGE_CORRUPTIONS and f"data.{name}" not in TABULAR_CORRUPTIONS:
            make_transform(name, 1, Reference(dataset.features, dataset.labels))  # raises the UserError
    return run_grid(url, dataset, adapter, model, corruptions=corruptions, severities=severities,
                    batch_size=args.batch_size, rows=args.rows or None, seed=args.seed, timeout=args.timeout,
                    progress=lambda c, s: print(f"  {c} severity {s}", file=sys.stderr))  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
