"""What writes a run's pages when it ends: a plug-in kind (entry-point group
`aftershock.reporters`), so the engine runs the report layer above it without importing it.

The engine writes the record itself (journal.jsonl, result.json); a reporter turns that
record into something to read (the built-in `pages`: report.html, summary.md, attacks.json).
A third-party package adds one (a JUnit file, a chat message) with an entry point.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from harness.core.registry import Registry
from harness.engine.journal import Journal


class Reporter:
    name: ClassVar[str] = ""  # the entry point's name

    def write(self, run_dir: Path, result: dict[str, Any], journal: Journal) -> None:
        """Write this reporter's files into `run_dir` from the run's (redacted) result and journal."""
        raise NotImplementedError


REPORTERS: Registry[Reporter] = Registry("aftershock.reporters", "reporter", "harness.engine.reporter:Reporter", "name")
