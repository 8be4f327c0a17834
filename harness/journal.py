"""Append-only JSONL record of everything a run does, flushed per event.

Readable after a crash: every line is a complete JSON object. Secrets (values that
came from `${env:...}`) are replaced with `***` in the record's values before it is
serialized (`harness.redaction`).
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from harness.redaction import Redactor


class Journal:
    def __init__(self, path: Path, secrets: list[str] | None = None) -> None:
        self.path = path
        self.redactor = Redactor(secrets or [])
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")

    def write(self, event: str, **fields: Any) -> None:
        record = {"t": time.time(), "event": event, **fields}
        line = json.dumps(self.redactor.value(record), default=str)
        with self._lock:
            if self._file.closed:
                return
            self._file.write(line + "\n")
            self._file.flush()
            if event.startswith("fault."):  # fault events must survive a power cut too
                os.fsync(self._file.fileno())

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
