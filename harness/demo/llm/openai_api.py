"""The OpenAI wire format: reading chat and completion requests, writing answers and chunks."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

from harness.demo.llm.config import MODEL_ID


class BadRequest(Exception):
    def __init__(self, message: str, code: str | None = None, param: str | None = None, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.param, self.status = code, param, status

    def body(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": "invalid_request_error", "param": self.param,
                          "code": self.code}}


@dataclass(frozen=True)
class ApiRequest:
    chat: bool
    system: str  # the client's own system messages (the gateway puts its prompt first)
    user: str
    max_tokens: int | None
    temperature: float
    seed: int | None
    stream: bool
    include_usage: bool


def _text(content: Any, where: str) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
        parts = [p.get("text") for p in content if isinstance(p, dict) and p.get("type") == "text"]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)
    raise BadRequest(f"{where} must be a string or a list of text parts", param=where)


def _number(body: dict[str, Any], name: str, kind: type, default: Any) -> Any:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise BadRequest(f"{name} must be {'an integer' if kind is int else 'a number'}", param=name)
    return kind(value)


def parse(raw: bytes, chat: bool) -> ApiRequest:
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    system, user = [], []
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest("messages must be a non-empty list", param="messages")
        for i, m in enumerate(messages):
            if not isinstance(m, dict) or m.get("role") not in ("system", "developer", "user", "assistant", "tool"):
                raise BadRequest(f"messages[{i}] needs a role: system, user or assistant", param=f"messages[{i}]")
            text = _text(m.get("content", ""), f"messages[{i}].content")
            (system if m["role"] in ("system", "developer") else user).append(text)
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1:
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise BadRequest("prompt must be a string", param="prompt")
        user.append(prompt)
    max_tokens = _number(body, "max_completion_tokens", int, None) or _number(body, "max_tokens", int, None)
    if max_tokens is not None and max_tokens < 1:
        raise BadRequest("max_tokens must be at least 1", param="max_tokens")
    temperature = _number(body, "temperature", float, 0.0)
    if not 0 <= temperature <= 2:
        raise BadRequest("temperature must be between 0 and 2", param="temperature")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise BadRequest("stream_options must be an object", param="stream_options")
    return ApiRequest(chat=chat, system="\n".join(system), user="\n".join(user), max_tokens=max_tokens,
                      temperature=temperature, seed=_number(body, "seed", int, None), stream=bool(body.get("stream")),
                      include_usage=bool(options.get("include_usage")))


class Answer:
    """The ids and shapes of one answer, chunk by chunk or whole."""

    def __init__(self, chat: bool) -> None:
        self.chat = chat
        self.id = f"{'chatcmpl' if chat else 'cmpl'}-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.first = True

    def _base(self, obj: str) -> dict[str, Any]:
        return {"id": self.id, "object": obj, "created": self.created, "model": MODEL_ID}

    def chunk(self, text: str | None, finish_reason: str | None = None) -> bytes:
        if self.chat:
            delta: dict[str, Any] = {} if text is None else {"content": text}
            if self.first and text is not None:
                delta["role"] = "assistant"
                self.first = False
            choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
            body = {**self._base("chat.completion.chunk"), "choices": [choice]}
        else:
            choice = {"index": 0, "text": text or "", "finish_reason": finish_reason}
            body = {**self._base("text_completion"), "choices": [choice]}
        return sse(body)

    def usage_chunk(self, usage: dict[str, int]) -> bytes:
        obj = "chat.completion.chunk" if self.chat else "text_completion"
        return sse({**self._base(obj), "choices": [], "usage": usage})

    def whole(self, text: str, finish_reason: str, usage: dict[str, int]) -> dict[str, Any]:
        if self.chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}
            return {**self._base("chat.completion"), "choices": [choice], "usage": usage}
        choice = {"index": 0, "text": text, "finish_reason": finish_reason}
        return {**self._base("text_completion"), "choices": [choice], "usage": usage}


def sse(body: dict[str, Any]) -> bytes:
    return b"data: " + json.dumps(body, separators=(",", ":")).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}
