"""Sends one conversation to a chat endpoint and reads the answer as text.

Through the `openai-chat` (or `openai-completions`) protocol adapter: its `request`
builds the body, its `read` / `reader` read a plain or streamed (SSE) answer. Budgeted
like the classifier attacks (attacks/endpoint.py): a request past the deadline or the
query budget raises BudgetExhausted before it is sent, 429s are waited out inside the
window, every failure is classified once by kind.

A guardrail that blocks a request instead of answering it (HTTP 403, or an answer
whose `finish_reason` is `content_filter`) declined it: `Reply.blocked`, judged like a
refusal.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import httpx

from attacks.endpoint import BudgetExhausted, CountedClient, status_kind, transport_kind
from harness.core.attack import AttackContext, AttackParams
from harness.core.fault import UserError
from harness.core.protocols import DecodeError
from harness.core.protocols.openai import Messages, OpenAIAdapter


@dataclass(frozen=True)
class Reply:
    """What came back for one conversation: the answer's text, a block, or a failure."""

    text: str | None = None  # None: no answer (blocked or failed)
    blocked: bool = False  # the target declined without answering (403, content_filter)
    error: str | None = None  # failure kind: refused, reset, timeout, http_500, decode, ...


def chat_adapter(ctx: AttackContext, attack: str) -> OpenAIAdapter:
    if not isinstance(ctx.adapter, OpenAIAdapter):
        raise UserError(f"{attack} talks to generative models: set the target's protocol to "
                        f"openai-chat or openai-completions (it is {ctx.adapter.name!r})")
    return ctx.adapter


class ChatClient(CountedClient):
    """Counted, rate-limited, deadline-bound chat requests (`ask`)."""

    def __init__(self, ctx: AttackContext, params: AttackParams, deadline: float, attack: str,
                 *, max_tokens: int | None, stream: bool, extra: dict[str, Any] | None = None) -> None:
        super().__init__(ctx.base_url, deadline=deadline, rate_limit=params.rate_limit,
                         request_timeout=params.request_timeout)
        self.adapter = chat_adapter(ctx, attack)
        self.model = ctx.model
        self.max_queries = params.max_queries
        self.max_tokens = max_tokens
        self.stream = stream
        self.extra = extra or {}
        self.url = self.adapter.infer_path(ctx.model)

    def ask(self, messages: Messages) -> Reply:
        """One conversation's answer. Raises BudgetExhausted when none may be sent."""
        body = self.adapter.request(messages, model=self.model, max_tokens=self.max_tokens,
                                    stream=self.stream, **self.extra)
        while True:
            if self.requests >= self.max_queries:
                raise BudgetExhausted(f"query budget of {self.max_queries} used up")
            if time.monotonic() >= self.deadline:
                raise BudgetExhausted("the attack's time window is over")
            self.limiter.wait(self.deadline)
            self.requests += 1
            try:
                status, text, finish, throttled = self._send(body)
            except httpx.HTTPError as exc:
                return self._failed(transport_kind(exc))
            except DecodeError:
                return self._failed("decode")
            if throttled is not None:
                self.wait_out_throttling(throttled)
                continue
            break
        if status == 403:
            self.errors[status_kind(status)] += 1
            return Reply(blocked=True)
        if status >= 500:
            self.server_errors += 1
        if status >= 400:
            return self._failed(status_kind(status))
        if finish == "content_filter":
            return Reply(text=text, blocked=True)
        return Reply(text=text)

    def _send(self, body: dict[str, Any]) -> tuple[int, str, str | None, httpx.Response | None]:
        """(status, text, finish_reason, the response when it was a 429)."""
        if not self.stream:
            response = self.http.post(self.url, json=body)
            if response.status_code >= 300:
                return response.status_code, "", None, response if response.status_code == 429 else None
            try:
                completion = self.adapter.read(response.json())
            except ValueError as exc:  # not JSON: DecodeError is a ValueError too
                raise DecodeError(str(exc)) from exc
            return response.status_code, completion.text, completion.finish_reason, None
        with self.http.stream("POST", self.url, json=body) as response:
            if response.status_code >= 300:
                response.read()
                return response.status_code, "", None, response if response.status_code == 429 else None
            reader = self.adapter.reader()
            parts: list[str] = []
            finish = None
            for data in response.iter_bytes():
                for event in reader.feed(data):
                    parts.append(event.text)
                    finish = event.finish_reason or finish
            for event in reader.close():
                parts.append(event.text)
                finish = event.finish_reason or finish
            return response.status_code, "".join(parts), finish, None

    def _failed(self, kind: str) -> Reply:
        self.errors[kind] += 1
        return Reply(error=kind)
