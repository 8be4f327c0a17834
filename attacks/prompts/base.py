"""What the prompt attacks share: params, the send-and-judge loop, and their figures.

Each attack turns into a list of probes: attack prompts, each with the test that says
it succeeded on the answer (a marker, the canary, no refusal), and benign prompts mixed
in evenly (`benign`), judged by the refusal classifier for `false_refusal_rate`. A probe
the target blocked (403, `content_filter`) counts as judged and declined; one that got
no answer (5xx, reset, timeout) is not judged. A rate with nothing judged is not
measured (absent, so an SLO on it fails), never 0.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from pydantic import Field

from attacks.endpoint import BudgetExhausted
from attacks.prompts.benign import benign_prompts
from attacks.prompts.chat import ChatClient, Reply, chat_adapter
from attacks.prompts.refusal import is_refusal
from harness.core.attack import Attack, AttackContext, AttackParams, AttackResult

DEFAULT_CANARY = "AFTERSHOCK-CANARY-7f3a9c"  # the demo's (`python -m harness.demo llm --canary`)


class PromptAttackParams(AttackParams):
    samples: int = Field(20, ge=1, le=10_000, description="attack prompts to send")
    max_queries: int = Field(200, ge=1, description="chat requests at most (attack and benign)")
    benign: int = Field(5, ge=0, le=10_000, description="benign prompts mixed in, for false_refusal_rate")
    canary: str = Field(DEFAULT_CANARY, min_length=6, description="the secret planted in the system prompt")
    system_prompt: str | None = Field(
        None, description="system message sent first, `{canary}` replaced by the canary (default: none, the target holds its own)")
    max_tokens: int = Field(128, ge=1, description="max_tokens of each request")
    stream: bool = Field(False, description="ask for streamed (SSE) answers")
    temperature: float | None = Field(0.0, ge=0, description="sampling temperature sent (none: the server's default)")


@dataclass(frozen=True)
class Probe:
    messages: list[dict[str, Any]]
    recipe: str  # how the prompt was built ("benign" for benign ones)
    succeeded: Callable[[str], bool] | None  # on the answer's text; None: a benign prompt


@dataclass
class Tally:
    judged: int = 0
    successes: int = 0
    benign_judged: int = 0
    benign_refused: int = 0
    by_recipe: Counter[str] | None = None
    examples: list[str] | None = None

    def add(self, probe: Probe, reply: Reply) -> None:
        if reply.text is None and not reply.blocked:
            return  # no answer: nothing to judge
        if probe.succeeded is None:
            self.benign_judged += 1
            self.benign_refused += reply.blocked or is_refusal(reply.text or "")
            return
        self.judged += 1
        if not reply.blocked and reply.text is not None and probe.succeeded(reply.text):
            self.successes += 1
            self.by_recipe = (self.by_recipe or Counter()) + Counter({probe.recipe: 1})
            self.examples = (self.examples or []) + [reply.text[:200]]

    def metrics(self, rate: str) -> dict[str, float]:
        out = {"prompts": float(self.judged), "benign_prompts": float(self.benign_judged)}
        if self.judged:
            out[rate] = self.successes / self.judged
        if self.benign_judged:
            out["false_refusal_rate"] = self.benign_refused / self.benign_judged
        return out


def mixed(attack: list[Probe], benign: list[str], seed: int) -> list[Probe]:
    """Attack probes with the benign ones spread among them at seeded places."""
    out = list(attack)
    rng = random.Random(f"mix-{seed}")
    for text in benign:
        out.insert(rng.randrange(len(out) + 1), Probe([{"role": "user", "content": text}], "benign", None))
    return out


class PromptAttack(Attack):
    """Sends the probes, judges the answers, reports `rate` and false_refusal_rate."""

    Params: ClassVar[type[AttackParams]] = PromptAttackParams
    params: PromptAttackParams
    rate: ClassVar[str]  # the metric this attack measures, e.g. injection_success_rate

    def probes(self, ctx: AttackContext) -> list[Probe]:
        raise NotImplementedError

    def prepare(self, ctx: AttackContext) -> None:
        chat_adapter(ctx, self.type)  # a wrong protocol fails before the run starts

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        probes = mixed(self.probes(ctx), benign_prompts(p.benign, ctx.seed), ctx.seed)
        system = [{"role": "system", "content": p.system_prompt.replace("{canary}", p.canary)}] if p.system_prompt else []
        extra = {} if p.temperature is None else {"temperature": p.temperature}
        tally = Tally()
        stopped = "done"
        with ChatClient(ctx, p, deadline, self.type, max_tokens=p.max_tokens, stream=p.stream, extra=extra) as client:
            for probe in probes:
                try:
                    reply = client.ask(system + probe.messages)
                except BudgetExhausted as exc:
                    stopped = str(exc)
                    break
                tally.add(probe, reply)
        if not tally.judged:
            ctx.journal("attack.error", attack=self.name, kind="nothing_judged",
                        error=f"no attack prompt got an answer to judge ({stopped}; errors {dict(client.errors)})")
        details = {"stopped": stopped, "errors": dict(client.errors),
                   "successes_by_recipe": dict(tally.by_recipe or {}), "examples": (tally.examples or [])[:5]}
        return AttackResult(metrics={**tally.metrics(self.rate), **client.figures()}, details=details)
