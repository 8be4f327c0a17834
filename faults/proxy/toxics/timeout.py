"""timeout: swallow all data; close the connection once no data has arrived for `timeout` ms
(0 = hold it forever).

It is an idle timeout, as in Toxiproxy: every chunk that arrives restarts the timer, so a
connection that keeps sending stays open (and stuck), which is what a peer waiting on a
half-dead service sees.

The end of stream is passed on, not swallowed: a peer that closes must still get its
proxied connection closed (Toxiproxy closes on end of stream too), or every client that
gives up would leave a connection and two descriptors behind.
Removing the toxic closes the connection it held, as Toxiproxy does: the peer's
protocol state is lost anyway, so letting data flow again would only confuse it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, Kind, LinkView, Piece, Toxic


@dataclass
class _Timer:
    handle: Any = None


class TimeoutToxic(Toxic):
    type = "timeout"
    defaults: ClassVar[dict[str, Any]] = {"timeout": 0}
    limits: ClassVar[dict[str, tuple[float, float]]] = {"timeout": (0, HOUR_MS)}

    def new_state(self) -> _Timer:
        return _Timer()

    def start(self, state: _Timer, link: LinkView) -> None:
        if self.attributes["timeout"] > 0:
            state.handle = link.call_later(
                self.attributes["timeout"] / 1000.0, link.close_connection
            )

    def _restart(self, state: _Timer, link: LinkView) -> None:
        self._cancel(state)
        self.start(state, link)

    def _cancel(self, state: _Timer) -> None:
        if state.handle is not None:
            state.handle.cancel()
            state.handle = None

    def stop(self, state: _Timer, link: LinkView, removed: bool) -> None:
        self._cancel(state)
        if removed:
            link.close_connection()

    def pipe(self, piece: Piece, state: _Timer, link: LinkView) -> Iterable[Piece]:
        if piece.kind in (Kind.DATA, Kind.REPLY):
            self._restart(state, link)
            return ()
        self._cancel(state)  # the stream ended: nothing is left to time out
        return (piece,)
