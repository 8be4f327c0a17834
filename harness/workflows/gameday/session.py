"""Running a game day: each runbook step in order, checkpoints prompting the facilitator,
observations typed at any time recorded with their time, then the game-day report.

Input comes line by line from stdin (or any text stream): at a checkpoint, Enter marks it
done, a typed line is recorded as an observation and marks it done, `skip` skips it, and
`abort` ends the game day (remaining steps are skipped). While a scenario runs, every line
typed is an observation; a line starting with `action:` becomes an action item.
`--unattended` never reads input: checkpoints are logged as passed over.
"""

from __future__ import annotations

import queue
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console

from harness.engine.console import make_console
from harness.workflows.gameday.plan import LoadedPlan, Step

EXIT_OK, EXIT_HYPOTHESIS_FAILED, EXIT_ABORTED, EXIT_INTERRUPTED = 0, 1, 3, 130


@dataclass
class Observation:
    t: float  # Unix seconds
    text: str
    step: int | None  # the step it was typed during, or None between steps
    kind: str = "observation"  # observation | checkpoint | action


@dataclass
class StepRecord:
    index: int
    kind: str  # scenario | checkpoint
    title: str
    role: str | None
    person: str | None
    started: float
    ended: float | None = None
    status: str = "pending"  # checkpoints: done | skipped | passed-over | aborted; scenarios: the run's status
    hypothesis: str = ""
    expect: str = "pass"
    hypothesis_held: bool | None = None
    run_dir: str | None = None
    result: dict[str, Any] | None = None
    note: str = ""


@dataclass
class GameDayOutcome:
    name: str
    plan_file: str
    hypothesis: str
    roles: dict[str, str]
    started: float
    ended: float
    unattended: bool
    steps: list[StepRecord]
    observations: list[Observation]
    action_items: list[dict[str, str | None]]
    exit_code: int
    report_dir: Path = field(default=Path("."))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["report_dir"] = str(self.report_dir)
        return d


class LineFeed:
    """Lines from a text stream, read by a daemon thread and stamped with the time they arrived."""

    _EOF = object()

    def __init__(self, stream: TextIO) -> None:
        self._q: queue.Queue[Any] = queue.Queue()
        self.closed = False
        threading.Thread(
            target=self._read, args=(stream,), daemon=True, name="gameday-input"
        ).start()

    def _read(self, stream: TextIO) -> None:
        for line in stream:
            self._q.put((time.time(), line.rstrip("\r\n")))
        self._q.put(self._EOF)

    def get(self) -> tuple[float, str] | None:
        """The next line (blocking); None once the stream has ended."""
        if self.closed:
            return None
        item = self._q.get()
        if item is self._EOF:
            self.closed = True
            return None
        return item

    def drain(self) -> list[tuple[float, str]]:
        out = []
        while True:
            try:
                item = self._q.get_nowait()
            except queue.Empty:
                return out
            if item is self._EOF:
                self.closed = True
                return out
            out.append(item)


