"""Append-only JSONL record of everything a run does, flushed per event.

Readable after a crash: every line is a complete JSON object. Secrets (values that
came from `${env:...}`) are replaced with `***` in the record's values before it is
serialized (`harness.engine.redaction`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from harness.engine.redaction import Redactor

Listener = Callable[[dict[str, Any]], None]


class Journal:
    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self.redactor = Redactor(secrets or [])
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def subscribe(self, listener: Listener) -> None:
        """Hand every later event (redacted, as written) to `listener`: the live views
        (terminal, web dashboard, metrics exporters) read the run from the same record
        the report does. A listener must be quick and must not raise; one that does is
        dropped, so an exporter's bug never stops a run."""
        self._listeners.append(listener)

    def write(self, event: str, **fields: Any) -> None:
        record = self.redactor.value({"t": time.time(), "event": event, **fields})
        line = json.dumps(record, default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()
            if event.startswith("fault."):  # fault events must survive a power cut too
                os.fsync(self._file.fileno())
        for listener in list(self._listeners):
            try:
                listener(record)
            except Exception:  # noqa: BLE001 - see subscribe(): a broken listener is dropped
                self._listeners.remove(listener)

    def close(self) -> None:
        with self._lock:
            self._file.close()


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every complete event in a journal; a torn last line (crash mid-write) is skipped."""
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return events
