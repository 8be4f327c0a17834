"""The gateway's client of the model backend: a token stream, with deadlines when asked.

Failures are classified once, here: ``unreachable`` (no connection), ``stalled`` (no token
within the deadline), ``broken`` (an error status, or a stream that ends without its
final event).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import httpx

from harness.demo.llm.generation import Prompt, Sampling


class UpstreamFailure(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"backend {kind}: {detail}")
        self.kind = kind


async def next_line(lines: AsyncIterator[str], timeout: float) -> str:
    try:
        return await asyncio.wait_for(anext(lines), timeout or None)
    except TimeoutError:
        raise UpstreamFailure("stalled", f"no token within {timeout:g}s") from None
    except StopAsyncIteration:
        raise UpstreamFailure("broken", "the stream ended before its final event") from None
    except httpx.HTTPError as exc:
        raise UpstreamFailure("broken", f"{type(exc).__name__}: {exc}") from None


async def stream_tokens(client: httpx.AsyncClient, url: str, prompt: Prompt, sampling: Sampling,
                        first_timeout: float, token_timeout: float) -> AsyncIterator[str]:
    """Tokens from the backend; 0 for a timeout waits for ever (the fragile gateway)."""
    body = {"system": prompt.system, "user": prompt.user, "answer_so_far": prompt.answer_so_far,
            "max_tokens": sampling.max_tokens, "temperature": sampling.temperature, "seed": sampling.seed}
    try:
        async with client.stream("POST", f"{url}/generate", json=body) as response:
            if response.status_code != 200:
                raise UpstreamFailure("broken", f"status {response.status_code}")
            lines = aiter(response.aiter_lines())
            timeout = first_timeout
            while True:
                line = await next_line(lines, timeout)
                if not line.startswith("data:"):
                    continue
                try:
                    event = json.loads(line[5:])
                except ValueError:
                    raise UpstreamFailure("broken", f"malformed event {line[:60]!r}") from None
                if event.get("done"):
                    return
                yield str(event["token"])
                timeout = token_timeout
    except httpx.TransportError as exc:
        raise UpstreamFailure("unreachable", f"{type(exc).__name__}: {exc}") from None
