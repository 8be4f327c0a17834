"""What the model server does, apart from HTTP: load or train the models,
predict with fallback, watch drift, take labelled rows and retrain."""

from __future__ import annotations

import asyncio
import shutil
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from harness.demo.artifacts import ArtifactLoader, ArtifactRefused
from harness.demo.canary import CanaryAnalysis, LiveTraffic
from harness.demo.config import ServerConfig
from harness.demo.data import N_ENTITIES, TRANSACTION_FEATURES, Samples, entity_table, sample
from harness.demo.drift import DriftMonitor
from harness.demo.feature_client import FeatureClient, FeatureStoreUnavailable
from harness.demo.input_guard import InputGuard
from harness.demo.metrics import Metrics
from harness.demo.model import Models, accuracy, in_child_process, train_models
from harness.demo.model_cache import load_models, model_path, save_models
from harness.demo.query_guard import QueryGuard, QueryRefused
from harness.demo.storage import ChecksumMismatch
from harness.demo.versions import Degradation, ServedVersion, VersionRouter

TRAIN_SAMPLE_SEED = 0  # export-data defaults to seed 1: evaluation never sees training rows
HOLDOUT_SAMPLE_SEED = 99
SHADOW_SAMPLE_SEED = 7  # the canary analysis's labelled shadow batch
SHADOW_ROWS = 512


class ServiceUnavailable(Exception):
    """The request cannot be served now (503)."""


class MainModelFailed(Exception):
    """The main model raised; the fallback answers instead."""


@dataclass
class Prediction:
    probabilities: np.ndarray
    fallback_reason: str | None
    version: str = ""  # the model version that answered

    @property
    def labels(self) -> np.ndarray:
        return self.probabilities.argmax(axis=1)


def log(message: str) -> None:
    print(f"[demo-server] {message}", file=sys.stderr, flush=True)


