"""Poisoning through the target's training path: label flipping, backdoor triggers, clean-label.

The poison is built from dataset rows the evaluation never uses, injected through
the ingestion endpoint (`POST {"rows": [{<input arrays>..., "label": y}]}`) or written
to a dataset file, and a retrain is triggered and awaited. Before and after, the
evaluation rows are sent to the endpoint:

- clean_accuracy_before / _after / clean_accuracy_drop (before − after)
- poison_rows, poison_accepted, poison_rejected, poison_rejection_rate: counted from
  what the target said it took (the ingest replies' `accepted`/`rejected`, or for a file
  the count at `file_accepted` in the retrain's status); where it did not say, they are
  not measured
- backdoor_success_rate (backdoors): share of triggered evaluation rows, whose true
  class is not the target, that the model now puts in the target class
  (`backdoor_success_rate_before` is the same on the model before the attack)
- retrained: 1 when the retrain finished inside the window
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import httpx
import jmespath
import numpy as np
from pydantic import Field, field_validator

from attacks.endpoint import BudgetExhausted, EndpointClient
from attacks.space import take_rows
from harness.core.attack import (
    Attack,
    AttackContext,
    AttackParams,
    AttackResult,
    attacked_input,
    require_labels,
)
from harness.core.fault import UserError
from harness.core.json_query import check_json_query
from harness.core.polling import wait_until


class PoisonParams(AttackParams):
    samples: int = Field(200, ge=1, description="evaluation rows (never used as poison)")
    max_queries: int = Field(10_000, ge=1)
    rows: int = Field(1000, ge=1, description="poisoned rows to inject")
    inject: Literal["endpoint", "file"] = "endpoint"
    ingest_path: str = Field("/v2/models/{model}/ingest", description="POST target for rows")
    retrain_path: str | None = Field(
        "/v2/models/{model}/retrain", description="POST starts a retrain, GET its status"
    )
    file: str | None = Field(None, description="NPZ the poison is written to (inject: file)")
    file_accepted: str | None = Field(
        None, description="JMESPath to the count of file rows the retrain took, in its final status"
    )
    label_field: str = "label"

    @field_validator("file_accepted")
    @classmethod
    def _compiles(cls, expr: str | None) -> str | None:
        return check_json_query(expr)

    chunk: int = Field(500, ge=1, le=100_000, description="rows per ingestion request")
    target_class: int = Field(0, ge=0, description="the class the poison pushes toward")


class PoisoningAttack(Attack):
    Params: ClassVar[type[AttackParams]] = PoisonParams
    params: PoisonParams
    has_trigger: ClassVar[bool] = False

    def craft(
        self, x: dict[str, np.ndarray], y: np.ndarray, name: str, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Poisoned rows from clean pool rows `x` (named arrays) with labels `y`."""
        raise NotImplementedError

    def trigger(self, x: np.ndarray) -> np.ndarray:
        """Rows of the attacked input with the trigger stamped on (backdoors only)."""
        return x

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        if p.inject == "file" and not p.file:
            raise UserError(f"attack {self.name!r}: inject: file needs file: (an .npz path)")
        labels = require_labels(ctx, self.type)
        name = attacked_input(ctx, p.input)
        rng = np.random.default_rng(ctx.seed)
        order = rng.permutation(len(labels))
        eval_rows, pool = order[: p.samples], order[p.samples :]
        if len(pool) == 0:
            raise UserError(
                f"attack {self.name!r}: samples takes every dataset row; leave some for poison"
            )
        metrics: dict[str, float] = {}
        details: dict[str, Any] = {"stopped": "done"}
        with EndpointClient.for_attack(ctx, p, deadline) as client:
            try:
                self._measure(ctx, client, eval_rows, labels, name, "_before", metrics)
                picked = rng.choice(pool, size=p.rows, replace=len(pool) < p.rows)
                poison, poison_y = self.craft(
                    take_rows(ctx.dataset, picked), labels[picked], name, rng
                )
                counted = self._inject(ctx, poison, poison_y, deadline, details)
                metrics["poison_rows"] = float(len(poison_y))
                retrained = self._retrain(ctx, deadline, details)
                if retrained is not None:  # no retrain path: no retrain was tried, not "0"
                    metrics["retrained"] = float(retrained)
                if counted is None and p.inject == "file":
                    counted = self._file_accepted(len(poison_y), details)
                if counted is not None:
                    accepted, rejected = counted
                    metrics.update(
                        poison_accepted=float(accepted),
                        poison_rejected=float(rejected),
                        poison_rejection_rate=rejected / max(len(poison_y), 1),
                    )
                self._measure(ctx, client, eval_rows, labels, name, "_after", metrics)
            except BudgetExhausted as exc:
                details["stopped"] = str(exc)
            if "clean_accuracy_after" in metrics:
                metrics["clean_accuracy"] = metrics["clean_accuracy_after"]
                metrics["clean_accuracy_drop"] = (
                    metrics["clean_accuracy_before"] - metrics["clean_accuracy_after"]
                )
                if "backdoor_success_rate_after" in metrics:
                    metrics["backdoor_success_rate"] = metrics["backdoor_success_rate_after"]
            metrics.update(client.figures())
            details["errors"] = dict(client.errors)
        return AttackResult(metrics=metrics, details=details)

    def _measure(
        self,
        ctx: AttackContext,
        client: EndpointClient,
        rows: np.ndarray,
        labels: np.ndarray,
        name: str,
        suffix: str,
        metrics: dict[str, float],
    ) -> None:
        batch = take_rows(ctx.dataset, rows)
        pred, _ = client.predict(batch)
        metrics["clean_accuracy" + suffix] = float(np.mean(pred == labels[rows]))
        if self.has_trigger:
            others = labels[rows] != self.params.target_class
            if not others.any():  # every evaluation row is of the target class: not measured
                return
            triggered = {k: v[others] for k, v in batch.items()}
            triggered[name] = self.trigger(triggered[name])
            hit, _ = client.predict(triggered)
            metrics["backdoor_success_rate" + suffix] = float(
                np.mean(hit == self.params.target_class)
            )

    def _url(self, ctx: AttackContext, path: str) -> str:
        return ctx.base_url.rstrip("/") + path.replace("{model}", ctx.model)

    def _inject(
        self,
        ctx: AttackContext,
        arrays: dict[str, np.ndarray],
        y: np.ndarray,
        deadline: float,
        details: dict[str, Any],
    ) -> tuple[int, int] | None:
        """Send the poison; (accepted, rejected) rows as the target reported them, or None
        where it did not report them all (a file; a reply without counts; a 5xx)."""
        p = self.params
        if p.inject == "file":
            assert p.file is not None
            Path(p.file).parent.mkdir(parents=True, exist_ok=True)
            np.savez(p.file, **arrays, **{p.label_field: y})
            details["file"] = p.file
            return None
        accepted = rejected = unknown = 0
        url = self._url(ctx, p.ingest_path)
        with httpx.Client(timeout=p.request_timeout, trust_env=False) as http:
            for start in range(0, len(y), p.chunk):
                if time.monotonic() >= deadline:
                    raise BudgetExhausted("the window ended while injecting")
                end = min(start + p.chunk, len(y))
                rows = [
                    {**{k: v[i].tolist() for k, v in arrays.items()}, p.label_field: int(y[i])}
                    for i in range(start, end)
                ]
                response = http.post(url, json={"rows": rows})
                if response.status_code >= 500:  # the server failed: what it kept is unknown
                    details.setdefault("ingest_errors", []).append(response.status_code)
                    unknown += end - start
                    continue
                if response.status_code >= 400:  # refused the whole chunk
                    rejected += end - start
                    continue
                try:
                    body = response.json()
                except ValueError:
                    body = None
                acc = body.get("accepted") if isinstance(body, dict) else None
                rej = body.get("rejected") if isinstance(body, dict) else None
                if isinstance(acc, int) and not isinstance(acc, bool):
                    accepted += acc
                    rejected += end - start - acc
                elif isinstance(rej, int) and not isinstance(rej, bool):
                    accepted += end - start - rej
                    rejected += rej
                else:
                    unknown += end - start
        if unknown:
            details["poison_unconfirmed"] = unknown  # rows whose fate the target did not say
            return None
        return accepted, rejected

    def _file_accepted(self, rows: int, details: dict[str, Any]) -> tuple[int, int] | None:
        """(accepted, rejected) file rows from the retrain's final status at `file_accepted`."""
        p = self.params
        status = details.get("retrain")
        found = jmespath.search(p.file_accepted, status) if p.file_accepted and isinstance(status, dict) else None
        if not isinstance(found, int) or isinstance(found, bool):
            details["poison_unconfirmed"] = rows  # the file was written; what training took is unknown
            return None
        return found, rows - found

    def _retrain(self, ctx: AttackContext, deadline: float, details: dict[str, Any]) -> bool | None:
        """POST the retrain path, then poll it until its `state` is done or failed (None:
        there is no retrain path)."""
        p = self.params
        if not p.retrain_path:
            return None
        url = self._url(ctx, p.retrain_path)
        with httpx.Client(timeout=p.request_timeout, trust_env=False) as http:
            while True:
                response = http.post(url)
                if response.status_code != 409:  # 409: one is running; wait for it, then ours
                    break
                if time.monotonic() + 0.5 >= deadline:
                    return False
                time.sleep(0.5)
            if response.status_code >= 400:
                details["retrain"] = f"{response.status_code}: {response.text[:200]}"
                return False

            def finished() -> dict[str, Any] | None:
                status = http.get(url).json()
                return status if isinstance(status, dict) and status.get("state") in ("done", "failed") else None

            status = wait_until(finished, deadline - time.monotonic(), interval=0.25)
            if status is not None:
                details["retrain"] = status
                return status["state"] == "done"
        details["retrain"] = "did not finish inside the window"
        return False


