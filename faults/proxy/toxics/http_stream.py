"""Base of the stream toxics: they act on the units of HTTP response bodies going
downstream (SSE events, chunks of a chunked body, else the whole body), from the
`after_chunks`-th unit of each response on.

The framer (`http_framing.ResponseFramer`) cuts the server's bytes into head, framing and
body parts without changing a byte, so a toxic that only delays parts (slow, stall)
keeps the HTTP framing valid. Each toxic acts when the first byte of a unit it hits
arrives: bytes that finish the unit before (a chunk's CRLF, the next chunk's size line)
go out with what came earlier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from faults.proxy.http_framing import Part, PartKind, ResponseFramer
from faults.proxy.toxics.base import Kind, LinkView, Piece, Toxic


@dataclass
class StreamState:
    framer: ResponseFramer = field(default_factory=ResponseFramer)


class HttpStreamToxic(Toxic):
    defaults: ClassVar[dict[str, Any]] = {"after_chunks": 0}
    directions = ("downstream",)
    buffer_bytes = 4 * 1024 * 1024  # a fast server's stream waiting behind a slowed one

    def new_state(self) -> Any:
        return StreamState()

    def hits(self, part: Part) -> bool:
        """`part` starts a unit this toxic acts on (the `after_chunks`-th or a later one)."""
        return part.kind is PartKind.BODY and part.unit_start and part.unit >= self.attributes["after_chunks"]

    def pipe(self, piece: Piece, state: Any, link: LinkView) -> Iterable[Piece]:
        data = piece.kind is Kind.DATA
        out: list[Piece] = []
        for part in state.framer.feed(piece.data) if data else state.framer.flush():
            out.extend(self.act(part, piece.due, state, link))
        return out if data else [*out, *self.end(piece, state)]

    def act(self, part: Part, due: float, state: Any, link: LinkView) -> Iterable[Piece]:
        """The pieces that carry `part` on (arrived for delivery at `due`)."""
        return (Piece(part.data, due),)

    def end(self, piece: Piece, state: Any) -> Iterable[Piece]:
        """The stream ended or is closing (`piece` is not data)."""
        return (piece,)
