"""OpenAI-compatible text generation: `/v1/chat/completions` and `/v1/completions`.

The API that vLLM, TGI, llama.cpp's server, Ollama, KServe's Hugging Face runtime and
`transformers serve` all speak. The request and response functions here are plain, so
the load, attacks and probes share them: `chat_body` / `completion_body` build a
request, `read_completion` reads a non-streamed answer, `SSEReader` reads a streamed one
incrementally (feed it bytes as they arrive; it hands back the events completed so far),
`read_models` reads `/v1/models`.

A streamed answer is Server-Sent Events: `data: {chunk}` events, each holding a content
delta (`choices[0].delta.content` for chat, `choices[0].text` for completions), a
`finish_reason` on the last choice chunk, `usage` in a final chunk with no choices when
the request set `stream_options.include_usage`, and `data: [DONE]` at the end.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np

from harness.core.protocols.base import Decoded, DecodeError, ProtocolAdapter
from harness.core.protocols.fields import ResponseFieldOptions, ResponseFields

CHAT_PATH = "/v1/chat/completions"
COMPLETIONS_PATH = "/v1/completions"
MODELS_PATH = "/v1/models"

Messages = list[dict[str, Any]]  # [{"role": "user", "content": "..."}]
Endpoint = Literal["chat", "completions"]


class MalformedChunk(DecodeError):
    """A streamed event that is not a completion chunk (not JSON, or no choices)."""


class StreamAborted(DecodeError):
    """The server ended the stream with an error event (`data: {"error": ...}`)."""


@dataclass(frozen=True)
class Completion:
    """A whole answer: what `read_completion` reads, or what a stream added up to."""

    text: str
    finish_reason: str | None = None
    completion_tokens: int | None = None  # usage.completion_tokens; None: the server did not say
    prompt_tokens: int | None = None
    model: str | None = None


@dataclass(frozen=True, slots=True)
class StreamEvent:
    """One SSE event of a streamed answer."""

    text: str = ""  # the content delta ("" for role-only, finish or usage chunks)
    finish_reason: str | None = None
    completion_tokens: int | None = None  # from a chunk's `usage`, where sent
    prompt_tokens: int | None = None
    done: bool = False  # `data: [DONE]`: the server says the stream is complete


def chat_body(
    messages: Messages | str,
    model: str | None = None,
    max_tokens: int | None = None,
    stream: bool = False,
    include_usage: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A `/v1/chat/completions` request; a plain string becomes one user message."""
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    body: dict[str, Any] = {"messages": messages}
    return _common(body, model, max_tokens, stream, include_usage, extra)


def completion_body(
    prompt: str | list[str],
    model: str | None = None,
    max_tokens: int | None = None,
    stream: bool = False,
    include_usage: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """A `/v1/completions` request (a list of prompts is one choice per prompt)."""
    return _common({"prompt": prompt}, model, max_tokens, stream, include_usage, extra)


def _common(
    body: dict[str, Any],
    model: str | None,
    max_tokens: int | None,
    stream: bool,
    include_usage: bool,
    extra: dict[str, Any],
) -> dict[str, Any]:
    if model is not None:
        body["model"] = model
    if max_tokens is not None:
        body["max_tokens"] = max_tokens
    if stream:
        body["stream"] = True
        if include_usage:  # the exact token count, rather than counting content deltas
            body["stream_options"] = {"include_usage": True}
    body.update(extra)
    return body


def messages_text(messages: Messages) -> str:
    """A conversation as one completions prompt (`role: content` lines), for servers
    that only have `/v1/completions`."""
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in messages) + "\nassistant:"


def _choice_text(choice: dict[str, Any], endpoint: Endpoint, streamed: bool) -> str | None:
    if endpoint == "completions":
        text = choice.get("text")
    else:
        message = choice.get("delta" if streamed else "message")
        text = message.get("content") if isinstance(message, dict) else None
    return text if isinstance(text, str) else None


def _usage(body: dict[str, Any]) -> tuple[int | None, int | None]:
    usage = body.get("usage")
    if not isinstance(usage, dict):
        return None, None
    out, prompt = usage.get("completion_tokens"), usage.get("prompt_tokens")
    return (out if isinstance(out, int) else None), (prompt if isinstance(prompt, int) else None)


