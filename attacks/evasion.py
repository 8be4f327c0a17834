"""Black-box evasion against the live endpoint, with the Adversarial Robustness Toolbox.

HopSkipJump and Boundary need labels only; SquareAttack and SimBA need class scores.
Each sample is attacked on its own (its other inputs, e.g. `entity_id`, held fixed),
through a query-counting, rate-limited ART classifier over the endpoint, and the
adversarial point found is finally sent to the endpoint once more: success is what
the live endpoint answers, not what the attack believed.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections.abc import Callable
from typing import Any, ClassVar

import numpy as np
from art.attacks.attack import EvasionAttack
from art.attacks.evasion import BoundaryAttack, HopSkipJump, SimBA, SquareAttack
from art.estimators.classification import BlackBoxClassifierNeuralNetwork
from pydantic import Field, field_validator

from attacks.base import (
    Attack,
    AttackContext,
    AttackParams,
    AttackResult,
    attacked_input,
    pick_rows,
    require_labels,
)
from attacks.endpoint import BudgetExhausted, EndpointClient, EndpointError, QueryRefused
from attacks.metrics import evasion_metrics, perturbation_norm
from attacks.space import FeatureSpace, take_row, take_rows
from harness.fault import UserError

# ART 1.20 attacks that fail under numpy 2 (or are image-only in a way tabular data cannot use).
REFUSED = {
    "evasion.geoda": "GeoDA in ART 1.20 breaks under numpy 2 (it uses removed numpy APIs)",
    "evasion.pixel": "PixelAttack in ART 1.20 breaks under numpy 2",
    "evasion.threshold": "ThresholdAttack in ART 1.20 breaks under numpy 2",
    "evasion.laser": "LaserAttack in ART 1.20 breaks under numpy 2 (and is image-only)",
}
REFUSED_ADVICE = "use evasion.hopskipjump or evasion.boundary (labels only), or evasion.square or evasion.simba (scores)"


def parse_norm(value: Any) -> float:
    if value in (2, 2.0, "2", "l2", "L2"):
        return 2.0
    if value in ("inf", "linf", "Linf", float("inf")):
        return float("inf")
    raise ValueError(f"norm must be 2 or inf, got {value!r}")


class EvasionParams(AttackParams):
    eps: float | None = Field(
        None, gt=0, description="largest perturbation that counts as an attack (attack space)"
    )
    norm: float = Field(2.0, description="2 or inf: the norm of eps and of the attack")
    bounds: list[tuple[float, float]] | None = Field(
        None, description="[low, high] per column of the input (default: the data's min/max)"
    )
    mutable: list[int] | None = Field(None, description="columns the attacker may change")
    classes: int | None = Field(None, ge=2, description="number of classes (default: from labels)")
    max_queries_per_sample: int | None = Field(
        None, ge=1, description="queries per sample before it counts as withstood"
    )

    @field_validator("norm", mode="before")
    @classmethod
    def _norm(cls, v: Any) -> float:
        return parse_norm(v)


class SampleBudgetExhausted(BudgetExhausted):
    """One sample's share of the query budget is used up; the next sample goes on."""


