"""Child side of `llm.long_prompt` (faults/long_prompt.py): context-filling prompts mixed in.

`LongPrompts.body()` is asked once per request: while a long-prompt fault is active (its
spec in the control file, re-read only when the file changes), it returns, for a seeded
`share` of requests, a prompt of about `prompt_tokens` filler words (one token each for
the usual tokenizers) with the question at the end; else None (send the normal prompt).
`flush()` writes how many requests went out under each fault and how many were long.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.core.payload.payload_channel import ControlReader
from harness.core.payload.prompt_faults import control_file, write_sent

FILLER = ("river", "stone", "lamp", "window", "garden", "copper", "morning", "paper", "signal", "harbour",
          "winter", "candle", "market", "ladder", "violet", "orchard")
QUESTION = "\n\nThat was a long document. In one sentence, what is it about?"

Encode = Callable[[str], bytes]  # a prompt text -> the request body the load sends


def filler_text(words: int, seed: int) -> str:
    rng = random.Random(seed)
    return " ".join(rng.choices(FILLER, k=words)) + QUESTION


class LongPrompts:
    def __init__(self, load_dir: str | Path, encode: Encode) -> None:
        self.load_dir = Path(load_dir)
        self._reader = ControlReader(control_file(load_dir))
        self._encode = encode
        self._bodies: dict[str, bytes] = {}  # fault name -> its long request body, built once
        self._rngs: dict[str, random.Random] = {}
        self._sent: dict[str, dict[str, int]] = {}
        self._dirty = False
        write_sent(self.load_dir, {})  # says a generative load is here to act on (LongPromptFault.inject)

    def body(self) -> bytes | None:
        """A long prompt's body for this request, or None."""
        self._reader.poll()
        if not self._reader.faults:
            return None
        chosen = None
        for name, spec in self._reader.faults.items():
            counts = self._sent.setdefault(name, {"requests": 0, "long": 0})
            counts["requests"] += 1
            self._dirty = True
            rng = self._rngs.setdefault(name, random.Random(spec.get("seed", 0)))
            if chosen is None and rng.random() < spec["params"]["share"]:
                counts["long"] += 1
                chosen = self._long_body(name, spec)
        return chosen

    def _long_body(self, name: str, spec: dict[str, Any]) -> bytes:
        body = self._bodies.get(name)
        if body is None:
            body = self._bodies[name] = self._encode(filler_text(int(spec["params"]["prompt_tokens"]), spec.get("seed", 0)))
        return body

    def flush(self) -> None:
        """Write the counts so far (the fault reads them when the load ends)."""
        if not self._dirty:
            return
        self._dirty = False
        write_sent(self.load_dir, self._sent)
