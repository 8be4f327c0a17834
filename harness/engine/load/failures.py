"""Name the kind of a failed request (http_503, timeout, connection, decode, ...).

Works on what Locust's request event carries (an exception and maybe a response) for
both its HTTP clients, without importing Locust or the clients' libraries.
"""

from __future__ import annotations

from typing import Any


class DecodeFailure(Exception):
    """A 2xx response whose body the protocol adapter could not read."""


def failure_kind(exception: BaseException, response: Any = None) -> str:
    status = getattr(response, "status_code", None) or 0
    if isinstance(status, int) and status >= 400:
        return f"http_{status}"
    if isinstance(exception, DecodeFailure):
        return "decode"
    if isinstance(exception, StreamFailure):
        return exception.kind
    original = getattr(
        exception, "original", None
    )  # geventhttpclient's RetriesExceeded wraps the cause
    if isinstance(original, BaseException):
        exception = original
    names = {cls.__name__ for cls in type(exception).__mro__}
    if isinstance(exception, TimeoutError) or any("Timeout" in n for n in names):
        return "timeout"  # socket/gevent timeouts, requests' ConnectTimeout/ReadTimeout
    if isinstance(exception, ConnectionError) or names & {
        "ConnectionError",
        "HTTPConnectionClosed",
    }:
        return "connection"  # refused, reset, aborted; requests.ConnectionError
    if "CatchResponseError" in names:
        return "rejected"  # a locustfile's response.failure(...)
    if isinstance(exception, OSError):
        return "connection"
    return type(exception).__name__.lower()


class StreamFailure(Exception):
    """A streamed answer that began (2xx, headers read) but did not complete; `kind` names how."""

    kind = "stream"


class StreamCut(StreamFailure):
    """The connection ended before `data: [DONE]` or a finish_reason."""

    kind = "stream_cut"


class StreamStalled(StreamFailure):
    """No data arrived for `load.stall_timeout` while the answer streamed."""

    kind = "stream_stalled"


class StreamMalformed(StreamFailure):
    """An event that is not a completion chunk (not JSON, no choices, not UTF-8)."""

    kind = "stream_malformed"


class StreamAborted(StreamFailure):
    """The server ended the stream with an error event (`data: {"error": ...}`)."""

    kind = "stream_aborted"

