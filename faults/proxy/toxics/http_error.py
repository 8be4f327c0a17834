"""http_error: answer `status` to a fraction `rate` of HTTP requests, without the upstream
ever seeing them (the request's bytes are dropped, the answer goes back to the client).

Acts on the request direction (stream upstream) of an HTTP/1.x upstream; the client's
connection stays usable because the upstream's protocol state is untouched.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, ClassVar

from faults.proxy.http_framing import RequestFramer
from faults.proxy.toxics.base import FRACTION, Kind, LinkView, Piece, Toxic


def error_response(status: int, body: str) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Error"
    payload = (body or f"{status} {reason} (injected by aftershock)\n").encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(payload)}\r\n"
        "X-Aftershock-Fault: http_error\r\n\r\n"
    )
    return head.encode() + payload


@dataclass
class _Requests:
    framer: RequestFramer = field(default_factory=RequestFramer)
    failing: bool = False


class HttpErrorToxic(Toxic):
    type = "http_error"
    defaults: ClassVar[dict[str, Any]] = {"status": 503, "rate": 1.0, "body": ""}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"status": (100, 599), "rate": FRACTION}
    directions = ("upstream",)

    def new_state(self) -> _Requests:
        return _Requests()

    def pipe(self, piece: Piece, state: _Requests, link: LinkView) -> Iterable[Piece]:
        if piece.kind is not Kind.DATA:
            return (piece,)
        out: list[Piece] = []
        for seg in state.framer.feed(piece.data):
            if seg.first:
                state.failing = link.rng.random() < self.attributes["rate"]
            if not state.failing or seg.request < 0:
                out.append(Piece(seg.data, piece.due))
            elif seg.last:
                reply = error_response(self.attributes["status"], self.attributes["body"])
                out.append(Piece(reply, piece.due, Kind.REPLY))
        return out
