"""White-box and transfer attacks: FGSM, PGD (Linf, L2) and an AutoAttack-style ensemble.

The gradients come from a torch model the user gives (a TorchScript file mapping the
attacked input, in raw units [n, d], to class logits; or a torch.export `.pt2`) or, without one, from a
surrogate trained on the endpoint's answers. The adversarial rows are then replayed
against the live endpoint: `robust_accuracy` is the endpoint's, `whitebox_robust_accuracy`
the local model's, and `transfer_rate` the share of local successes that carried over.
The ensemble also runs HopSkipJump on the endpoint against what survived, and raises
`gradient_masking` when that black-box attack does better than the white-box ones.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from art.attacks.evasion import (
    AutoProjectedGradientDescent,
    FastGradientMethod,
    ProjectedGradientDescent,
)
from art.estimators.classification import PyTorchClassifier
from pydantic import Field
from torch import nn

from attacks.endpoint import BudgetExhausted, EndpointClient
from attacks.evasion import EvasionParams, HopSkipJumpEvasion, HopSkipJumpParams
from attacks.space import FeatureSpace, take_rows
from attacks.surrogate import query_points, single_thread, train_surrogate
from harness.core.attack import (
    Attack,
    AttackContext,
    AttackResult,
    attacked_input,
    pick_rows,
    require_labels,
)
from harness.core.attack_metrics import evasion_metrics, gradient_masking
from harness.core.fault import UserError


class WhiteboxParams(EvasionParams):
    eps: float | None = Field(0.1, gt=0)
    norm: float = Field(float("inf"))
    eps_step: float | None = Field(None, gt=0, description="step size (default eps/4)")
    max_iter: int = Field(20, ge=1, description="PGD/APGD iterations")
    model: str | None = Field(
        None,
        description="TorchScript file or torch.export .pt2: raw input [n, d] → logits "
        "(default: a surrogate)",
    )
    surrogate_queries: int = Field(
        600, ge=10, description="endpoint queries to train the surrogate (without model:)"
    )


class RawInputModel(nn.Module):
    """Attack space → the user's model on raw units, so gradients are in attack space."""

    def __init__(self, model: nn.Module, space: FeatureSpace) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("low", torch.as_tensor(space.low, dtype=torch.float32))
        self.register_buffer("span", torch.as_tensor(space.span, dtype=torch.float32))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.model(self.low + z * self.span)


def load_user_model(path: str) -> nn.Module:
    p = Path(path)
    if not p.is_file():
        raise UserError(f"model: no such file {path!r}; give a TorchScript file (torch.jit.save)")
    try:
        if p.suffix == ".pt2":
            return torch.export.load(str(p)).module()
        return torch.jit.load(str(p), map_location="cpu").eval()
    except (RuntimeError, ValueError) as exc:
        raise UserError(
            f"model: {path} is neither a TorchScript file nor a torch.export .pt2 archive ({exc})"
        ) from None


