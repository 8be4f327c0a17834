"""Ingested events: idempotency keys and a late-event policy in front of the training set.

A row sent to `POST /v2/models/{m}/ingest` with an `event_id` (and an `event_time`, epoch
seconds) is an *event*. Producers retry and pipelines replay, so the same event arrives
more than once; and events arrive late. In resilient mode the log keeps every event id it
stored and refuses a second delivery (`duplicate`), and keeps a watermark (the newest event
time seen minus the allowed lateness) and refuses events older than it (`late`: their
window is closed). In fragile mode every delivery goes into the training set.

`GET /v2/models/{m}/events?after=N` lists what was stored, so a test harness can count the
rows that landed twice and the lag from event time to stored: `{"rows", "stored":
[[event_id, stored_at], ...] (from row N on), "duplicates_refused", "late_refused",
"watermark", "lag_s": {"last", "max"}}`.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

ALLOWED_LATENESS_S = 1.0  # resilient: an event older than the watermark by more is refused
MAX_LISTED = 5000
REASONS = {
    "duplicate": "already stored (idempotency key)",
    "late": "older than the watermark: its window is closed",
    "schema": "'event_time' must be a finite number of epoch seconds",
}  # stored rows per GET; the caller pages on with `after`


@dataclass
class EventPolicy:
    dedupe: bool  # refuse a second delivery of an event id
    allowed_lateness: float | None  # None: take events however late

    @classmethod
    def for_mode(cls, mode: str) -> EventPolicy:
        if mode == "resilient":
            return cls(dedupe=True, allowed_lateness=ALLOWED_LATENESS_S)
        return cls(dedupe=False, allowed_lateness=None)


@dataclass
class EventLog:
    policy: EventPolicy
    seen: set[str] = field(default_factory=set)  # ids stored or being stored (dedupe)
    stored: list[tuple[str, float, float]] = field(default_factory=list)  # (event_id, stored_at, event_time)
    newest_event_time: float | None = None
    duplicates_refused: int = 0
    late_refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def watermark(self) -> float | None:
        if self.policy.allowed_lateness is None or self.newest_event_time is None:
            return None
        return self.newest_event_time - self.policy.allowed_lateness

    def ingest(self, rows: list[Any], store: Callable[[list[Any]], dict[str, Any]]) -> dict[str, Any]:
        """Gate the event rows, pass the rest to `store` (the training set's ingest, which
        reports its own refusals by row), and answer for every row by its original index."""
        passed: list[int] = []  # original indexes of the rows handed to `store`
        refused: list[dict[str, Any]] = []
        with self.lock:  # reserve ids here: two concurrent deliveries of one event store it once
            for i, row in enumerate(rows):
                reason = self._refusal(row)
                if reason is None:
                    passed.append(i)
                else:
                    refused.append({"row": i, "error": f"event {_event_id(row)!r}: {REASONS[reason]}", "reason": reason})
        try:
            result = store([_training_row(rows[i]) for i in passed])
        except BaseException:  # not stored (e.g. the model still loading): a re-send must get in
            with self.lock:
                self.seen.difference_update(e for i in passed if (e := _event_id(rows[i])) is not None)
            raise
        rejected = {e["row"] for e in result.get("errors", [])}
        now = time.time()
        with self.lock:
            for j, i in enumerate(passed):
                row = rows[i]
                event_id = _event_id(row)
                if event_id is None:
                    continue
                if j in rejected:  # the training set refused it: a fixed re-send may store it
                    self.seen.discard(event_id)
                else:
                    self.stored.append((event_id, now, float(row.get("event_time", now))))
        errors = [{**e, "row": passed[e["row"]]} for e in result.get("errors", [])] + refused
        errors.sort(key=lambda e: e["row"])
        return {**result, "errors": errors, "rejected": len(errors),
                "duplicates": sum(e["reason"] == "duplicate" for e in refused),
                "late": sum(e["reason"] == "late" for e in refused)}

    def _refusal(self, row: Any) -> str | None:
        """Why the policy refuses this row (`duplicate`, `late`), or None; caller holds the lock."""
        event_id = _event_id(row)
        if event_id is None:
            return None  # a plain training row: no key to dedupe by
        event_time = row.get("event_time")
        if type(event_time) not in (int, float) or not math.isfinite(event_time):
            return "schema"  # 'event_time' must be epoch seconds
        if self.policy.dedupe and event_id in self.seen:
            self.duplicates_refused += 1
            return "duplicate"
        mark = self.watermark()
        if mark is not None and event_time < mark:
            self.late_refused += 1
            return "late"
        self.newest_event_time = max(self.newest_event_time or event_time, float(event_time))
        self.seen.add(event_id)
        return None

    def listing(self, after: int) -> dict[str, Any]:
        with self.lock:
            page = self.stored[max(after, 0): max(after, 0) + MAX_LISTED]
            lags = [at - t for _, at, t in self.stored]
            return {
                "rows": len(self.stored),
                "stored": [[event_id, at] for event_id, at, _ in page],
                "duplicates_refused": self.duplicates_refused,
                "late_refused": self.late_refused,
                "watermark": self.watermark(),
                "policy": {"dedupe": self.policy.dedupe, "allowed_lateness_s": self.policy.allowed_lateness},
                "lag_s": {"last": lags[-1] if lags else None, "max": max(lags) if lags else None},
            }


def _training_row(row: Any) -> Any:
    """The row as the training set takes it: without the event's key and time."""
    if not isinstance(row, dict):
        return row
    return {k: v for k, v in row.items() if k not in ("event_id", "event_time")}


def _event_id(row: Any) -> str | None:
    value = row.get("event_id") if isinstance(row, dict) else None
    return None if value is None else str(value)
