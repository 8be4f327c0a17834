"""timeout: swallow all data; close the connection after `timeout` ms (0 = hold it forever).

Removing the toxic closes the connection it held, as Toxiproxy does: the peer's
protocol state is lost anyway, so letting data flow again would only confuse it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from faults.proxy.toxics.base import HOUR_MS, LinkView, Piece, Toxic


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

    def stop(self, state: _Timer, link: LinkView, removed: bool) -> None:
        if state.handle is not None:
            state.handle.cancel()
            state.handle = None
        if removed:
            link.close_connection()

    def pipe(self, piece: Piece, state: Any, link: LinkView) -> Iterable[Piece]:
        return ()