class SampleEndpoint:
    """The endpoint seen as an ART classifier for one original row, in attack space."""

    def __init__(
        self,
        client: EndpointClient,
        space: FeatureSpace,
        row: dict[str, np.ndarray],
        scores: bool,
        classes: int,
        limit: int | None,
        unpack: Callable[[np.ndarray, int], np.ndarray],
        origin: np.ndarray,
        label: int,
        norm: float,
    ) -> None:
        self.client, self.space, self.row, self.unpack = client, space, row, unpack
        self.scores, self.classes = scores, classes
        self.limit = None if limit is None else client.queries + limit
        self.origin, self.label, self.norm = origin.reshape(-1), label, norm
        # the closest point the endpoint has already misclassified: a success the attack
        # has seen, kept if its budget or window ends before it returns
        self.best: tuple[float, np.ndarray, int] | None = None

    def __call__(self, z: np.ndarray) -> np.ndarray:
        z = self.unpack(z, self.space.width)
        if self.limit is not None and self.client.queries + len(z) > self.limit:
            raise SampleBudgetExhausted("this sample's query budget is used up")
        labels, scores = self.client.predict(self.space.request(z, self.row))
        self._note_adversarial(z, labels)
        if self.scores:
            if scores is None or scores.shape[1] != self.classes:
                raise UserError(
                    "this attack needs class scores, but the endpoint answers with labels only; "
                    "use evasion.hopskipjump or evasion.boundary"
                )
            return scores.astype(np.float32)
        return np.eye(self.classes, dtype=np.float32)[labels]

    def _note_adversarial(self, z: np.ndarray, labels: np.ndarray) -> None:
        wrong = np.flatnonzero(labels != self.label)
        if not len(wrong):
            return
        dist = perturbation_norm(np.clip(z[wrong], 0, 1) - self.origin, self.norm)
        k = int(dist.argmin())
        if self.best is None or dist[k] < self.best[0]:
            self.best = (
                float(dist[k]),
                np.clip(z[wrong[k]], 0, 1).astype(np.float32),
                int(labels[wrong[k]]),
            )


