"""The one small interface every toxic implements, and the pieces it passes along.

A link (one direction of one connection) stamps each chunk it reads with its arrival
time and hands it, as a `Piece`, through its toxics in chain order. A toxic's `pipe`
returns the pieces that go on: the same piece, a delayed one (a later `due`), several
smaller ones (slicer), none (timeout), or a control piece (close, reset). The link then
delivers pieces in order, each no earlier than its `due` time. Scheduling by due time
instead of sleeping keeps delays from accumulating across chunks and lets a link keep
reading while earlier chunks wait.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar, Protocol


class Kind(Enum):
    DATA = "data"
    EOF = "eof"  # the source finished sending: half-close the destination
    CLOSE = "close"  # close the whole connection (FIN both ways)
    RESET = "reset"  # close the whole connection with a TCP RST both ways
    REPLY = "reply"  # write `data` back to the link's source instead (HTTP toxics)


@dataclass(slots=True)
class Piece:
    data: bytes
    due: float  # event-loop time before which the piece must not be delivered
    kind: Kind = Kind.DATA


class LinkView(Protocol):
    """What a toxic may use of the link it acts on."""

    direction: str  # "upstream" (client → server) or "downstream" (server → client)
    rng: random.Random  # per-link; seeded from the server seed for reproducible runs

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Any) -> Any: ...

    def close_connection(self) -> None: ...


class InvalidAttributes(ValueError):
    """An attribute has the wrong type or is out of range; the API answers 400 bad request body."""


MAX_NUMBER = 2**53  # the largest integer a JSON number carries exactly
HOUR_MS = 3_600_000  # the longest delay a toxic may hold traffic: longer is a hang, not a fault
MAX_STRING = 65_536  # characters in a string attribute (an http_error body)
FRACTION = (0.0, 1.0)


class Toxic:
    """Base toxic: passes everything through unchanged.

    Subclasses set `type` and `defaults` (every attribute with its default; the
    default's type is the attribute's type) and override what they need.
    """

    type: ClassVar[str]
    defaults: ClassVar[dict[str, Any]] = {}
    # allowed range per numeric attribute; one not named here takes 0..MAX_NUMBER
    limits: ClassVar[dict[str, tuple[float, float]]] = {}
    buffer_bytes: ClassVar[int] = 0  # extra bytes a link may hold while this toxic delays data
    directions: ClassVar[tuple[str, ...]] = ("upstream", "downstream")

    def __init__(self, attributes: dict[str, Any]) -> None:
        self.attributes = attributes

    @classmethod
    def parse_attributes(cls, given: Any, base: dict[str, Any] | None = None) -> dict[str, Any]:
        """Merge `given` onto `base` (or the defaults); unknown keys are dropped like Toxiproxy does."""
        merged = dict(base if base is not None else cls.defaults)
        if given is None:
            return merged
        if not isinstance(given, dict):
            raise InvalidAttributes("attributes must be a JSON object")
        for key, default in cls.defaults.items():
            if key not in given:
                continue
            value = given[key]
            if isinstance(default, str):
                if not isinstance(value, str):
                    raise InvalidAttributes(f"attribute {key!r} must be a string")
                if len(value) > MAX_STRING:
                    raise InvalidAttributes(f"attribute {key!r} is longer than {MAX_STRING} characters")
                merged[key] = value
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidAttributes(f"attribute {key!r} must be a number")
            cls.check_range(key, value)
            if isinstance(default, float):
                value = float(value)
            elif value != int(value):
                raise InvalidAttributes(f"attribute {key!r} must be an integer")
            else:
                value = int(value)
            merged[key] = value
        return merged

    @classmethod
    def check_range(cls, key: str, value: float) -> None:
        """InvalidAttributes unless `value` is finite and inside the attribute's limits."""
        low, high = cls.limits.get(key, (0, MAX_NUMBER))
        if not (math.isfinite(value) and low <= value <= high):
            raise InvalidAttributes(f"attribute {key!r} must be a number from {low:g} to {high:g}, got {value:g}")

    def new_state(self) -> Any:
        """Per-link state; it survives updates of the toxic's attributes."""
        return None

    def start(self, state: Any, link: LinkView) -> None:
        """Called when the toxic starts acting on a link (after winning the toxicity roll)."""

    def stop(self, state: Any, link: LinkView, removed: bool) -> None:
        """Called when the toxic stops acting on a link: updated, removed, or link closed."""

    def pipe(self, piece: Piece, state: Any, link: LinkView) -> Iterable[Piece]:
        return (piece,)
