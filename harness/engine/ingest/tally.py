"""What the target's store holds, judged against the events the harness really sent.

The harness knows the truth: every event id it made and when the event happened. The store
lists the rows it holds (`[event_id, stored_at]`, read back page by page); from those two:

duplicate_effect  rows held beyond one per event: an event stored k times counts k - 1
                  (cumulative: the figure at a window is the count up to its end)
ingest_lag        seconds from an event's time (the harness's) to when the store held it
                  (the store's clock: same host, or clocks in sync), the worst row per window

Rows with an id the harness never sent (an earlier run's, another producer's) are counted
apart (`foreign_rows`), never as duplicates.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

INGEST_FIGURES = ("duplicate_effect", "ingest_lag")


@dataclass(frozen=True)
class WindowFigures:
    """The figures of the rows stored in one window, stamped at its middle."""

    at: float
    duplicate_effect: int  # cumulative, to the end of this window
    ingest_lag: float  # worst row stored in it, seconds


@dataclass
class StoreTally:
    window: float  # seconds: the load's window, so the figures land in the windows SLOs read
    sent: dict[str, float] = field(default_factory=dict)  # event_id -> event time (the truth)
    copies: Counter[str] = field(default_factory=Counter)
    rows_read: int = 0  # rows listed so far, foreign ones included: the next page's `after`
    duplicate_effect: int = 0
    foreign_rows: int = 0
    max_lag: float | None = None
    window_lag: dict[int, float] = field(default_factory=dict)  # worst lag per window index, over every page

    def add_page(self, stored: list[tuple[str, float]]) -> list[WindowFigures]:
        """Count one page of stored rows (in storage order); the figures per window it touched."""
        per_window: dict[int, WindowFigures] = {}
        for event_id, stored_at in stored:
            self.rows_read += 1
            made = self.sent.get(event_id)
            if made is None:
                self.foreign_rows += 1
                continue
            self.copies[event_id] += 1
            if self.copies[event_id] > 1:
                self.duplicate_effect += 1
            lag = stored_at - made
            self.max_lag = lag if self.max_lag is None else max(self.max_lag, lag)
            index = math.floor(stored_at / self.window)
            # a window's rows may come in two pages: its figure is the worst of all of them
            self.window_lag[index] = max(self.window_lag.get(index, lag), lag)
            per_window[index] = WindowFigures((index + 0.5) * self.window, self.duplicate_effect, self.window_lag[index])
        return [per_window[i] for i in sorted(per_window)]

    def summary(self) -> dict[str, float | int | None]:
        return {"events_sent": len(self.sent), "events_stored": len(self.copies), "rows_read": self.rows_read,
                "duplicate_effect": self.duplicate_effect if self.copies else None,
                "foreign_rows": self.foreign_rows, "max_ingest_lag_s": self.max_lag}
