"""The live terminal view of a run: phase, elapsed/total, requests/s, p95, error rate, active
faults and attacks.

On a terminal it redraws in place (rich Live). In quiet mode (CI, or output not a
terminal) it never redraws: it prints one plain line when the phase or the set of active
faults changes, so a CI log stays short and readable.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Self

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from harness.engine.console import make_console


@dataclass
class LiveState:
    phase: str = "starting"
    elapsed: float = 0.0
    rps: float | None = None
    p95_ms: float | None = None
    error_rate: float | None = None  # 0..1
    active_faults: list[str] = field(default_factory=list)
    active_attacks: list[str] = field(default_factory=list)


def _num(v: float | None, fmt: str) -> str:
    return "—" if v is None else format(v, fmt)


class LiveView:
    def __init__(
        self,
        scenario_name: str,
        total_s: float,
        *,
        console: Console | None = None,
        quiet: bool | None = None,
        refresh_per_second: float = 4,
    ) -> None:
        self.scenario_name = scenario_name
        self.total_s = total_s
        self.console = console or make_console(stderr=True)
        self.quiet = (
            (not self.console.is_terminal or bool(os.environ.get("CI"))) if quiet is None else quiet
        )
        self.state = LiveState()
        self._live: Live | None = None
        self._refresh = refresh_per_second
        self._last_line: tuple[str, tuple[str, ...]] | None = None

    def renderable(self) -> Panel:
        s = self.state
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold")
        table.add_column()
        table.add_row("phase", s.phase)
        table.add_row("elapsed", f"{s.elapsed:.0f} s / {self.total_s:.0f} s")
        table.add_row("requests/s", _num(s.rps, ".1f"))
        table.add_row("p95", f"{_num(s.p95_ms, '.1f')} ms")
        err = s.error_rate
        table.add_row(
            "error rate",
            Text(
                f"{_num(None if err is None else err * 100, '.2f')} %",
                style="red" if err and err > 0.01 else "",
            ),
        )
        for label, names in (("active faults", s.active_faults), ("active attacks", s.active_attacks)):
            table.add_row(label, Text(", ".join(names) or "none", style="yellow" if names else "dim"))
        bar = ProgressBar(
            total=max(self.total_s, 1e-9), completed=min(s.elapsed, self.total_s), width=50
        )
        return Panel(Group(table, bar), title=f"aftershock: {self.scenario_name}", expand=False)

    def start(self) -> None:
        if self.quiet:
            self.console.print(
                f"aftershock: {self.scenario_name} ({self.total_s:g} s)", highlight=False
            )
            return
        if self._live is None:
            self._live = Live(
                self.renderable(),
                console=self.console,
                refresh_per_second=self._refresh,
                transient=False,
            )
            self._live.start()

    def update(
        self,
        phase: str,
        elapsed: float,
        rps: float | None,
        p95_ms: float | None,
        error_rate: float | None,
        active_faults: list[str],
        active_attacks: Sequence[str] = (),
    ) -> None:
        self.state = LiveState(
            phase, elapsed, rps, p95_ms, error_rate, list(active_faults), list(active_attacks)
        )
        if self._live is not None:
            self._live.update(self.renderable())
        elif self.quiet:
            key = (phase, tuple(active_faults), tuple(active_attacks))
            if key != self._last_line:
                self._last_line = key
                self.console.print(self.line(), highlight=False)

    def line(self) -> str:
        """The state as one plain line (quiet mode)."""
        s = self.state
        err = None if s.error_rate is None else s.error_rate * 100
        return (
            f"[{s.elapsed:6.1f}/{self.total_s:g} s] {s.phase}: {_num(s.rps, '.1f')} req/s, "
            f"p95 {_num(s.p95_ms, '.1f')} ms, errors {_num(err, '.2f')} %, "
            f"faults: {', '.join(s.active_faults) or 'none'}, "
            f"attacks: {', '.join(s.active_attacks) or 'none'}"
        )

    def stop(self) -> None:
        if self._live is not None:
            self._live.update(self.renderable())
            self._live.stop()
            self._live = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