class WhiteboxAttack(Attack):
    """Base: build the local model, run `members`, replay on the endpoint."""

    Params: ClassVar = WhiteboxParams
    params: WhiteboxParams
    blackbox_check: ClassVar[bool] = False

    def members(self, classifier: PyTorchClassifier) -> list[tuple[str, Any]]:
        raise NotImplementedError

    def _norm(self) -> float | int:
        return 2 if self.params.norm == 2 else np.inf

    def _pgd(self, classifier: PyTorchClassifier, random_inits: int) -> ProjectedGradientDescent:
        p = self.params
        return ProjectedGradientDescent(classifier, norm=self._norm(), eps=p.eps, eps_step=self._eps_step(),
                                        max_iter=p.max_iter, num_random_init=random_inits,
                                        batch_size=p.batch_size, verbose=False)

    def _eps_step(self) -> float:
        assert self.params.eps is not None
        return self.params.eps_step or self.params.eps / 4

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        with single_thread():
            return self._run(ctx, deadline)

    def _run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        labels = require_labels(ctx, self.type)
        name = attacked_input(ctx, p.input)
        x = ctx.dataset[name]
        space = FeatureSpace.from_data(name, x, p.bounds, list(range(x.shape[1])))  # all columns; `mutable` is a mask
        mask = np.zeros(x.shape[1], dtype=np.float32)
        mask[p.mutable if p.mutable is not None else slice(None)] = 1.0
        classes = p.classes or int(labels.max()) + 1
        rows = pick_rows(len(x), p.samples, ctx.seed)
        details: dict[str, Any] = {"stopped": "done"}
        np.random.seed(ctx.seed % 2**32)
        with EndpointClient.for_attack(ctx, p, deadline) as client:
            try:
                local = self._local_model(ctx, client, space, rows, classes, details)
                y = labels[rows]
                z = space.encode(x[rows])
                clean_pred, _ = client.predict(take_rows(ctx.dataset, rows))
                classifier = PyTorchClassifier(
                    local,
                    loss=nn.CrossEntropyLoss(),
                    input_shape=(x.shape[1],),
                    nb_classes=classes,
                    clip_values=(0.0, 1.0),
                )
                onehot = np.eye(classes, dtype=np.float32)[y]
                z_adv = z.copy()
                local_fooled = np.zeros(len(rows), dtype=bool)
                end_pred = clean_pred.copy()
                per_member: dict[str, float] = {}
                for member, attack in self.members(classifier):
                    cand = attack.generate(z, y=onehot, mask=mask).astype(np.float32)
                    fooled_here = classifier.predict(cand).argmax(1) != y
                    replay, _ = client.predict(self._rows(ctx, rows, space, cand))
                    took = (replay != y) & (
                        end_pred == y
                    )  # first member that fools the endpoint wins
                    z_adv[took], end_pred[took] = cand[took], replay[took]
                    keep_local = ~local_fooled & fooled_here & (end_pred == y)
                    z_adv[keep_local] = cand[keep_local]
                    local_fooled |= fooled_here
                    per_member[f"robust_accuracy_{member}"] = float(
                        np.mean(np.where(clean_pred == y, replay, clean_pred) == y)
                    )
            except BudgetExhausted as exc:
                details["stopped"] = str(exc)
                return AttackResult(metrics={"samples": 0.0} | client.figures(), details=details)
            metrics = evasion_metrics(
                y, clean_pred, end_pred, z, z_adv, queries=client.queries, eps=p.eps, norm=p.norm
            )
            correct = clean_pred == y
            metrics["whitebox_robust_accuracy"] = float((correct & ~local_fooled).mean())
            if (local_fooled & correct).any():  # else nothing could transfer: not measured
                metrics["transfer_rate"] = float(
                    ((end_pred != y) & local_fooled & correct).sum() / (local_fooled & correct).sum()
                )
            metrics.update(per_member)
            if self.blackbox_check:
                self._blackbox_check(
                    ctx, deadline, client, rows, y, end_pred, clean_pred, space, metrics, details
                )
            details["errors"] = dict(client.errors)
            return AttackResult(metrics=self._counts(client, metrics), details=details)

    def _counts(self, client: EndpointClient, metrics: dict[str, float]) -> dict[str, float]:
        metrics.update(client.figures())
        return metrics

    def _rows(
        self, ctx: AttackContext, rows: np.ndarray, space: FeatureSpace, z: np.ndarray
    ) -> dict[str, np.ndarray]:
        batch = take_rows(ctx.dataset, rows)
        x = batch[space.input]
        batch[space.input] = (space.low + z.astype(np.float64) * space.span).astype(x.dtype)
        return batch

    def _local_model(
        self,
        ctx: AttackContext,
        client: EndpointClient,
        space: FeatureSpace,
        rows: np.ndarray,
        classes: int,
        details: dict[str, Any],
    ) -> nn.Module:
        p = self.params
        if p.model:
            details["model"] = p.model
            return RawInputModel(load_user_model(p.model), space).eval()
        others = np.setdiff1d(np.arange(len(ctx.dataset[space.input])), rows)
        rng = np.random.default_rng(ctx.seed + 1)
        train_rows = rng.choice(
            others, size=p.surrogate_queries, replace=len(others) < p.surrogate_queries
        )
        zs, ys = query_points(client, space, ctx.dataset, train_rows, jitter=0.1, seed=ctx.seed)
        details["model"] = f"surrogate trained on {len(ys)} endpoint answers"
        return train_surrogate(zs, ys, classes, seed=ctx.seed)

    def _blackbox_check(
        self,
        ctx: AttackContext,
        deadline: float,
        client: EndpointClient,
        rows: np.ndarray,
        y: np.ndarray,
        end_pred: np.ndarray,
        clean_pred: np.ndarray,
        space: FeatureSpace,
        metrics: dict[str, float],
        details: dict[str, Any],
    ) -> None:
        """HopSkipJump on the endpoint against the samples every white-box member missed."""
        p = self.params
        survivors = rows[(end_pred == y) & (clean_pred == y)]
        left = p.max_queries - client.queries
        robust = float(np.mean(end_pred == y))
        if len(survivors) and left > len(survivors):
            sub = dataclasses.replace(
                ctx, dataset=take_rows(ctx.dataset, survivors), labels=y[np.isin(rows, survivors)]
            )
            hsj = HopSkipJumpEvasion(
                f"{self.name}-hsj",
                HopSkipJumpParams(
                    samples=len(survivors),
                    max_queries=left,
                    rate_limit=p.rate_limit,
                    batch_size=p.batch_size,
                    input=space.input,
                    eps=p.eps,
                    norm=p.norm,
                    bounds=list(zip(space.low.tolist(), space.high.tolist())),
                    mutable=p.mutable,
                    classes=p.classes,
                ),
            )
            found = hsj.run(sub, deadline).metrics
            if found.get("samples"):
                broken = found.get("successes", 0.0) * len(survivors) / found["samples"]
                robust -= broken / len(rows)
            client.queries += int(found.get("queries", 0))
            client.server_errors += int(found.get("server_errors", 0))
            details["blackbox_check"] = found
        metrics["blackbox_robust_accuracy"] = robust
        metrics["gradient_masking"] = float(
            gradient_masking(robust, metrics["whitebox_robust_accuracy"], len(rows))
        )
        metrics["robust_accuracy"] = min(metrics["robust_accuracy"], robust)


