"""openai-chat / openai-completions: request bodies, answers, the incremental SSE reader."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.core.protocols import DecodeError, adapter_types, make_adapter
from harness.core.protocols.openai import (
    Completion,
    MalformedChunk,
    SSEReader,
    StreamAborted,
    StreamEvent,
    chat_body,
    completion_body,
    read_completion,
    read_models,
    read_stream,
)


def _chat_chunk(content: str | None = None, finish: str | None = None, role: bool = False) -> dict:
    delta: dict = {"role": "assistant"} if role else {}
    if content is not None:
        delta["content"] = content
    return {"id": "c1", "object": "chat.completion.chunk", "model": "m",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}


def _sse(*chunks: dict | str) -> bytes:
    return b"".join(
        f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n".encode() for c in chunks
    )


STREAM = _sse(
    _chat_chunk("", role=True),
    _chat_chunk("Hel"),
    _chat_chunk("lo"),
    _chat_chunk(finish="stop"),
    {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
    "[DONE]",
)


def test_registered_with_paths() -> None:
    assert {"openai-chat", "openai-completions"} <= set(adapter_types())
    chat, comp = make_adapter("openai-chat"), make_adapter("openai-completions")
    assert chat.infer_path("any") == "/v1/chat/completions"
    assert comp.infer_path("any") == "/v1/completions"
    assert chat.ready_path("m") == chat.live_path == chat.metadata_path("m") == "/v1/models"
    assert make_adapter("openai-chat", live="/health").live_path == "/health"


def test_request_bodies() -> None:
    assert chat_body("hi", "m", max_tokens=8, stream=True) == {
        "messages": [{"role": "user", "content": "hi"}],
        "model": "m",
        "max_tokens": 8,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert chat_body([{"role": "system", "content": "s"}], stream=False) == {
        "messages": [{"role": "system", "content": "s"}]
    }
    assert completion_body("once", "m", stream=True, include_usage=False, temperature=0) == {
        "prompt": "once", "model": "m", "stream": True, "temperature": 0
    }
    chat = make_adapter("openai-chat", model="tiny")
    assert chat.request("q", model="scenario-model")["model"] == "tiny"  # the option wins
    assert make_adapter("openai-chat").request("q", model="scenario-model")["model"] == "scenario-model"
    comp = make_adapter("openai-completions")
    assert comp.request([{"role": "user", "content": "q"}])["prompt"] == "user: q\nassistant:"


def test_encode_batches() -> None:
    chat, comp = make_adapter("openai-chat"), make_adapter("openai-completions")
    assert chat.encode({"prompt": np.array(["hi"])})["messages"] == [{"role": "user", "content": "hi"}]
    with pytest.raises(DecodeError, match="batch_size must be 1"):
        chat.encode({"prompt": np.array(["a", "b"])})
    assert comp.encode({"x": np.array([1.0, 2.0]), "p": np.array(["a", "b"])})["prompt"] == ["a", "b"]
    with pytest.raises(DecodeError, match="text column"):
        comp.encode({"x": np.array([1.0])})


def test_read_completion_chat_and_completions() -> None:
    body = {"model": "m", "choices": [{"index": 0, "message": {"role": "assistant", "content": "4"},
                                       "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 1}}
    assert read_completion(body) == Completion("4", "stop", 1, 9, "m")
    comp = {"choices": [{"text": "a", "finish_reason": "length"}, {"text": "b", "finish_reason": "stop"}]}
    assert read_completion(comp, "completions") == Completion("a", "length")
    assert make_adapter("openai-completions").decode(comp).predictions == ["a", "b"]
    assert make_adapter("openai-chat", model_version="system_fingerprint").decode(
        {**body, "system_fingerprint": "fp1"}).model_version == "fp1"
    with pytest.raises(DecodeError, match="no 'choices'"):
        read_completion({"object": "list"})
    with pytest.raises(DecodeError, match="error: overloaded"):
        read_completion({"error": {"message": "overloaded"}})
    with pytest.raises(DecodeError, match="no text"):
        read_completion(comp, "chat")


def test_read_models() -> None:
    assert read_models({"object": "list", "data": [{"id": "a"}, {"id": "b"}]}) == ["a", "b"]
    with pytest.raises(DecodeError):
        read_models([])


def test_stream_read_whole() -> None:
    assert read_stream(STREAM) == Completion("Hello", "stop", 2, 5)


@pytest.mark.parametrize("step", [1, 2, 3, 7, 64])
def test_stream_split_anywhere_gives_the_same_events(step: int) -> None:
    reader = SSEReader()
    events: list[StreamEvent] = []
    crlf = STREAM.replace(b"\n", b"\r\n")  # CRLF line ends, and a comment line, are SSE too
    body = b": keep-alive\r\n\r\n" + crlf
    for i in range(0, len(body), step):
        events += reader.feed(body[i : i + step])
    events += reader.close()
    assert [e.text for e in events] == ["", "Hel", "lo", "", "", ""]
    assert events[3].finish_reason == "stop" and events[4].completion_tokens == 2 and events[5].done


def test_stream_event_ends_only_at_blank_line() -> None:
    reader = SSEReader()
    assert reader.feed(b'data: {"choices": [{"delta": {"content": "a"}}]}\n') == []
    assert reader.feed(b"\n") == [StreamEvent(text="a")]
    assert reader.feed(b'data: {"choices": [{"text": "b"}]}') == []
    assert SSEReader("completions").feed(b'data: {"choices": [{"text": "b"}]}\n\n') == [StreamEvent(text="b")]
    assert reader.close() == [StreamEvent(text="")]  # chat reads delta.content, not text


def test_stream_bad_events() -> None:
    with pytest.raises(MalformedChunk, match="not JSON"):
        SSEReader().feed(b"data: {\"choices\": [\n\n")
    with pytest.raises(MalformedChunk, match="no 'choices'"):
        SSEReader().feed(b'data: {"id": 1}\n\n')
    with pytest.raises(MalformedChunk, match="UTF-8"):
        SSEReader().feed(b"data: \xff\xfe\n\n")
    with pytest.raises(StreamAborted, match="out of memory"):
        SSEReader().feed(b'data: {"error": {"message": "out of memory"}}\n\n')
