"""A proxy's toxics: one ordered chain per direction, kept in step with every open link."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from faults.proxy.errors import (
    BAD_REQUEST_BODY,
    INVALID_STREAM,
    INVALID_TOXIC_TYPE,
    TOXIC_ALREADY_EXISTS,
    TOXIC_NOT_FOUND,
    check_name,
)
from faults.proxy.toxics import TOXIC_TYPES, InvalidAttributes, Toxic

STREAMS = ("upstream", "downstream")


@dataclass
class ToxicEntry:
    name: str
    type: str
    stream: str
    toxicity: float
    toxic: Toxic

    def to_json(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.toxic.attributes),
            "name": self.name,
            "type": self.type,
            "stream": self.stream,
            # a whole number is written as one (1, not 1.0), as Toxiproxy's Go encoder does
            "toxicity": int(self.toxicity) if self.toxicity.is_integer() else self.toxicity,
        }


class ChainedLink(Protocol):
    def add_stage(self, entry: ToxicEntry) -> None: ...
    def update_stage(self, entry: ToxicEntry) -> None: ...
    def remove_stage(self, entry: ToxicEntry) -> None: ...


def _toxicity(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BAD_REQUEST_BODY.joined("toxicity must be a number")
    if not 0 <= value <= 1:  # also false for NaN
        raise BAD_REQUEST_BODY.joined(f"toxicity must be a number from 0 to 1, got {value:g}")
    return float(value)


def parse_toxic(body: Any, taken: Callable[[str], bool]) -> ToxicEntry:
    """A new toxic from a JSON body, checked in Toxiproxy's order; raises ApiError."""
    if not isinstance(body, dict):
        raise BAD_REQUEST_BODY.joined("expected a JSON object")
    for key in ("name", "type", "stream"):
        if key in body and not isinstance(body[key], str):
            raise BAD_REQUEST_BODY.joined(f"{key} must be a string")
    stream = body.get("stream", "downstream").lower()
    if stream not in STREAMS:
        raise INVALID_STREAM
    toxic_type = body.get("type", "")
    name = check_name(body.get("name") or f"{toxic_type}_{stream}", "toxic")
    cls = TOXIC_TYPES.get(toxic_type)
    if cls is None:
        raise INVALID_TOXIC_TYPE
    if taken(name):
        raise TOXIC_ALREADY_EXISTS
    given = body.get("toxicity")
    toxicity = _toxicity(given if given is not None else 1.0)  # null: the default, as in Toxiproxy
    try:
        attributes = cls.parse_attributes(body.get("attributes"))
    except InvalidAttributes as exc:
        raise BAD_REQUEST_BODY.joined(str(exc)) from None
    if stream not in cls.directions:
        raise BAD_REQUEST_BODY.joined(
            f"{toxic_type} acts on HTTP requests: use stream {' or '.join(cls.directions)}"
        )
    return ToxicEntry(name, toxic_type, stream, toxicity, cls(attributes))


class ToxicCollection:
    def __init__(self, links: Callable[[str], Iterable[ChainedLink]]) -> None:
        self.chains: dict[str, list[ToxicEntry]] = {s: [] for s in STREAMS}
        self._links = links

    def entries(self) -> list[ToxicEntry]:
        return [e for s in STREAMS for e in self.chains[s]]

    def find(self, name: str) -> ToxicEntry | None:
        return next((e for e in self.entries() if e.name == name), None)

    def get(self, name: str) -> ToxicEntry:
        entry = self.find(name)
        if entry is None:
            raise TOXIC_NOT_FOUND
        return entry

    def parse(self, body: Any) -> ToxicEntry:
        return parse_toxic(body, lambda name: self.find(name) is not None)

    def add(self, entry: ToxicEntry) -> ToxicEntry:
        self.chains[entry.stream].append(entry)
        for link in self._links(entry.stream):
            link.add_stage(entry)
        return entry

    def update(self, name: str, body: Any) -> ToxicEntry:
        """Only `attributes` (merged onto the current ones) and `toxicity` change."""
        entry = self.get(name)
        if not isinstance(body, dict):
            raise BAD_REQUEST_BODY.joined("expected a JSON object")
        given = body.get("toxicity")
        toxicity = _toxicity(given if given is not None else entry.toxicity)  # null: unchanged
        try:
            attributes = type(entry.toxic).parse_attributes(
                body.get("attributes"), entry.toxic.attributes
            )
        except InvalidAttributes as exc:
            raise BAD_REQUEST_BODY.joined(str(exc)) from None
        entry.toxic = type(entry.toxic)(attributes)
        entry.toxicity = toxicity
        for link in self._links(entry.stream):
            link.update_stage(entry)
        return entry

    def remove(self, name: str) -> None:
        entry = self.get(name)
        self.chains[entry.stream].remove(entry)
        for link in self._links(entry.stream):
            link.remove_stage(entry)

    def reset(self) -> None:
        for entry in self.entries():
            self.remove(entry.name)

    def to_json(self) -> list[dict[str, Any]]:
        return [e.to_json() for e in self.entries()]
