"""The control channel from data faults (harness process) to the Locust child.

A data fault is injected by adding an entry to a small JSON control file in the load's
work folder and reverted by removing it; the file is always replaced atomically
(write a temp file, then rename), so the child never reads half a file. The child
polls the file's mtime and size — one `stat` — and re-reads it only when they change.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

CONTROL_FILE = "payload-faults.json"
_LOCK = threading.Lock()  # faults inject from worker threads of the runner


def control_path(load_dir: str | Path) -> Path:
    return Path(load_dir) / CONTROL_FILE


def _read(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except ValueError:
        return {}  # a foreign or truncated file: treat as no faults
    faults = doc.get("faults") if isinstance(doc, dict) else None
    return faults if isinstance(faults, dict) else {}


def _write(path: Path, faults: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".payload-faults-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"faults": faults, "written": time.time()}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def put_fault(path: Path, name: str, spec: dict[str, Any]) -> None:
    """Activate one fault: its spec is {type, params, seed, started}."""
    with _LOCK:
        faults = _read(path)
        faults[name] = spec
        _write(path, faults)


def remove_fault(path: Path, name: str) -> bool:
    """Deactivate one fault; False if it was not active (idempotent)."""
    with _LOCK:
        faults = _read(path)
        if name not in faults:
            return False
        del faults[name]
        _write(path, faults)
        return True


class ControlReader:
    """Child side: the active fault specs, re-read only when the file changes."""

    def __init__(self, path: str | Path, min_interval: float = 0.05) -> None:
        self.path = Path(path)
        self.min_interval = min_interval
        self._checked = 0.0
        self._stamp: tuple[int, int] | None = None
        self.faults: dict[str, Any] = {}

    def poll(self) -> bool:
        """Refresh `faults` if the file changed; True when it did. At most one stat per interval."""
        now = time.monotonic()
        if now - self._checked < self.min_interval:
            return False
        self._checked = now
        try:
            st = self.path.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except FileNotFoundError:
            stamp = None
        if stamp == self._stamp:
            return False
        self._stamp = stamp
        self.faults = _read(self.path) if stamp else {}
        return True
