"""ChatUser: the Locust user for generative targets (protocols openai-chat, openai-completions).

Imported only in the Locust child. Each task sends one prompt and, for a streamed
answer, reads the SSE body line by line as it lands, timing every event (harness.engine.
load.generation): the request's latency is end to end (sent to last event), and the
figures ride in the request context to the plugin. A stream that began but did not
finish is a failure of its kind: stream_cut, stream_stalled, stream_malformed,
stream_aborted (harness.engine.load.failures).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from time import perf_counter
from typing import Any

from geventhttpclient.response import HTTPParseError
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from harness.core.protocols import DecodeError
from harness.core.protocols.openai import OpenAIAdapter
from harness.engine.load.config import LoadConfig
from harness.engine.load.failures import DecodeFailure, StreamCut, StreamFailure, StreamStalled
from harness.engine.load.generation import GenerationSample, StreamClock
from harness.engine.load.long_prompts import LongPrompts
from harness.engine.load.pacing import PacedStart, pace
from harness.engine.load.plugin import CONTEXT_DECODED, CONTEXT_GENERATION, CONTEXT_LABELS
from harness.engine.load.prompts import Prompt, generated_prompts, load_prompts

STREAM_HEADERS = {"Content-Type": "application/json", "Accept": "text/event-stream",
                  "Accept-Encoding": "identity"}  # a compressed event stream could not be read as it lands
JSON_HEADERS = {"Content-Type": "application/json", "Accept": "application/json"}
GENERATED_PROMPTS = 64
LONG_PROMPT = Prompt(text="(a long-prompt fault's filler)")  # no expected answer, no refusal label


@dataclass
class PromptBodies:
    """The prompts in turn, each encoded once, shared by all users of this process."""

    prompts: list[Prompt]
    adapter: OpenAIAdapter
    model: str
    stream: bool
    max_tokens: int | None
    long_prompts: LongPrompts | None = None  # llm.long_prompt faults, where the load has a folder
    _bodies: dict[int, bytes] = field(default_factory=dict)
    _turn: itertools.count = field(default_factory=itertools.count)

    def encode(self, content: list[dict[str, Any]] | str) -> bytes:
        request = self.adapter.request(content, self.model, self.max_tokens, self.stream)
        return json.dumps(request, separators=(",", ":")).encode()

    def next(self) -> tuple[bytes, Prompt]:
        i = next(self._turn) % len(self.prompts)
        prompt = self.prompts[i]
        if self.long_prompts is not None and (long := self.long_prompts.body()) is not None:
            return long, LONG_PROMPT
        body = self._bodies.get(i)
        if body is None:
            body = self._bodies[i] = self.encode(prompt.content)
        return body, prompt


class ChatUser(PacedStart, FastHttpUser):
    """POSTs one prompt per task and reads the answer (streamed or whole)."""

    wait_time = constant(0)
    bodies: PromptBodies | None = None
    path: str = "/v1/chat/completions"
    stall_timeout: float = 10.0

    @task
    def generate(self) -> None:
        assert self.bodies is not None
        body, prompt = self.bodies.next()
        stream = self.bodies.stream
        labels = [prompt.expected.strip()] if prompt.expected is not None else None
        context: dict[str, Any] = {CONTEXT_LABELS: labels, CONTEXT_DECODED: None, CONTEXT_GENERATION: None}
        started = perf_counter()
        with self.client.request(
            "POST", self.path, data=body, headers=STREAM_HEADERS if stream else JSON_HEADERS,
            stream=stream, catch_response=True, context=context,
        ) as resp:
            meta = resp.request_meta
            if meta["exception"] is not None:
                return  # HTTP or network failure: the plugin names its kind
            clock = StreamClock(self.bodies.adapter.reader(), started, labels is not None) if stream else None
            try:
                sample = self._read_stream(resp, clock) if clock is not None else self._read_whole(resp, started)
            except StreamFailure as exc:
                meta["response_time"] = (perf_counter() - started) * 1000
                if clock is not None:  # the tokens it did get were progress all the same (stall windows)
                    meta["context"][CONTEXT_GENERATION] = clock.so_far()
                resp.failure(exc)
                return
            except (ValueError, DecodeError) as exc:  # a whole (not streamed) answer that is not one
                meta["response_time"] = (perf_counter() - started) * 1000
                resp.failure(DecodeFailure(str(exc)))
                return
            meta["response_time"] = sample.duration_s * 1000  # end to end, not headers only
            meta["context"][CONTEXT_GENERATION] = sample
            if labels is not None:
                meta["context"][CONTEXT_DECODED] = _as_decoded(sample)

    def _read_stream(self, resp: Any, clock: StreamClock) -> GenerationSample:
        # geventhttpclient's own response (CompatResponse keeps it as `_response`): its
        # readline returns each line as soon as it is in, where read(n) waits for n bytes
        body = resp._response
        # The stall timeout is the socket's read timeout while the body streams: no data for
        # stall_timeout s is a stall. A gevent timer armed per line cost more than parsing
        # the line (benchmarks/README-stream.md); the socket's own timeout costs nothing.
        sock = body._sock  # None when the whole answer came with the headers
        if sock is not None:
            sock.settimeout(self.stall_timeout)
        try:
            while line := body.readline(b"\n"):
                clock.line(line, perf_counter())
        except StreamFailure:
            body.release()  # the connection is mid-answer: not reusable
            raise
        except TimeoutError:
            body.release()
            if not clock.complete:  # after [DONE] or a finish_reason the answer is whole all the same
                raise StreamStalled(f"no data for {self.stall_timeout:g}s after {clock.tokens} tokens") from None
        except (OSError, HTTPParseError) as exc:  # reset, or the body torn off mid-chunk
            body.release()
            if not clock.complete:
                raise StreamCut(f"the connection ended mid-stream after {clock.tokens} tokens: {exc}") from None
        finally:
            if sock is not None:
                sock.settimeout(self.network_timeout)  # it goes back to the pool for the next request
        return clock.sample(perf_counter())

    def _read_whole(self, resp: Any, started: float) -> GenerationSample:
        assert self.bodies is not None
        completion = self.bodies.adapter.read(json.loads(resp.content))
        ended = perf_counter()
        return GenerationSample(duration_s=ended - started, output_tokens=completion.completion_tokens,
                                finish_reason=completion.finish_reason, text=completion.text)


def _as_decoded(sample: GenerationSample) -> Any:
    from harness.core.protocols import Decoded

    return Decoded(predictions=[(sample.text or "").strip()])


def prepare_chat_user(config: LoadConfig, adapter: OpenAIAdapter, load_dir: Path | None = None) -> None:
    """Bind the run's config to ChatUser before users spawn (prompts, timeouts, pacing)."""
    ChatUser.network_timeout = config.request_timeout
    ChatUser.connection_timeout = config.request_timeout
    ChatUser.stall_timeout = config.stall_after
    pace(ChatUser, config)
    if ChatUser.bodies is not None:
        return
    prompts = load_prompts(config.prompts) if config.prompts else generated_prompts(config.seed, GENERATED_PROMPTS)
    ChatUser.path = adapter.infer_path(config.model)
    ChatUser.bodies = PromptBodies(prompts, adapter, config.model, config.streams, config.max_tokens)
    if load_dir is not None:
        ChatUser.bodies.long_prompts = LongPrompts(load_dir, ChatUser.bodies.encode)


def flush_prompt_faults() -> None:
    """Write what the long-prompt faults sent so far (called every window tick)."""
    bodies = ChatUser.bodies
    if bodies is not None and bodies.long_prompts is not None:
        bodies.long_prompts.flush()