class ModelService:
    def __init__(self, config: ServerConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.models: Models | None = None
        self.version = 1
        self.model_source = ""
        self.reference = sample(config.train_rows, config.world_seed, TRAIN_SAMPLE_SEED)
        self.entity_table = entity_table(config.world_seed)
        self.input_guard = InputGuard.from_training(self.reference.features)
        self.query_guard = QueryGuard.from_training(self.reference.features)
        self.variant = "robust" if config.robust_model else "plain"
        self.drift = DriftMonitor(
            self.reference.features,
            TRANSACTION_FEATURES,
            window=config.drift_window,
            threshold=config.drift_threshold,
            min_rows=config.drift_min_rows,
        )
        self.drift_alert = False
        self.features: FeatureClient | None = None
        self.webhook: httpx.AsyncClient | None = None
        self.background: set[asyncio.Task[Any]] = set()
        self.inflight = 0
        self.ingested: list[tuple[list[float], int, int]] = []
        self.ingest_lock = threading.Lock()
        self.retrain_lock = threading.Lock()
        self.retrain_status: dict[str, Any] = {"state": "idle"}
        self.router = VersionRouter(seed=config.world_seed)
        self.artifacts = ArtifactLoader(config.state_dir, config.verify_artifacts)
        self.live = LiveTraffic()
        self.analysis: CanaryAnalysis | None = None
        self.rollout_events: list[dict[str, Any]] = []
        self.shadow = sample(SHADOW_ROWS, config.world_seed, SHADOW_SAMPLE_SEED)

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        self.features = FeatureClient(self.config.features, self.metrics)
        self.webhook = httpx.AsyncClient(timeout=2.0)
        for task in (
            asyncio.create_task(asyncio.to_thread(self.load_or_train)),
            asyncio.create_task(self.features.warm(range(N_ENTITIES))),
        ):
            self.background.add(task)
            task.add_done_callback(self.background.discard)

    async def stop(self) -> None:
        for task in list(self.background):
            task.cancel()
        if self.features:
            await self.features.aclose()
        if self.webhook:
            await self.webhook.aclose()

    def load_or_train(self) -> None:
        """Use the cached models if their checksum holds; otherwise train and cache."""
        state_dir = self.config.state_dir
        try:
            models = load_models(state_dir, self.variant)
            self.model_source = "cache"
        except FileNotFoundError:
            models = self._train_and_cache("no cached model")
        except ChecksumMismatch as exc:
            self.metrics.checksum_failures.inc()
            log(f"checksum mismatch, not loading the cached model: {exc}")
            corrupt = model_path(state_dir, self.variant).with_suffix(".pt.corrupt")
            shutil.move(model_path(state_dir, self.variant), corrupt)
            log(f"moved it to {corrupt}")
            models = self._train_and_cache("cached model failed its checksum")
            self.model_source = "retrained-after-checksum-mismatch"
        self.version = int(models.meta.get("version", 1))
        self.models = models
        self.metrics.model_ready.set(1)
        log(f"model {self.config.model_name} v{self.version} ready ({self.model_source})")

    def _train_and_cache(self, why: str) -> Models:
        started = time.monotonic()
        models = train_models(
            self.reference,
            self.config.world_seed,
            steps=self.config.train_steps,
            robust_eps=self.robust_eps,
        )
        models.meta["version"] = 1
        save_models(self.config.state_dir, models)
        self.model_source = "trained"
        log(
            f"{why}: trained {self.variant} models in {time.monotonic() - started:.1f}s, "
            f"cached in {model_path(self.config.state_dir, self.variant)}"
        )
        return models

    @property
    def robust_eps(self) -> float:
        return self.config.robust_eps if self.config.robust_model else 0.0

    @property
    def ready(self) -> bool:
        return self.models is not None

    # --- inference -------------------------------------------------------------------

    def base_version(self) -> ServedVersion:
        """The version the server loaded or retrained itself (stable unless one was promoted)."""
        assert self.models is not None
        return ServedVersion(str(self.version), self.models)

    async def predict(self, features: np.ndarray, entity_id: np.ndarray) -> Prediction:
        """The answer of the version the router picks (the stable one, or a canary).

        Raises VersionCrashed where a degraded version fails on the input, and what
        `_predict` raises."""
        if self.models is None:
            raise ServiceUnavailable("the model is still loading; poll /v2/health/ready")
        version = self.router.pick(self.base_version())
        started = time.monotonic()
        ok = False
        try:
            version.check_input(entity_id)
            if version.degrade.slow:
                await asyncio.sleep(version.degrade.slow)
            prediction = await self._predict(version.models, features, entity_id)
            ok = True
        finally:
            if self.router.canary is not None:  # the analysis's input; nothing kept without a canary
                self.live.observe(version.label, time.monotonic() - started, ok)
            self.metrics.version_requests.labels(version.label, "ok" if ok else "error").inc()
        prediction.probabilities = version.degraded(prediction.probabilities)
        prediction.version = version.label
        return prediction

    async def _predict(self, models: Models, features: np.ndarray, entity_id: np.ndarray) -> Prediction:
        """Main model when it can; fallback (if on) when features or the model fail.

        Raises ServiceUnavailable when neither can answer, UnknownEntities for ids
        the store does not know, QueryRefused for boundary probing (query guard on).
        """
        if self.config.query_guard:
            try:
                self.query_guard.check(features)
            except QueryRefused:
                self.metrics.refused_queries.inc(len(features))
                raise
        self.observe_drift(features)  # what clients send, before any sanitising
        if self.config.input_guard:
            features = self.input_guard.apply(features)
        assert self.features is not None
        try:
            entity_features = await self.features.get_many(entity_id)
            main = self._predict_main(models, features, entity_features)
        except FeatureStoreUnavailable as exc:
            if not self.config.fallback:
                raise ServiceUnavailable(str(exc)) from exc
            main, reason = None, exc.reason
        except MainModelFailed:
            main, reason = None, "model_error"
        if main is not None:
            self.metrics.predictions.labels("main").inc(len(features))
            return Prediction(probabilities=main, fallback_reason=None)
        self.metrics.fallbacks.labels(reason).inc()
        self.metrics.predictions.labels("fallback").inc(len(features))
        return Prediction(probabilities=models.predict_fallback(features), fallback_reason=reason)

    def _predict_main(
        self, models: Models, features: np.ndarray, entity_features: np.ndarray
    ) -> np.ndarray:
        try:
            return models.predict_main(features, entity_features)
        except Exception as exc:  # the main model failing is what the fallback is for
            if not self.config.fallback:
                raise
            log(f"main model failed: {exc!r}")
            raise MainModelFailed from exc

    # --- drift -------------------------------------------------------------------------

    def observe_drift(self, features: np.ndarray) -> None:
        self.drift.observe(features)
        state = self.drift.state()
        self.metrics.drift_score.set(state.score)
        self.metrics.drift_alert.set(int(state.alert))
        for name, psi in state.per_feature.items():
            self.metrics.drift_feature.labels(name).set(psi)
        if state.alert != self.drift_alert:
            self.drift_alert = state.alert
            log(f"drift alert {'ON' if state.alert else 'off'} (score {state.score:.3f})")
            if self.config.drift_webhook:
                payload = {
                    "event": "drift_alert" if state.alert else "drift_resolved",
                    "model": self.config.model_name,
                    "alert": state.alert,
                    "score": state.score,
                    "threshold": self.config.drift_threshold,
                    "per_feature": state.per_feature,
                    "rows": state.rows,
                    "time": time.time(),
                }
                task = asyncio.get_running_loop().create_task(self._post_webhook(payload))
                self.background.add(task)
                task.add_done_callback(self.background.discard)

    async def _post_webhook(self, payload: dict[str, Any]) -> None:
        assert self.webhook is not None and self.config.drift_webhook
        try:
            await self.webhook.post(self.config.drift_webhook, json=payload)
        except httpx.HTTPError as exc:
            log(f"drift webhook {self.config.drift_webhook} failed: {exc!r}")

    # --- training side -----------------------------------------------------------------

    def ingest(self, rows: list[Any], validate: Any) -> dict[str, Any]:
        """Keep the rows that pass ``validate`` (and the ingest guard, when on);
        report each of the rest by index, with the reason."""
        valid: list[tuple[int, tuple[list[float], int, int]]] = []
        errors: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            problem = validate(row)
            if problem is None:
                valid.append((i, (row["features"], row["entity_id"], row["label"])))
            else:
                errors.append({"row": i, "error": problem, "reason": "schema"})
        guard_rejects = self._contradicted(valid) if self.config.ingest_guard else {}
        accepted = [r for i, r in valid if i not in guard_rejects]
        errors.extend(
            {"row": i, "error": why, "reason": "label_contradicts_model"}
            for i, why in guard_rejects.items()
        )
        errors.sort(key=lambda e: e["row"])
        with self.ingest_lock:
            self.ingested.extend(accepted)
            total = len(self.ingested)
        self.metrics.ingested_rows.labels("accepted").inc(len(accepted))
        self.metrics.ingested_rows.labels("rejected").inc(len(errors))
        self.metrics.ingest_guard_rejections.inc(len(guard_rejects))
        return {
            "accepted": len(accepted),
            "rejected": len(errors),
            "rejected_by_guard": len(guard_rejects),
            "errors": errors,
            "total_ingested": total,
        }

    def _contradicted(self, rows: list[tuple[int, tuple[list[float], int, int]]]) -> dict[int, str]:
        """Rows whose label the current model contradicts with high confidence: a
        label-flipping poisoner's rows, mostly (the model is right about ~94% of rows).

        The entity features come from the offline table, as in training.
        """
        if not rows:
            return {}
        models = self.models
        if models is None:
            raise ServiceUnavailable(
                "the model is still loading; ingest when /v2/health/ready is 200"
            )
        features = np.array([r[0] for _, r in rows], dtype=np.float32)
        entity_id = np.array([r[1] for _, r in rows], dtype=np.int64)
        labels = np.array([r[2] for _, r in rows], dtype=np.int64)
        probabilities = models.predict_screen(features, self.entity_table[entity_id])
        other = 1.0 - probabilities[np.arange(len(labels)), labels]
        limit = self.config.ingest_guard_confidence
        return {
            i: (
                f"label {label} contradicts the current model: it gives the other class "
                f"{p:.3f} >= {limit:g} (--ingest-guard-confidence)"
            )
            for (i, _), label, p in zip(rows, labels, other)
            if p >= limit
        }

    def start_retrain(self) -> bool:
        """Start a retrain in a thread; False if one is already running."""
        if not self.retrain_lock.acquire(blocking=False):
            return False
        self.retrain_status = {"state": "running", "started": time.time()}
        threading.Thread(target=self._retrain, name="retrain", daemon=True).start()
        return True

    def _retrain(self) -> None:
        try:
            with self.ingest_lock:
                rows = list(self.ingested)
            extra = None
            if rows:
                extra = Samples(
                    features=np.array([r[0] for r in rows], dtype=np.float32),
                    entity_id=np.array([r[1] for r in rows], dtype=np.int64),
                    label=np.array([r[2] for r in rows], dtype=np.int64),
                )
            models = in_child_process(
                train_models,
                self.reference,
                self.config.world_seed,
                seed=0,  # the data decides, not the init: the gate compares like with like
                steps=self.config.train_steps,
                extra=extra,
                robust_eps=self.robust_eps,
            )
            holdout = sample(2000, self.config.world_seed, HOLDOUT_SAMPLE_SEED)
            main_acc, fallback_acc = accuracy(models, holdout, self.config.world_seed)
            status: dict[str, Any] = {
                "state": "done",
                "ingested_rows": len(rows),
                "holdout_accuracy": {"main": main_acc, "fallback": fallback_acc},
            }
            current = self.models
            if self.config.promotion_gate and current is not None:
                current_acc, _ = accuracy(current, holdout, self.config.world_seed)
                status["current_holdout_accuracy"] = current_acc
                if main_acc < current_acc - self.config.promotion_max_drop:
                    self.metrics.retrains.labels("not_promoted").inc()
                    self.retrain_status = {
                        **status,
                        "promoted": False,
                        "version": self.version,
                        "reason": (
                            f"holdout accuracy {main_acc:.4f} is more than "
                            f"{self.config.promotion_max_drop:g} below the current model's "
                            f"{current_acc:.4f}: v{self.version} stays"
                        ),
                        "finished": time.time(),
                    }
                    log(f"retrain not promoted: {self.retrain_status['reason']}")
                    return
            # In memory only: the cache keeps the first-start model, so that a run that
            # poisons a retrain leaves nothing behind for the next run that shares it.
            models.meta["version"] = self.version + 1
            self.models, self.version = models, self.version + 1
            self.metrics.retrains.labels("ok").inc()
            self.retrain_status = {
                **status,
                "promoted": True,
                "version": self.version,
                "finished": time.time(),
            }
            log(f"retrained: v{self.version}, holdout accuracy {main_acc:.3f}")
        except Exception as exc:  # noqa: BLE001 (reported on GET retrain; serving goes on)
            self.metrics.retrains.labels("failed").inc()
            self.retrain_status = {"state": "failed", "error": repr(exc)}
            log(f"retrain failed: {exc!r}")
        finally:
            self.retrain_lock.release()

    # --- rollouts --------------------------------------------------------------------------

    async def deploy(self, label: str, share: float, degrade: Degradation, artifact: str | None) -> dict[str, Any]:
        """Put version `label` out: as a canary at `share` (< 1), or in full. Resilient mode
        watches a canary (automated analysis, automatic rollback); fragile mode promotes it
        blindly after the bake time."""
        if self.models is None:
            raise ServiceUnavailable("the model is still loading; deploy when /v2/health/ready is 200")
        models = await self.load_artifact(artifact, label) if artifact else self.router.stable(self.base_version()).models
        version = ServedVersion(label, models, degrade)
        self.router.deploy(version, share)
        self._rollout_event("deployed", label, share=share, degrade=degrade.__dict__, artifact=artifact)
        if share < 1.0:
            self._watch(version)
        return self.versions()

    async def load_artifact(self, artifact: str, label: str) -> Models:
        """The models of ``label`` from ``artifact``: verified first (--verify-artifacts),
        a refusal logged and counted; ArtifactRefused or ArtifactLoadFailed if not loaded."""
        try:
            loaded = await asyncio.to_thread(self.artifacts.load, Path(artifact), label)
        except ArtifactRefused as exc:
            self.metrics.artifacts_refused.labels(exc.reason).inc()
            log(f"refused the artifact of {label} ({exc.reason}): {exc}; serving on unchanged")
            raise
        self.metrics.artifacts_loaded.labels(str(loaded.verified).lower()).inc()
        log(f"loaded {label} from {artifact} ({'verified' if loaded.verified else 'NOT verified'})")
        return loaded.models

    def _watch(self, version: ServedVersion) -> None:
        c = self.config
        if not c.canary_analysis:  # fragile: promote blindly once it has baked
            async def bake() -> None:
                await asyncio.sleep(c.canary_promote_after)
                self.promote(version, "baked: promoted without analysis")
            task = asyncio.get_running_loop().create_task(bake())
        else:
            self.analysis = CanaryAnalysis(
                canary=version, stable=lambda: self.router.stable(self.base_version()),
                current_canary=lambda: self.router.canary, live=self.live, shadow=self.shadow,
                shadow_entities=self.entity_table[self.shadow.entity_id],
                rollback=lambda why: self.rollback(f"canary analysis: {why}", canary=version),
                promote=lambda: self.promote(version, "canary analysis: healthy"),
                interval=c.canary_interval, promote_after=c.canary_promote_after,
            )
            task = asyncio.get_running_loop().create_task(self.analysis.run())
        self.background.add(task)
        task.add_done_callback(self.background.discard)

    def promote(self, canary: ServedVersion, why: str) -> None:
        if self.router.promote(canary):
            self._rollout_event("promoted", canary.label, reason=why)

    def rollback(self, why: str, canary: ServedVersion | None = None) -> str | None:
        """Roll back (the canary, else the last promoted version); with `canary`, only that
        canary if it still is one: the analysis never rolls back what replaced it."""
        label = self.router.rollback(canary)
        if label is not None:
            self._rollout_event("rolled_back", label, reason=why, automatic=canary is not None)
        return label

    def _rollout_event(self, action: str, label: str, **facts: Any) -> None:
        self.metrics.rollouts.labels(action).inc()
        self.metrics.canary_share.set(self.router.share if self.router.canary else 0.0)
        self.rollout_events.append({"t": time.time(), "action": action, "version": label, **facts})
        log(f"version {label} {action.replace('_', ' ')}" + (f": {facts['reason']}" if "reason" in facts else ""))

    def versions(self) -> dict[str, Any]:
        described = self.router.describe(self.base_version()) if self.models is not None else {}
        return {**described, "events": self.rollout_events[-50:],
                "analysis": self.analysis.log[-20:] if self.analysis else []}

    def status(self) -> dict[str, Any]:
        drift = self.drift.state()
        return {
            "config": self.config.describe(),
            "ready": self.ready,
            "model_version": self.router.stable(self.base_version()).label if self.models else str(self.version),
            "model_source": self.model_source,
            "model_variant": self.variant,
            "breaker": self.features.breaker_state.name.lower() if self.features else "closed",
            "inflight": self.inflight,
            "drift": {"score": drift.score, "alert": drift.alert, "rows": drift.rows},
            "ingested_rows": len(self.ingested),
            "retrain": self.retrain_status,
        }
