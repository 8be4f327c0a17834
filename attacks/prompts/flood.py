"""`prompt.flood`: context-filling prompts at a rate, to see a generative server shed
load (429) rather than queue until every caller times out.

Each prompt is seeded random words, `context_tokens` x `chars_per_token` characters long
(4 characters a token is the usual figure for English under BPE tokenizers; a
character-level model such as the demo's has 1): set `context_tokens` to the target's
context length less its system prompt, or a little under, to fill it. It asks for
`max_tokens` (1 by default) so the load is prefill — the KV-cache pressure a long
context puts on a server. A few different prompts are cycled so a prefix cache cannot
answer them for free. Figures are `abuse.flood`'s (attacks/flood.py).
"""

from __future__ import annotations

import asyncio
import random
from typing import ClassVar

from pydantic import Field

from attacks.endpoint import alive
from attacks.flood import FloodParams, flood
from attacks.prompts.chat import chat_adapter
from harness.core.attack import Attack, AttackContext, AttackParams, AttackResult

WORDS = ("river", "stone", "market", "signal", "garden", "winter", "copper", "ladder", "harbor", "lantern",
         "meadow", "engine", "thunder", "paper", "violet", "canyon", "orbit", "pepper", "silver", "window")
DISTINCT_PROMPTS = 8


def long_prompt(chars: int, rng: random.Random) -> str:
    """Seeded words, `chars` characters in all (a prompt over the context is usually
    answered 400: counted in flood_other_4xx, by status in details.errors)."""
    text = "Read this and reply OK."
    while len(text) < chars:
        text += " " + rng.choice(WORDS)
    return text[:chars]


class PromptFloodParams(FloodParams):
    rate: float = Field(5.0, gt=0, description="requests per second to send")
    concurrency: int = Field(16, ge=1, le=2000, description="requests in flight at most")
    max_queries: int = Field(200, ge=1, description="requests at most")
    context_tokens: int = Field(2048, ge=1, le=1_000_000, description="tokens each prompt fills")
    chars_per_token: float = Field(
        4.0, gt=0, le=64, description="characters a token (4: English under BPE tokenizers; 1: a character-level model)")
    max_tokens: int = Field(1, ge=1, description="max_tokens of each request")


class PromptFlood(Attack):
    type = "prompt.flood"
    Params: ClassVar[type[AttackParams]] = PromptFloodParams
    params: PromptFloodParams

    def prepare(self, ctx: AttackContext) -> None:
        chat_adapter(ctx, self.type)

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        adapter = chat_adapter(ctx, self.type)
        rng = random.Random(f"flood-{ctx.seed}")
        chars = max(1, round(p.context_tokens * p.chars_per_token))
        bodies = [adapter.request(long_prompt(chars, rng), model=ctx.model, max_tokens=p.max_tokens)
                  for _ in range(DISTINCT_PROMPTS)]
        url = ctx.base_url.rstrip("/") + adapter.infer_path(ctx.model)
        metrics, details = asyncio.run(flood(url, bodies, rate=p.rate, concurrency=p.concurrency, max_queries=p.max_queries,
                                             request_timeout=p.request_timeout, deadline=deadline))
        metrics["alive"] = float(alive(ctx, p.request_timeout))
        return AttackResult(metrics=metrics, details=details)