class GameDay:
    def __init__(
        self,
        loaded: LoadedPlan,
        *,
        unattended: bool = False,
        quick: bool = False,
        output_dir: Path | None = None,
        console: Console | None = None,
        stdin: TextIO | None = None,
    ) -> None:
        self.loaded = loaded
        self.plan = loaded.plan
        self.unattended = unattended
        self.quick = quick
        self.out_root = output_dir or Path(self.plan.output.dir)
        self.console = console or make_console(stderr=True)
        self.stdin = stdin if stdin is not None else sys.stdin
        self.observations: list[Observation] = []
        self.actions: list[dict[str, str | None]] = [
            {"text": a, "owner": None, "source": "plan"} for a in self.plan.action_items
        ]

    def _say(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)

    def _note(self, t: float, text: str, step: int | None, kind: str = "observation") -> None:
        if text.lower().startswith("action:"):
            self.actions.append({"text": text[7:].strip(), "owner": None, "source": "typed"})
            kind = "action"
        self.observations.append(Observation(t, text, step, kind))

    def run(self) -> GameDayOutcome:
        from harness.workflows.gameday.report import write_gameday_report

        started = time.time()
        feed = None if self.unattended else LineFeed(self.stdin)
        records: list[StepRecord] = []
        stop: str | None = None  # "aborted" | "interrupted"
        self._say(
            f"game day {self.plan.name}: {len(self.plan.steps)} steps"
            + (" (unattended)" if self.unattended else "")
        )
        if self.plan.hypothesis:
            self._say(f"hypothesis: {self.plan.hypothesis}")
        for i, step in enumerate(self.plan.steps):
            rec = StepRecord(
                i,
                "checkpoint" if step.checkpoint else "scenario",
                step.title,
                step.role,
                self.plan.roles.get(step.role) if step.role else None,
                time.time(),
                hypothesis=step.hypothesis,
                expect=step.expect,
            )
            records.append(rec)
            if stop:
                rec.status, rec.ended, rec.note = (
                    "skipped",
                    rec.started,
                    f"game day {stop} before this step",
                )
                continue
            if step.checkpoint:
                stop = self._checkpoint(step, rec, feed, len(self.plan.steps))
            else:
                stop = self._scenario(step, rec, feed)
            rec.ended = time.time()
        if feed is not None:
            for t, line in feed.drain():
                if line.strip():
                    self._note(t, line.strip(), None)
        self._derive_actions(records)
        held = [r.hypothesis_held for r in records if r.kind == "scenario"]
        code = (
            EXIT_INTERRUPTED
            if stop == "interrupted"
            else EXIT_ABORTED
            if stop == "aborted"
            else EXIT_OK
            if all(h is True for h in held)
            else EXIT_HYPOTHESIS_FAILED
        )
        outcome = GameDayOutcome(
            self.plan.name,
            str(self.loaded.path),
            self.plan.hypothesis,
            dict(self.plan.roles),
            started,
            time.time(),
            self.unattended,
            records,
            self.observations,
            self.actions,
            code,
        )
        stamp = datetime.fromtimestamp(started, UTC).strftime("%Y%m%dT%H%M%SZ")
        outcome.report_dir = self.out_root / "gamedays" / self.plan.name / stamp
        write_gameday_report(outcome)
        return outcome

    def _checkpoint(
        self, step: Step, rec: StepRecord, feed: LineFeed | None, total: int
    ) -> str | None:
        who = f" ({rec.role}: {rec.person})" if rec.role else ""
        self._say(f"[checkpoint {rec.index + 1}/{total}]{who} {step.checkpoint}")
        if feed is None:
            rec.status, rec.note = "passed-over", "unattended: not confirmed by a person"
            return None
        self._say(
            "  Enter when done · type a note to record it · 'skip' · 'abort' to end the game day"
        )
        got = feed.get()
        if got is None:
            rec.status, rec.note = "passed-over", "input closed: not confirmed by a person"
            return None
        t, line = got
        word = line.strip()
        if word.lower() == "abort":
            rec.status, rec.note = "aborted", "the facilitator ended the game day here"
            return "aborted"
        if word.lower() == "skip":
            rec.status = "skipped"
            return None
        rec.status = "done"
        if word:
            rec.note = word
            self._note(t, word, rec.index, "checkpoint")
        return None

    def _scenario(self, step: Step, rec: StepRecord, feed: LineFeed | None) -> str | None:
        from harness.engine.runner import Runner, RunOptions

        loaded = self.loaded.scenarios[rec.index]
        quick = self.quick if step.quick is None else step.quick
        self._say(
            f"[scenario {rec.index + 1}/{len(self.plan.steps)}] {loaded.scenario.name}"
            + (f" — hypothesis: {step.hypothesis}" if step.hypothesis else "")
        )
        if feed is not None:
            self._say(
                "  type observations at any time (Enter after each); start a line with 'action:' for an action item"
            )
        runner = Runner(loaded, RunOptions(quick=quick, output_dir=self.out_root))
        result = runner.run()
        rec.status, rec.run_dir, rec.result, rec.note = (
            result.status,
            str(result.run_dir),
            result.result,
            result.message,
        )
        wanted = "passed" if step.expect == "pass" else "failed"
        rec.hypothesis_held = result.status == wanted
        self._say(
            f"  → {result.status}; hypothesis {'held' if rec.hypothesis_held else 'did NOT hold'}"
        )
        if feed is not None:
            for t, line in feed.drain():
                if line.strip():
                    self._note(t, line.strip(), rec.index)
        return "interrupted" if result.status == "interrupted" else None

    def _derive_actions(self, records: list[StepRecord]) -> None:
        owner = self.plan.roles.get("commander")
        for r in records:
            if r.kind != "scenario" or r.hypothesis_held is not False:
                continue
            failed = [
                v["name"] for v in (r.result or {}).get("slos", []) if v.get("passed") is not True
            ]
            what = f"expected it to {r.expect}, it {r.status}"
            if failed:
                what += f"; SLOs not met: {', '.join(failed)}"
            elif r.note:
                what += f" ({r.note})"
            self.actions.append(
                {"text": f"Investigate {r.title}: {what}", "owner": owner, "source": "derived"}
            )
        for r in records:
            if r.kind == "checkpoint" and r.status == "passed-over":
                self.actions.append(
                    {
                        "text": f"Confirm checkpoint by hand: {r.title}",
                        "owner": self.plan.roles.get(r.role) if r.role else owner,
                        "source": "derived",
                    }
                )
