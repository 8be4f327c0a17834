"""Journal events the report reads, beyond the runner's own (run.*, phase, fault.*, slo.verdict).

The report is rendered from journal.jsonl, so everything a page shows must be journaled
as it happens. The formats defined here:

- ``window``: ``{"event": "window", "record": Window.to_record()}``. Records are
  *additive*: records with the same ``index`` are merged (counts add, histograms merge),
  so journal every partial record exactly once as it arrives, or each merged window
  once when it closes — never both.
- ``drift.delivered``: any fields; conventionally ``fault``, ``feature``, ``metric``,
  ``magnitude`` (e.g. PSI or KS statistic actually delivered to the target).
- ``attack.result``: any fields; conventionally ``attack``, ``type``, ``start``/``end``
  (Unix seconds, shaded on the timeline) and ``metrics`` (a flat name -> number map).
- ``attack.error``: an attack that broke: ``attack``, ``type``, ``error``, ``start``/``end``;
  shown in the attack table with its error, so a broken attack is never silently absent.
"""

from __future__ import annotations

from typing import Any, Protocol

from harness.core.windows import Window

WINDOW = "window"
DRIFT_DELIVERED = "drift.delivered"
ATTACK_RESULT = "attack.result"
ATTACK_ERROR = "attack.error"  # an attack that broke: attack, type, error, start, end


class _Writes(Protocol):
    def write(self, event: str, **fields: Any) -> None: ...


def journal_window(journal: _Writes, window: Window) -> None:
    """Journal one (partial or merged) window record; see the module docstring for the rule."""
    journal.write(WINDOW, record=window.to_record())


def windows_from_events(events: list[dict[str, Any]]) -> list[Window]:
    """Merge every ``window`` event by index; sorted by time. Malformed records are skipped."""
    merged: dict[int, Window] = {}
    for e in events:
        if e.get("event") != WINDOW or not isinstance(e.get("record"), dict):
            continue
        try:
            w = Window.from_record(e["record"])
        except (KeyError, TypeError, ValueError):
            continue
        if w.index in merged:
            try:
                merged[w.index].merge(w)
            except ValueError:
                continue
        else:
            merged[w.index] = w
    return [merged[i] for i in sorted(merged)]