def _error_message(body: Any) -> str | None:
    if isinstance(body, dict) and body.get("error") is not None:
        error = body["error"]
        return str(error.get("message", error) if isinstance(error, dict) else error)
    return None


def read_completion(body: Any, endpoint: Endpoint = "chat") -> Completion:
    """The first choice of a non-streamed answer; DecodeError if it is not one."""
    error = _error_message(body)
    if error is not None:
        raise DecodeError(f"the server answered an error: {error:.200}")
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise DecodeError("OpenAI response has no 'choices' list")
    choice = choices[0]
    text = _choice_text(choice, endpoint, streamed=False)
    if text is None and not (endpoint == "chat" and isinstance(choice.get("message"), dict)):
        raise DecodeError(f"OpenAI {endpoint} choice has no text")
    completion_tokens, prompt_tokens = _usage(body)
    model = body.get("model")
    return Completion(
        text=text or "",  # a chat message whose content is null (a tool call): no text
        finish_reason=choice.get("finish_reason"),
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
        model=model if isinstance(model, str) else None,
    )


def read_chunk(data: str, endpoint: Endpoint = "chat") -> StreamEvent:
    """One SSE event's data (`{...}` or `[DONE]`); MalformedChunk / StreamAborted if bad."""
    if data.strip() == "[DONE]":
        return StreamEvent(done=True)
    try:
        chunk = json.loads(data)
    except ValueError:
        raise MalformedChunk(f"stream event is not JSON: {data[:80]!r}") from None
    error = _error_message(chunk)
    if error is not None:
        raise StreamAborted(f"the server ended the stream with an error: {error:.200}")
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list):
        raise MalformedChunk(f"stream event has no 'choices' list: {data[:80]!r}")
    completion_tokens, prompt_tokens = _usage(chunk)
    if not choices:  # the usage-only final chunk
        return StreamEvent(completion_tokens=completion_tokens, prompt_tokens=prompt_tokens)
    choice = choices[0]
    if not isinstance(choice, dict):
        raise MalformedChunk(f"stream event's choice is not an object: {data[:80]!r}")
    finish = choice.get("finish_reason")
    return StreamEvent(
        text=_choice_text(choice, endpoint, streamed=True) or "",
        finish_reason=finish if isinstance(finish, str) else None,
        completion_tokens=completion_tokens,
        prompt_tokens=prompt_tokens,
    )


class SSEReader:
    """Reads a `text/event-stream` body as it arrives: `feed(bytes)` returns the events
    completed by those bytes (an event ends at a blank line; `data:` lines are joined,
    comments and other fields skipped). Bytes may split anywhere, even inside a line."""

    def __init__(self, endpoint: Endpoint = "chat") -> None:
        self.endpoint: Endpoint = endpoint
        self._pending = b""
        self._data: list[str] = []

    def feed(self, data: bytes) -> list[StreamEvent]:
        lines = (self._pending + data).split(b"\n")
        self._pending = lines.pop()  # an incomplete last line waits for more bytes
        return [event for line in lines if (event := self.feed_line(line)) is not None]

    def feed_line(self, line: bytes) -> StreamEvent | None:
        """One whole line (its line end optional): the event it completes, if any."""
        line = line.rstrip(b"\r\n")
        if not line:  # blank line: dispatch the event
            if not self._data:
                return None
            data, self._data = "\n".join(self._data), []
            return read_chunk(data, self.endpoint)
        if line.startswith(b"data:"):
            value = line[5:]
            try:
                self._data.append((value[1:] if value.startswith(b" ") else value).decode())
            except UnicodeDecodeError:
                raise MalformedChunk(f"stream line is not UTF-8: {line[:80]!r}") from None
        # other fields (event:, id:, retry:) and comments (":") carry nothing we read
        return None

    def close(self) -> list[StreamEvent]:
        """The body ended: an event still open (no blank line after it) counts too."""
        events = self.feed(b"\n\n") if self._pending or self._data else []
        return events


def read_stream(body: bytes, endpoint: Endpoint = "chat") -> Completion:
    """A whole streamed body added up into one Completion (for callers that do not time it)."""
    reader = SSEReader(endpoint)
    events = reader.feed(body) + reader.close()
    text: list[str] = []
    finish = None
    completion_tokens = prompt_tokens = None
    for event in events:
        text.append(event.text)
        finish = event.finish_reason or finish
        completion_tokens = event.completion_tokens if event.completion_tokens is not None else completion_tokens
        prompt_tokens = event.prompt_tokens if event.prompt_tokens is not None else prompt_tokens
    return Completion("".join(text), finish, completion_tokens, prompt_tokens)


