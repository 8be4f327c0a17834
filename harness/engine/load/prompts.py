"""The prompts a generative load sends: a JSONL file, or generated from a seed.

A line of `load.prompts` is `{"messages": [{"role": ..., "content": ...}, ...]}` or
`{"prompt": "..."}`, optionally with `"expected"` (the answer counted as correct) and
`"refusal": true|false` (whether the prompt should be refused). A bad line is a user
error naming the file, its line and the fix, before anything starts.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from harness.core.fault import UserError

ROLES = ("system", "user", "assistant", "tool", "developer")


class _Message(BaseModel):
    model_config = ConfigDict(extra="allow")  # name, tool_calls, ... pass through to the server

    role: str
    content: str | list[Any] | None


class _PromptLine(BaseModel):
    model_config = ConfigDict(extra="forbid")

    messages: list[_Message] | None = Field(None, min_length=1)
    prompt: str | None = None
    expected: str | None = None
    refusal: bool | None = None

    @model_validator(mode="after")
    def _one_of(self) -> _PromptLine:
        if (self.messages is None) == (self.prompt is None):
            raise ValueError('give exactly one of "messages" (a list of {"role", "content"}) or "prompt" (text)')
        for m in self.messages or []:
            if m.role not in ROLES:
                raise ValueError(f"unknown role {m.role!r}: use one of {', '.join(ROLES)}")
        return self


@dataclass(frozen=True)
class Prompt:
    """One prompt: a conversation (chat) or a text (completions); either adapter takes either."""

    messages: list[dict[str, Any]] | None = None
    text: str | None = None
    expected: str | None = None
    refusal: bool | None = None

    @property
    def content(self) -> list[dict[str, Any]] | str:
        return self.messages if self.messages is not None else self.text or ""


def load_prompts(path: str | Path) -> list[Prompt]:
    """Every prompt of a JSONL file (blank lines skipped); UserError names file:line and the fix."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise UserError(f"{path}: load.prompts file not found: give the path of a JSONL file of prompts") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read load.prompts ({exc}): it must be a UTF-8 JSONL file") from None
    prompts = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError as exc:
            raise UserError(f"{path}:{number}:{exc.colno if hasattr(exc, 'colno') else 1}: not JSON ({exc}): "
                            'write one object a line, e.g. {"prompt": "Hello"}') from None
        try:
            parsed = _PromptLine.model_validate(data)
        except ValidationError as exc:
            problem = exc.errors()[0]
            where = ".".join(str(p) for p in problem["loc"]) or "line"
            raise UserError(f"{path}:{number}:1: field {where}: {problem['msg']}; a line is "
                            '{"messages": [{"role": "user", "content": "..."}]} or {"prompt": "..."}, '
                            'optionally with "expected" (text) and "refusal" (true/false)') from None
        messages = [m.model_dump(exclude_none=False) for m in parsed.messages] if parsed.messages else None
        prompts.append(Prompt(messages, parsed.prompt, parsed.expected, parsed.refusal))
    if not prompts:
        raise UserError(f"{path}: load.prompts has no prompts: write one JSON object a line")
    return prompts


_TOPICS = ("the tide", "a lighthouse", "winter markets", "paper boats", "old maps", "river stones",
           "a night train", "bread ovens", "copper kettles", "migrating geese", "glass bells", "salt roads")
_ASKS = ("Write two sentences about {a}.", "Explain how {a} relates to {b}.", "Tell a short story about {a} and {b}.",
         "List three facts about {a}.", "Describe {a} to a child.", "Compare {a} with {b} in one paragraph.")


def generated_prompts(seed: int, count: int = 64) -> list[Prompt]:
    """`count` varied chat prompts, the same for the same seed (when no file is given)."""
    rng = random.Random(seed)
    prompts = []
    for _ in range(count):
        a, b = rng.sample(_TOPICS, 2)
        prompts.append(Prompt(text=rng.choice(_ASKS).format(a=a, b=b)))
    return prompts
