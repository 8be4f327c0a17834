"""One generated answer as the load measured it, and the clock that reads it off a stream.

`StreamClock` is fed each line of an SSE body with the moment it arrived: the first
content delta gives the time to first token (TTFT), each later one an inter-token gap
(ITL). A role-only or usage-only chunk is no token. Output tokens are the server's
`usage.completion_tokens` when it sends them, else the content deltas counted. No
Locust import here: the Locust user feeds it, tests feed it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from harness.core.protocols.openai import MalformedChunk, SSEReader, StreamEvent
from harness.core.protocols.openai import StreamAborted as ServerStreamError
from harness.engine.load.failures import StreamAborted, StreamCut, StreamMalformed


@dataclass(slots=True)
class GenerationSample:
    """What one successful generative request measured (times in seconds)."""

    duration_s: float  # end to end: request sent to the last event (or the whole body)
    ttft_s: float | None = None  # None: not streamed, so no first token to time
    itl_s: list[float] = field(default_factory=list)  # gap before each later token
    output_tokens: int | None = None  # None: not streamed and no usage in the answer
    finish_reason: str | None = None
    text: str | None = None  # the answer, kept only when a prompt has an expected answer

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens over the end-to-end time: the rate a user of this answer saw."""
        if self.output_tokens is None or self.duration_s <= 0:
            return None
        return self.output_tokens / self.duration_s


class StreamClock:
    """Times one streamed answer line by line (`line(raw, now)`), then `sample(now)`."""

    __slots__ = (
        "_deltas",
        "_finish",
        "_first",
        "_gaps",
        "_last_token",
        "_reader",
        "_text",
        "_usage",
        "done",
        "last_event",
        "started",
    )

    def __init__(self, reader: SSEReader, started: float, keep_text: bool = False) -> None:
        self._reader = reader
        self.started = started  # perf_counter() when the request was sent
        self.last_event = started  # when the last event arrived (for the stall timeout)
        self._first: float | None = None
        self._last_token = 0.0
        self._gaps: list[float] = []
        self._deltas = 0
        self._usage: int | None = None
        self._finish: str | None = None
        self.done = False  # `data: [DONE]` came
        self._text: list[str] | None = [] if keep_text else None

    def line(self, raw: bytes, now: float) -> None:
        """One line of the body (with its line end), arrived at `now` (perf_counter)."""
        try:
            event = self._reader.feed_line(raw)
        except ServerStreamError as exc:
            raise StreamAborted(str(exc)) from None
        except MalformedChunk as exc:
            raise StreamMalformed(str(exc)) from None
        if event is not None:
            self._take(event, now)

    def _take(self, event: StreamEvent, now: float) -> None:
        self.last_event = now
        if event.text:
            if self._first is None:
                self._first = now
            else:
                self._gaps.append(now - self._last_token)
            self._last_token = now
            self._deltas += 1
            if self._text is not None:
                self._text.append(event.text)
        if event.finish_reason is not None:
            self._finish = event.finish_reason
        if event.completion_tokens is not None:
            self._usage = event.completion_tokens
        if event.done:
            self.done = True

    @property
    def tokens(self) -> int:
        """Content deltas so far."""
        return self._deltas

    @property
    def complete(self) -> bool:
        """The server said the answer is whole: `[DONE]` or a finish_reason."""
        return self.done or self._finish is not None

    def so_far(self) -> GenerationSample:
        """The tokens timed until now, of an answer that failed: where they arrived, no more."""
        return GenerationSample(
            duration_s=self.last_event - self.started,
            ttft_s=None if self._first is None else self._first - self.started,
            itl_s=self._gaps,
            output_tokens=self._deltas,
        )

    def sample(self, ended: float) -> GenerationSample:
        """The answer's figures once the body ended at `ended`; StreamCut if it was not whole."""
        try:
            for event in self._reader.close():  # an event the body left without its blank line
                self._take(event, ended)
        except (ServerStreamError, MalformedChunk):
            pass  # a torn last event: whether the answer was whole is decided below
        if not self.complete:
            raise StreamCut(f"the stream ended after {self._deltas} tokens without [DONE] or a finish_reason")
        end = self.last_event
        return GenerationSample(
            duration_s=end - self.started,
            ttft_s=None if self._first is None else self._first - self.started,
            itl_s=self._gaps,
            output_tokens=self._usage if self._usage is not None else self._deltas,
            finish_reason=self._finish,
            text="".join(self._text) if self._text is not None else None,
        )
