"""`model.rollout`: a new model version goes out through the scenario's deploy hook.

As a canary at a `share` of the traffic or all at once (`share: 100%`), optionally degraded
on purpose (`degrade:` seeded label noise, a shifted threshold, a slower model, crashes on
some inputs; the target applies it, the hook passes it on). The version is named bad in
the `fault.injected` event (unless `bad: false`), so `bad_version_share` and
`rollback_time` count the responses that name it. Revert rolls back to the previous
version through the `rollback` hook; without one, a dropped file is taken back, or the
deploy hook puts `previous` out in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from faults.lifecycle.deploy_hook import DeployHook, call, resolve
from harness.core.fault import Fault, FaultContext, FaultParams, UserError
from harness.core.units import Duration, Percent


class Degradation(FaultParams):
    """What makes the new version bad; the target applies it to the version it serves."""

    label_noise: Percent = Field(0.0, description="share of answers flipped to a wrong class (seeded)")
    threshold_shift: float = Field(0.0, ge=-1, le=1, description="added to the decision threshold")
    slow: Duration = Field(0.0, ge=0, description="extra latency per request")
    crash_share: Percent = Field(0.0, description="share of inputs the version crashes on (answered 5xx)")
    seed: int | None = Field(None, description="default: the scenario's seed")


class ModelRolloutParams(FaultParams):
    version: str = Field(min_length=1, description="the new version's label, as responses name it")
    previous: str | None = Field(None, description="the version to roll back to (needed to roll back "
                                                   "through the deploy hook)")
    share: Percent = Field(1.0, description="canary share of the traffic; 100% = all at once")
    degrade: Degradation | None = Field(None, description="label_noise, threshold_shift, slow, crash_share, seed")
    artifact: str | None = Field(None, description="the new version's artifact (relative: to the run folder)")
    bad: bool | None = Field(None, description="count the version as bad; default: when it is degraded")
    deploy: DeployHook = Field(description="http: {url, method, body}, command: [argv], or file: {dir, name}")
    rollback: DeployHook | None = Field(None, description="how to roll back; default: take a dropped file "
                                                          "back, or deploy `previous` in full")


class ModelRollout(Fault):
    type = "model.rollout"
    Params = ModelRolloutParams
    params: ModelRolloutParams

    def __init__(self, name: str, params: FaultParams, ctx: FaultContext) -> None:
        super().__init__(name, params, ctx)
        self._attempted = False
        self._deploy = resolve(self.params.deploy, self._values(), ctx.run_dir)
        self._rollback = self._rollback_call()

    @classmethod
    def check(cls, params: FaultParams, dependencies: set[str], processes: set[str]) -> None:
        p = params
        assert isinstance(p, ModelRolloutParams)
        if p.rollback is None and p.deploy.file is None and p.previous is None:
            raise UserError("model.rollout: say how to roll back: add `rollback:` (a hook, e.g. "
                            "{http: {url: \"{target}/admin/rollback\"}}) or `previous: VERSION`")
        if p.share <= 0:
            raise UserError("model.rollout: share must be above 0% (100% puts the version out in full)")

    def _values(self, version: str | None = None, share: float | None = None, rollback: bool = False) -> dict[str, Any]:
        p = self.params
        degrade = {} if p.degrade is None or rollback else p.degrade.model_dump()  # seconds, fractions
        if degrade and degrade.get("seed") is None:
            degrade["seed"] = self.ctx.seed
        artifact = None
        if p.artifact and not rollback:
            path = Path(p.artifact)
            artifact = str(path if path.is_absolute() or self.ctx.run_dir is None else self.ctx.run_dir / path)
        return {"target": self.ctx.target_url or "", "version": version or p.version, "previous": p.previous,
                "share": p.share if share is None else share, "artifact": artifact, "degrade": degrade}

    def _rollback_call(self) -> dict[str, Any]:
        p = self.params
        values = self._values(rollback=True)
        if p.rollback is not None:
            return resolve(p.rollback, values, self.ctx.run_dir)
        if p.deploy.file is not None:  # take the dropped file back (read at undo_record time)
            return {"kind": "restore", "path": self._deploy["path"], "previous": None}
        return resolve(p.deploy, self._values(version=p.previous, share=1.0, rollback=True), self.ctx.run_dir)

    def bad_versions(self) -> list[str]:
        bad = self.params.bad if self.params.bad is not None else self.params.degrade is not None
        return [self.params.version] if bad else []

    def undo_record(self) -> dict[str, Any]:
        if self._rollback["kind"] == "restore":  # what the file held before the drop, if anything
            path = Path(self._rollback["path"])
            self._rollback["previous"] = path.read_text() if path.is_file() else None
        return {"rollback": self._rollback, "allowed_hosts": list(self.ctx.allowed_hosts)}

    def inject(self) -> None:
        self._attempted = True
        done = call(self._deploy, self.ctx.allowed_hosts)
        self.ctx.journal("rollout.deployed", fault=self.name, version=self.params.version,
                         share=self.params.share, hook=done)

    def revert(self) -> None:
        if not self._attempted:
            return
        done = call(self._rollback, self.ctx.allowed_hosts)
        self.ctx.journal("rollout.rolled_back", fault=self.name, version=self.params.version, hook=done)

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        return call(record["rollback"], tuple(record.get("allowed_hosts") or ()))