def read_models(body: Any) -> list[str]:
    """The model ids of a `/v1/models` answer (`{"data": [{"id": ...}, ...]}`)."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise DecodeError("/v1/models answer has no 'data' list")
    return [str(m["id"]) for m in data if isinstance(m, dict) and "id" in m]


class OpenAIOptions(ResponseFieldOptions):
    model: str | None = None  # the `model` field of requests; default: the scenario's model
    ready: str = MODELS_PATH  # every OpenAI-compatible server answers it once the model is loaded
    live: str = MODELS_PATH  # e.g. /health on vLLM, TGI, llama.cpp
    include_usage: bool = True  # ask streams for `usage` (stream_options.include_usage)


class OpenAIAdapter(ProtocolAdapter):
    """Shared by the chat and completions adapters: paths, model listing, decoding.

    `encode(batch)` takes the text of the batch's first string column (one request per
    batch: chat takes one conversation, so a chat batch must be one row); the load and
    attacks that know they speak to a generative model call `request` instead."""

    endpoint: ClassVar[Endpoint]
    path: ClassVar[str]
    Options = OpenAIOptions
    options: OpenAIOptions

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._fields = ResponseFields(self.options)

    def infer_path(self, model: str) -> str:
        return self.path

    def ready_path(self, model: str) -> str:
        return self.options.ready

    @property
    def live_path(self) -> str:
        return self.options.live

    def metadata_path(self, model: str) -> str | None:
        return MODELS_PATH

    def request(
        self,
        prompt: Messages | str,
        model: str | None = None,
        max_tokens: int | None = None,
        stream: bool = False,
        **extra: Any,
    ) -> dict[str, Any]:
        """The request body for one prompt (messages or text) on this adapter's endpoint;
        `extra` fields (temperature, seed, ...) go in as they are."""
        model_id = self.options.model or model
        usage = self.options.include_usage
        if self.endpoint == "chat":
            return chat_body(prompt, model_id, max_tokens, stream, usage, **extra)
        text = prompt if isinstance(prompt, str) else messages_text(prompt)
        return completion_body(text, model_id, max_tokens, stream, usage, **extra)

    def reader(self) -> SSEReader:
        """A fresh incremental reader for one streamed answer."""
        return SSEReader(self.endpoint)

    def read(self, response_json: Any) -> Completion:
        return read_completion(response_json, self.endpoint)

    def decode(self, response_json: Any) -> Decoded:
        """Every choice's text as a prediction (a completions batch has one choice a prompt)."""
        completion = self.read(response_json)  # checks the answer's shape
        texts = [_choice_text(c, self.endpoint, streamed=False) or "" for c in response_json["choices"] if isinstance(c, dict)]
        return Decoded(
            predictions=texts or [completion.text],
            fallback=self._fields.fallback(response_json),
            model_version=self._fields.model_version(response_json),
        )

    def encode(self, batch: dict[str, np.ndarray]) -> dict[str, Any]:
        texts = _batch_texts(batch)
        if self.endpoint == "completions":  # one choice per prompt
            return completion_body(texts, self.options.model, include_usage=self.options.include_usage)
        if len(texts) != 1:
            raise DecodeError(f"openai-chat sends one conversation a request: batch_size must be 1, not {len(texts)}")
        return self.request(texts[0], model=self.options.model)


def _batch_texts(batch: dict[str, np.ndarray]) -> list[str]:
    for array in batch.values():
        array = np.asarray(array)
        if array.dtype.kind in "USO":
            return [v.decode() if isinstance(v, bytes) else str(v) for v in array.ravel().tolist()]
    raise DecodeError("an OpenAI request needs a text column (the prompt); the batch has none")


class OpenAIChatAdapter(OpenAIAdapter):
    name = "openai-chat"
    endpoint = "chat"
    path = CHAT_PATH


class OpenAICompletionsAdapter(OpenAIAdapter):
    name = "openai-completions"
    endpoint = "completions"
    path = COMPLETIONS_PATH