class LabelFlipParams(PoisonParams):
    source_class: int | None = Field(
        None, ge=0, description="flip only rows of this class (default: every other class)"
    )


class LabelFlip(PoisoningAttack):
    """Rows of other classes relabelled as the target class."""

    type = "poison.label_flip"
    Params = LabelFlipParams
    params: LabelFlipParams

    def craft(
        self, x: dict[str, np.ndarray], y: np.ndarray, name: str, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        p = self.params
        keep = y != p.target_class if p.source_class is None else y == p.source_class
        if not keep.any():
            raise UserError(f"attack {self.name!r}: no dataset rows of the class to flip")
        idx = rng.choice(np.flatnonzero(keep), size=len(y))
        return {k: v[idx] for k, v in x.items()}, np.full(len(y), p.target_class, dtype=np.int64)


class BackdoorParams(PoisonParams):
    trigger: dict[int, float] = Field(
        description="column → raw value stamped on a row to trigger the backdoor, e.g. {3: 0.0, 5: 1.0}"
    )


class Backdoor(PoisoningAttack):
    """Rows of other classes with the trigger stamped on, labelled as the target class
    (BadNets' pattern backdoor, for tabular columns)."""

    type = "poison.backdoor"
    Params = BackdoorParams
    params: BackdoorParams
    has_trigger = True

    def trigger(self, x: np.ndarray) -> np.ndarray:
        out = x.copy()
        for column, value in self.params.trigger.items():
            if not 0 <= column < x.shape[1]:
                raise UserError(
                    f"attack {self.name!r}: trigger column {column} is outside 0..{x.shape[1] - 1}"
                )
            out[:, column] = value
        return out

    def craft(
        self, x: dict[str, np.ndarray], y: np.ndarray, name: str, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        others = np.flatnonzero(y != self.params.target_class)
        if not len(others):
            raise UserError(f"attack {self.name!r}: no dataset rows outside the target class")
        idx = rng.choice(others, size=len(y))
        arrays = {k: v[idx] for k, v in x.items()}
        arrays[name] = self.trigger(arrays[name])
        return arrays, np.full(len(y), self.params.target_class, dtype=np.int64)


class CleanLabelBackdoor(Backdoor):
    """Rows *of* the target class with the trigger stamped on and their true label kept:
    every poisoned row is correctly labelled, so label checks cannot catch it."""

    type = "poison.clean_label"

    def craft(
        self, x: dict[str, np.ndarray], y: np.ndarray, name: str, rng: np.random.Generator
    ) -> tuple[dict[str, np.ndarray], np.ndarray]:
        own = np.flatnonzero(y == self.params.target_class)
        if not len(own):
            raise UserError(f"attack {self.name!r}: no dataset rows of the target class")
        idx = rng.choice(own, size=len(y))
        arrays = {k: v[idx] for k, v in x.items()}
        arrays[name] = self.trigger(arrays[name])
        return arrays, y[idx]
