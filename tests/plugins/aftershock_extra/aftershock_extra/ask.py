"""An attack that only asks: sends `samples` dataset rows to the endpoint every quarter
second until its deadline, and reports how many rows it sent and the share answered with
the row's label."""

from __future__ import annotations

import time

import httpx
import numpy as np

from harness.core.attack import Attack, AttackContext, AttackParams, AttackResult, seconds_left
from harness.core.protocols import same_prediction


class AskAttack(Attack):
    type = "extra.ask"
    Params = AttackParams

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        rows = min(self.params.samples, len(next(iter(ctx.dataset.values()))))
        batch = {name: np.asarray(a[:rows]) for name, a in ctx.dataset.items()}
        assert ctx.labels is not None
        sent = right = 0
        while sent + rows <= self.params.max_queries and seconds_left(deadline) > 0.3:
            reply = httpx.post(ctx.base_url + ctx.adapter.infer_path(ctx.model), json=ctx.adapter.encode(batch),
                               timeout=self.params.request_timeout)
            reply.raise_for_status()
            predictions = ctx.adapter.decode(reply.json()).predictions or []
            right += sum(same_prediction(p, y) for p, y in zip(predictions, ctx.labels[:rows].tolist()))
            sent += rows
            time.sleep(0.25)
        return AttackResult({"queries": float(sent), "clean_accuracy": right / sent if sent else float("nan")})
