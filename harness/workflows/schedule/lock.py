"""One run at a time: an exclusive fcntl lock on a file under the reports folder.

Every scheduler process (a long-running `aftershock schedule`, or a crontab/CronJob line
calling `--job`) takes the same lock before a run, so runs never overlap even when
schedules collide. The kernel drops the lock when its holder dies, so a killed run never
leaves it stuck.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from harness.core.polling import wait_until


class RunLock:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._file: IO[str] | None = None

    def acquire(self, timeout: float = 0.0) -> bool:
        """Take the lock, waiting up to `timeout` seconds; False if another run still holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        f = self.path.open("a+", encoding="utf-8")

        def locked() -> bool:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True

        if not wait_until(locked, timeout, interval=0.2):
            f.close()
            return False
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f
        return True

    def holder(self) -> str:
        """The pid written by the current holder (for messages); may be stale once released."""
        try:
            return self.path.read_text(encoding="utf-8").strip()
        except OSError:
            return ""

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None
