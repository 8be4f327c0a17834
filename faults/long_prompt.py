"""`llm.long_prompt`: context-filling prompts mixed into a generative load, to model KV-cache pressure.

While active, a `share` of the load's requests carry a prompt of about `tokens` tokens
(or `fill` of a `context_tokens` window) instead of their own: long prefills take the
serving engine's KV cache and batch slots, so the ordinary requests beside them show
what that pressure does to their time to first token.

It uses the data faults' control channel (harness.core.payload.payload_channel) with a
file of its own: `inject()` adds the spec, `revert()` removes it, and the Locust child
(harness.engine.load.long_prompts; files in harness.core.payload.prompt_faults) reads it, sends the long prompts and writes how many
it sent, which `metrics()` reads back: a fault that sent none fails loudly.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, model_validator

from harness.core.fault import Fault, FaultFailed, FaultParams, UserError
from harness.core.payload.data_fault import MIN_EXPECTED_CHANGES, fault_seed
from harness.core.payload.payload_channel import put_fault, remove_fault
from harness.core.payload.prompt_faults import control_file, read_sent, sent_file


class LongPromptParams(FaultParams):
    share: float = Field(0.5, gt=0, le=1, description="share of the load's requests that carry a long prompt")
    tokens: int | None = Field(None, ge=1, le=2_000_000, description="prompt length: about this many tokens (filler words)")
    fill: float | None = Field(None, gt=0, le=4, description="or: prompt length as a share of `context_tokens`")
    context_tokens: int | None = Field(None, ge=1, le=10_000_000, description="the model's context size (with `fill`)")

    @model_validator(mode="after")
    def _one_size(self) -> LongPromptParams:
        if (self.tokens is None) == (self.fill is None):
            raise ValueError("give the prompt length as `tokens` or as `fill` (a share of context_tokens), not both")
        if self.fill is not None and self.context_tokens is None:
            raise ValueError("`fill` is a share of the model's context: set context_tokens too (e.g. 2048)")
        return self

    @property
    def prompt_tokens(self) -> int:
        if self.tokens is not None:
            return self.tokens
        assert self.fill is not None and self.context_tokens is not None  # the validator saw to it
        return max(1, round(self.fill * self.context_tokens))


class LongPromptFault(Fault):
    type = "llm.long_prompt"
    Params = LongPromptParams
    params: LongPromptParams
    metric_names: ClassVar[tuple[str, ...]] = ("long_prompt_share",)

    def _control(self) -> Path:
        if self.ctx.load_dir is None:
            raise UserError(f"{self.type} ({self.name}) acts on the prompts aftershock's own load sends; "
                            "this run has no load folder")
        return control_file(self.ctx.load_dir)

    def undo_record(self) -> dict[str, Any]:
        load_dir = self.ctx.load_dir
        return {"control": str(control_file(load_dir)) if load_dir else None, "fault": self.name}

    def inject(self) -> None:
        control = self._control()
        if not sent_file(control.parent).exists():  # the generative load writes it as it starts
            raise FaultFailed(f"{self.type} ({self.name}) found no generative load to act on: its prompts are "
                              "sent only by a load whose target protocol is openai-chat or openai-completions")
        spec = {"type": self.type, "params": {**self.params.model_dump(mode="json"), "prompt_tokens": self.params.prompt_tokens},
                "seed": fault_seed(self.ctx.seed, self.name), "started": time.time()}
        put_fault(control, self.name, spec)

    def revert(self) -> None:
        if self.ctx.load_dir is not None:
            remove_fault(control_file(self.ctx.load_dir), self.name)

    def metrics(self) -> dict[str, float]:
        """The share of requests sent while active that carried a long prompt; raises if it sent none."""
        if self.ctx.load_dir is None:
            return {}
        sent = read_sent(self.ctx.load_dir).get(self.name)
        if not sent or not sent.get("requests"):
            return {}  # no request went out while it was active: not measured
        # a working fault picks `share` of the requests: none of 10 expected has odds < e^-10
        if not sent.get("long") and sent["requests"] * self.params.share >= MIN_EXPECTED_CHANGES:
            raise FaultFailed(f"{self.type} ({self.name}) was active for {sent['requests']} requests and sent no "
                              "long prompt: the load is not a generative one (protocol openai-*)")
        return {"long_prompt_share": sent["long"] / sent["requests"]}

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        if not record.get("control"):
            return f"{cls.type} {record.get('fault')}: nothing to undo"
        removed = remove_fault(Path(record["control"]), str(record["fault"]))
        return f"{cls.type} {record['fault']}: {'removed from' if removed else 'already gone from'} {record['control']}"
