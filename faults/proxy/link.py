"""One direction of one proxied connection: source socket → toxic stages → destination.

Each chunk read from the source is stamped with its arrival time and passed through
the active toxics in chain order; the resulting pieces wait in `pending` until their
due time and are written in order. With no toxics and nothing pending a chunk is
written straight through (the fast path). The link stops reading from its source when
its destination pushes back or when too much is pending.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from faults.proxy import splice
from faults.proxy.toxic_collection import ToxicEntry
from faults.proxy.toxics import Kind, Piece, Toxic

if TYPE_CHECKING:
    from faults.proxy.connection import Connection, Side

BASE_BUFFER = 64 * 1024  # bytes a link may hold beyond what its toxics ask for


@dataclass
class DirectionStats:
    bytes_received: int = 0  # read from the source
    bytes_sent: int = 0  # written to the destination

    def to_json(self) -> dict[str, int]:
        return {"bytes_received": self.bytes_received, "bytes_sent": self.bytes_sent}


@dataclass
class Stage:
    entry: ToxicEntry
    toxic: Toxic  # the toxic instance acting now (entry.toxic is replaced on update)
    state: Any
    active: bool = False  # won the toxicity roll


class Link:
    def __init__(
        self,
        conn: Connection,
        direction: str,
        source: Side,
        dest: Side,
        rng: random.Random,
        entries: list[ToxicEntry],
        stats: DirectionStats,
    ) -> None:
        self.conn = conn
        self.direction = direction
        self.source = source
        self.dest = dest
        self.rng = rng
        self.stats = stats
        self.loop = conn.loop
        self.stages: list[Stage] = []
        self.pending: deque[Piece] = deque()
        self.pending_bytes = 0
        self.limit = BASE_BUFFER
        self.dest_paused = False
        self.finished = False  # the end of stream was passed on, or the destination is gone
        self._timer: asyncio.TimerHandle | None = None
        self.splicer: splice.Splicer | None = None  # set while the kernel relays (no toxics)
        self._streak = 0  # bytes relayed through Python in a row with nothing held back
        for entry in entries:
            self.add_stage(entry)

    # --- what toxics may use (toxics.base.LinkView) ---
    def now(self) -> float:
        return self.loop.time()

    def call_later(self, delay: float, callback: Callable[[], None]) -> asyncio.TimerHandle:
        return self.loop.call_later(delay, callback)

    def close_connection(self) -> None:
        self.conn.close()

    # --- chain changes (applied to open connections) ---
    def add_stage(self, entry: ToxicEntry) -> None:
        self.unsplice()  # the toxic acts on every byte after what already went through
        stage = Stage(entry, entry.toxic, entry.toxic.new_state())
        self.stages.append(stage)
        self._roll(stage)
        self._set_limit()

    def update_stage(self, entry: ToxicEntry) -> None:
        stage = self._stage(entry)
        if stage is None:
            return
        if stage.active:
            stage.toxic.stop(stage.state, self, removed=False)
        stage.toxic = entry.toxic
        self._roll(stage)
        self._set_limit()
        self._release()

    def remove_stage(self, entry: ToxicEntry) -> None:
        stage = self._stage(entry)
        if stage is None:
            return
        self.stages.remove(stage)
        self._set_limit()
        if stage.active:
            stage.toxic.stop(stage.state, self, removed=True)
        self._release()

    def stop(self) -> None:
        """The connection is closing: stop timers and toxics, drop what is pending."""
        self.finished = True
        self.unsplice(deliver=False)
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pending.clear()
        for stage in self.stages:
            if stage.active:
                stage.active = False
                stage.toxic.stop(stage.state, self, removed=False)

    def _stage(self, entry: ToxicEntry) -> Stage | None:
        return next((s for s in self.stages if s.entry is entry), None)

    def _roll(self, stage: Stage) -> None:
        """Toxicity is rolled when a toxic starts acting on a link, as in Toxiproxy."""
        stage.active = self.rng.random() < stage.entry.toxicity
        if stage.active and not self.finished:
            stage.toxic.start(stage.state, self)

    def _set_limit(self) -> None:
        self.limit = BASE_BUFFER + sum(s.toxic.buffer_bytes for s in self.stages)

    def _release(self) -> None:
        """After an update or removal, what the old chain was holding back goes out now."""
        if self.finished or not self.pending:
            return
        now = self.loop.time()
        for piece in self.pending:
            if piece.kind is not Kind.RESET and piece.due > now:
                piece.due = now
        self._flush()

    # --- data path ---
    def feed(self, data: bytes) -> None:
        self.stats.bytes_received += len(data)
        if self.finished:
            return
        if not self.stages and not self.pending:
            self.stats.bytes_sent += len(data)
            self.dest.write(data)
            self._streak += len(data)
            if self._streak >= splice.ENTER_AFTER:
                self._splice()
            return
        self._streak = 0
        self._push(Piece(data, self.loop.time()))

    def feed_eof(self) -> None:
        if self.finished:
            return
        self.unsplice()
        if not self.stages and not self.pending:
            self._finish()
            return
        self._push(Piece(b"", self.loop.time(), Kind.EOF))

    def _push(self, piece: Piece) -> None:
        pieces = [piece]
        for stage in self.stages:
            if stage.active:
                pieces = [out for p in pieces for out in stage.toxic.pipe(p, stage.state, self)]
                if not pieces:
                    return
        self.pending.extend(pieces)
        self.pending_bytes += sum(len(p.data) for p in pieces)
        if self.pending_bytes > self.limit:
            self.source.pause("buffer")
        self._flush()

    def set_dest_paused(self, paused: bool) -> None:
        self.dest_paused = paused
        if paused:
            self.source.pause("destination")
        else:
            self.source.resume("destination")
            self._flush()

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        now = self.loop.time()
        pending = self.pending
        while pending and not self.dest_paused and not self.finished:
            piece = pending[0]
            if piece.due > now:
                self._timer = self.loop.call_at(piece.due, self._flush)
                break
            pending.popleft()
            kind = piece.kind
            if kind is Kind.DATA:
                self.pending_bytes -= len(piece.data)
                if piece.data:
                    self.stats.bytes_sent += len(piece.data)
                    self.dest.write(piece.data)
            elif kind is Kind.REPLY:
                self.pending_bytes -= len(piece.data)
                self.source.write(piece.data)
            elif kind is Kind.EOF:
                self._finish()
            elif kind is Kind.CLOSE:
                self.conn.close()
                return
            elif kind is Kind.RESET:
                self.conn.reset()
                return
        if self.pending_bytes <= self.limit // 2:
            self.source.resume("buffer")

    # --- zero-copy relay (faults/proxy/splice.py) ---
    def _splice(self) -> None:
        """Hand the relay to the kernel, if nothing is held anywhere on the way."""
        self._streak = 0
        if not splice.AVAILABLE or self.splicer is not None or self.dest_paused:
            return
        for side in (self.source, self.dest):
            transport = side.transport
            if side.lost or transport is None or transport.is_closing() or transport.get_write_buffer_size():
                return
        try:
            self.splicer = splice.Splicer(self)
        except OSError:  # out of descriptors, say: Python relays as before
            self.splicer = None

    def unsplice(self, deliver: bool = True) -> None:
        """Back to relaying through Python; what the pipe held goes out first."""
        splicer, self.splicer = self.splicer, None
        if splicer is None:
            return
        held = splicer.stop()
        if held and deliver and not self.finished:
            self.stats.bytes_sent += len(held)
            self.dest.write(held)

    def _finish(self) -> None:
        """End of stream reached the destination: half-close it."""
        if self.finished:
            return
        self.finished = True
        self.dest.write_eof()
        self.conn.link_finished()

    def abandon(self) -> None:
        """The destination is gone: nothing more can be delivered."""
        if self.finished:
            return
        self.finished = True
        self.unsplice(deliver=False)
        self.pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.conn.link_finished()