class FgsmAttack(WhiteboxAttack):
    """Fast Gradient Sign Method (Goodfellow et al. 2015): one step of size eps."""

    type = "whitebox.fgsm"

    def members(self, classifier: PyTorchClassifier) -> list[tuple[str, Any]]:
        assert self.params.eps is not None
        return [
            (
                "fgsm",
                FastGradientMethod(
                    classifier,
                    norm=self._norm(),
                    eps=self.params.eps,
                    eps_step=self.params.eps,
                    batch_size=self.params.batch_size,
                ),
            )
        ]


class PgdAttack(WhiteboxAttack):
    """Projected Gradient Descent (Madry et al. 2018), Linf or L2 (`norm:`)."""

    type = "whitebox.pgd"

    def members(self, classifier: PyTorchClassifier) -> list[tuple[str, Any]]:
        assert self.params.eps is not None
        return [("pgd", self._pgd(classifier, random_inits=0))]


class AutoAttackEnsemble(WhiteboxAttack):
    """AutoAttack-style worst case: FGSM, PGD and APGD-CE, then black-box HopSkipJump
    on the survivors; a sample counts as robust only if every member failed."""

    type = "whitebox.autoattack"
    blackbox_check = True

    def members(self, classifier: PyTorchClassifier) -> list[tuple[str, Any]]:
        p = self.params
        assert p.eps is not None
        return [
            (
                "fgsm",
                FastGradientMethod(
                    classifier,
                    norm=self._norm(),
                    eps=p.eps,
                    eps_step=p.eps,
                    batch_size=p.batch_size,
                ),
            ),
            (
                "pgd",
                self._pgd(classifier, random_inits=1),
            ),
            (
                "apgd",
                AutoProjectedGradientDescent(
                    classifier,
                    norm=self._norm(),
                    eps=p.eps,
                    eps_step=self._eps_step() * 2,
                    max_iter=p.max_iter,
                    nb_random_init=1,
                    batch_size=p.batch_size,
                    loss_type="cross_entropy",
                    verbose=False,
                ),
            ),
        ]
