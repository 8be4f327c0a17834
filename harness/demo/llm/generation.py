"""Token-by-token generation as an async iterator, shared by the backend and the fallback.

Each decode step runs in a worker thread (torch releases the GIL), so one slow request
does not hold the event loop; ``token_interval`` is a floor on the time per token, the
pace of a larger model on real hardware, so that TTFT and inter-token latency are
figures worth measuring rather than microseconds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import torch

from harness.demo.llm.model import TinyLM, pick, prefill, step
from harness.demo.llm.tokenizer import EOS, decode_token, encode_dialogue, encode_text


@dataclass(frozen=True)
class Prompt:
    """What the model completes: the system turn, the user turn, and any answer so far."""

    system: str
    user: str
    answer_so_far: str = ""

    def tokens(self) -> list[int]:
        return encode_dialogue(self.system, self.user) + encode_text(self.answer_so_far)


@dataclass(frozen=True)
class Sampling:
    max_tokens: int
    temperature: float = 0.0
    seed: int | None = None



async def generate(model: TinyLM, prompt: Prompt, sampling: Sampling, token_interval: float
                   ) -> AsyncIterator[str]:
    """Yield one string per token until the end-of-answer token or ``max_tokens`` (the
    caller tells them apart by the count: ``max_tokens`` yielded is a "length" finish)."""
    generator = None
    if sampling.seed is not None:
        generator = torch.Generator().manual_seed(sampling.seed)
    tokens = prompt.tokens()
    logits, cache = await asyncio.to_thread(prefill, model, tokens)
    before = tokens[-1]
    for _ in range(sampling.max_tokens):
        started = time.monotonic()
        token = pick(logits, sampling.temperature, generator)
        if token == EOS:
            return
        yield decode_token(token)
        logits, cache = await asyncio.to_thread(step, model, token, before, cache)
        before = token
        await asyncio.sleep(max(0.0, token_interval - (time.monotonic() - started)))