class BlackBoxEvasion(Attack):
    Params: ClassVar[type[AttackParams]] = EvasionParams
    params: EvasionParams
    needs_scores: ClassVar[bool] = False

    def input_shape(self, width: int) -> tuple[int, ...]:
        """How the attack-space vector is shaped for ART (image attacks want 3-D)."""
        return (width,)

    def pack(self, z: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """Attack-space rows [n, m] → ART's input shape."""
        return z.reshape(len(z), *shape)

    def unpack(self, a: np.ndarray, width: int) -> np.ndarray:
        """ART's input shape → attack-space rows [n, m]."""
        return np.asarray(a).reshape(len(a), -1)[:, :width]

    @abstractmethod
    def art_attack(self, classifier: BlackBoxClassifierNeuralNetwork) -> EvasionAttack: ...

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        labels = require_labels(ctx, self.type)
        name = attacked_input(ctx, p.input)
        x = ctx.dataset[name]
        space = FeatureSpace.from_data(name, x, p.bounds, p.mutable)
        classes = p.classes or int(labels.max()) + 1
        rows = pick_rows(len(x), p.samples, ctx.seed)
        shape = self.input_shape(space.width)
        np.random.seed(ctx.seed % 2**32)  # ART draws from numpy's global generator
        started = time.monotonic()
        finished: list[int] = []
        stopped = "done"
        refused_samples = 0
        with EndpointClient.for_attack(ctx, p, deadline) as client:
            try:
                clean_pred, _ = client.predict(take_rows(ctx.dataset, rows))
            except BudgetExhausted as exc:
                return self._result(client, [], rows, labels, None, None, None, None, str(exc))
            z = space.encode(x[rows])
            z_adv, adv_pred = z.copy(), clean_pred.copy()
            for j, i in enumerate(rows):
                if clean_pred[j] != labels[i]:
                    finished.append(j)  # already wrong: nothing to attack
                    continue
                endpoint = SampleEndpoint(
                    client,
                    space,
                    take_row(ctx.dataset, i),
                    self.needs_scores,
                    classes,
                    p.max_queries_per_sample,
                    self.unpack,
                    z[j],
                    int(labels[i]),
                    p.norm,
                )
                classifier = BlackBoxClassifierNeuralNetwork(
                    endpoint,
                    input_shape=shape,
                    nb_classes=classes,
                    clip_values=(0.0, 1.0),
                    channels_first=True,
                )
                y = np.eye(classes, dtype=np.float32)[[labels[i]]]
                try:
                    found = self.unpack(
                        self.art_attack(classifier).generate(self.pack(z[j : j + 1], shape), y=y),
                        space.width,
                    )
                    pred, _ = client.predict(space.request(found, take_row(ctx.dataset, i)))
                    z_adv[j], adv_pred[j] = found.reshape(-1), pred[0]
                except SampleBudgetExhausted:
                    pass  # its share of the budget is spent: the best point seen stands
                except BudgetExhausted as exc:
                    stopped = str(exc)
                    if endpoint.best is not None:
                        _, z_adv[j], adv_pred[j] = endpoint.best
                        finished.append(j)
                    break
                except QueryRefused as exc:
                    # a defence stopped the search: the sample keeps what the endpoint
                    # last confirmed (its clean prediction, or a success found before)
                    refused_samples += 1
                    if refused_samples == 1:
                        ctx.journal("attack.refused", attack=self.name, error=str(exc), kind=exc.kind)
                except EndpointError as exc:
                    ctx.journal("attack.error", attack=self.name, error=str(exc), kind=exc.kind)
                    continue
                best = endpoint.best
                final_ok = adv_pred[j] != labels[i] and (
                    p.eps is None
                    or perturbation_norm(z_adv[j : j + 1] - z[j : j + 1], p.norm)[0] <= p.eps
                )
                if best is not None and not final_ok and (p.eps is None or best[0] <= p.eps):
                    _, z_adv[j], adv_pred[j] = (
                        best  # a closer success the endpoint already confirmed
                    )
                finished.append(j)
            result = self._result(
                client,
                finished,
                rows,
                labels,
                clean_pred,
                adv_pred,
                z,
                z_adv,
                stopped,
                space=space,
                x=x,
            )
        result.metrics["refused_samples"] = float(refused_samples)
        result.details["seconds"] = round(time.monotonic() - started, 3)
        return result

    def _result(
        self,
        client: EndpointClient,
        finished: list[int],
        rows: np.ndarray,
        labels: np.ndarray,
        clean_pred: np.ndarray | None,
        adv_pred: np.ndarray | None,
        z: np.ndarray | None,
        z_adv: np.ndarray | None,
        stopped: str,
        space: FeatureSpace | None = None,
        x: np.ndarray | None = None,
    ) -> AttackResult:
        p = self.params
        done = np.array(finished, dtype=np.int64)
        metrics: dict[str, float] = {"samples": 0.0}
        details: dict[str, Any] = {"stopped": stopped, "samples_planned": len(rows)}
        if len(done) and clean_pred is not None:
            metrics = evasion_metrics(
                labels[rows][done],
                clean_pred[done],
                adv_pred[done],
                z[done],
                z_adv[done],
                queries=client.queries,
                eps=p.eps,
                norm=p.norm,
            )
            examples = []
            for j in done[:5]:
                if adv_pred[j] != clean_pred[j]:
                    examples.append(
                        {
                            "row": int(rows[j]),
                            "label": int(labels[rows][j]),
                            "adversarial_prediction": int(adv_pred[j]),
                            "original": x[rows[j]].tolist(),
                            "adversarial": space.decode(z_adv[j : j + 1], x[rows[j]])[0].tolist(),
                        }
                    )
            details["examples"] = examples
            details["rows"] = rows[done].tolist()  # dataset rows the attack finished
            details["adversarial"] = [
                space.decode(z_adv[j : j + 1], x[rows[j]])[0].tolist() for j in done
            ]
        metrics.update(client.counts(), refused_queries=float(client.refused))
        details["errors"] = dict(client.errors)  # failed requests by kind (refused, reset, timeout, http_N)
        return AttackResult(metrics=metrics, details=details)


class HopSkipJumpParams(EvasionParams):
    max_iter: int = Field(10, ge=1)
    max_eval: int = Field(100, ge=1)
    init_eval: int = Field(10, ge=1)
    init_size: int = Field(50, ge=1)


class HopSkipJumpEvasion(BlackBoxEvasion):
    """HopSkipJump (Chen et al. 2020): decision-based, labels only."""

    type = "evasion.hopskipjump"
    Params = HopSkipJumpParams
    params: HopSkipJumpParams

    def art_attack(self, classifier: BlackBoxClassifierNeuralNetwork) -> EvasionAttack:
        p = self.params
        return HopSkipJump(
            classifier,
            batch_size=p.batch_size,
            norm=2 if p.norm == 2 else np.inf,
            max_iter=p.max_iter,
            max_eval=p.max_eval,
            init_eval=p.init_eval,
            init_size=p.init_size,
            verbose=False,
        )


class BoundaryParams(EvasionParams):
    max_iter: int = Field(50, ge=1)
    num_trial: int = Field(10, ge=1)
    sample_size: int = Field(10, ge=1)
    init_size: int = Field(50, ge=1)
    delta: float = Field(0.01, gt=0)
    epsilon: float = Field(0.01, gt=0)


class BoundaryEvasion(BlackBoxEvasion):
    """Boundary attack (Brendel et al. 2018): decision-based, labels only."""

    type = "evasion.boundary"
    Params = BoundaryParams
    params: BoundaryParams

    def art_attack(self, classifier: BlackBoxClassifierNeuralNetwork) -> EvasionAttack:
        p = self.params
        return BoundaryAttack(
            classifier,
            batch_size=p.batch_size,
            targeted=False,
            delta=p.delta,
            epsilon=p.epsilon,
            max_iter=p.max_iter,
            num_trial=p.num_trial,
            sample_size=p.sample_size,
            init_size=p.init_size,
            verbose=False,
        )


class SquareParams(EvasionParams):
    eps: float | None = Field(0.1, gt=0)
    norm: float = Field(float("inf"))
    max_iter: int = Field(100, ge=1)
    p_init: float = Field(0.5, gt=0, le=0.5)
    nb_restarts: int = Field(1, ge=1)

    @field_validator("norm")
    @classmethod
    def _linf_only(cls, v: float) -> float:
        if v != float("inf"):
            raise ValueError("evasion.square supports norm: inf only on tabular inputs")
        return v


class SquareEvasion(BlackBoxEvasion):
    """Square attack (Andriushchenko et al. 2020): random search on class scores."""

    type = "evasion.square"
    Params = SquareParams
    params: SquareParams
    needs_scores = True

    def input_shape(self, width: int) -> tuple[int, ...]:
        # ART's Square wants images. One channel per column on a 2x2 canvas whose top-left
        # pixel holds the row: each step then tries a random corner of the eps-box.
        return (width, 2, 2)

    def pack(self, z: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        out = np.zeros((len(z), *shape), dtype=np.float32)
        out[:, :, 0, 0] = z
        return out

    def unpack(self, a: np.ndarray, width: int) -> np.ndarray:
        return np.asarray(a)[:, :width, 0, 0]

    def art_attack(self, classifier: BlackBoxClassifierNeuralNetwork) -> EvasionAttack:
        p = self.params
        assert p.eps is not None
        return SquareAttack(
            classifier,
            norm=2 if p.norm == 2 else np.inf,
            eps=p.eps,
            max_iter=p.max_iter,
            p_init=p.p_init,
            nb_restarts=p.nb_restarts,
            batch_size=p.batch_size,
            verbose=False,
        )


class SimbaParams(EvasionParams):
    max_iter: int = Field(200, ge=1)
    epsilon: float = Field(0.05, gt=0, description="step per coordinate (attack space)")


class SimbaEvasion(BlackBoxEvasion):
    """SimBA (Guo et al. 2019), coordinate version: class scores."""

    type = "evasion.simba"
    Params = SimbaParams
    params: SimbaParams
    needs_scores = True

    def input_shape(self, width: int) -> tuple[int, ...]:
        return (1, 1, width)  # ART's SimBA wants images; its pixel mode works on any shape

    def art_attack(self, classifier: BlackBoxClassifierNeuralNetwork) -> EvasionAttack:
        p = self.params
        return SimBA(
            classifier,
            attack="px",
            max_iter=p.max_iter,
            epsilon=p.epsilon,
            order="random",
            freq_dim=1,
            stride=1,
            verbose=False,
        )
