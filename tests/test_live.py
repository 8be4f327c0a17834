"""The live view renders the run's state on a (recorded) terminal, and stays terse in quiet mode."""

from __future__ import annotations

import io

from rich.console import Console

from harness.engine.live import LiveView


def _terminal() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=100, color_system=None), buf


def test_live_view_shows_phase_figures_and_faults_on_a_terminal() -> None:
    console, buf = _terminal()
    view = LiveView("feature-store-latency", 60, console=console, quiet=False)
    assert view.quiet is False
    with view:
        view.update("fault: slow-feature-store", 21.4, 182.5, 231.7, 0.0123, ["slow-feature-store"])
    text = buf.getvalue()
    for expected in (
        "feature-store-latency",
        "fault: slow-feature-store",
        "21 s / 60 s",
        "182.5",
        "231.7 ms",
        "1.23 %",
        "slow-feature-store",
    ):
        assert expected in text, expected


def test_live_view_without_data_shows_dashes() -> None:
    console, buf = _terminal()
    with LiveView("s", 10, console=console, quiet=False) as view:
        view.update("baseline", 0.5, None, None, None, [])
    text = buf.getvalue()
    assert "—" in text and "none" in text


def test_quiet_mode_prints_one_line_per_change_and_never_redraws() -> None:
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=False, width=200)
    view = LiveView("s", 30, console=console)  # not a terminal: quiet by itself
    assert view.quiet is True
    view.start()
    for i in range(10):
        view.update("baseline", i * 0.5, 100.0, 20.0, 0.0, [])
    view.update("fault: f1", 6.0, 90.0, 300.0, 0.05, ["f1"])
    view.update("fault: f1", 7.0, 90.0, 310.0, 0.05, ["f1"])
    view.update("recovery", 12.0, 100.0, 25.0, 0.0, [])
    view.stop()
    lines = buf.getvalue().splitlines()
    assert len(lines) == 4, lines  # header + baseline + fault + recovery
    assert "\x1b[" not in buf.getvalue()
    assert (
        "fault: f1" in lines[2]
        and "p95 300.0 ms" in lines[2]
        and "errors 5.00 %" in lines[2]
        and "faults: f1" in lines[2]
    )


def test_an_attack_is_shown_as_active_not_as_no_faults() -> None:
    console, buf = _terminal()
    with LiveView("s", 30, console=console, quiet=False) as view:
        view.update("attack", 5.0, 90.0, 40.0, 0.0, [], ["flood"])
    text = buf.getvalue()
    assert "active attacks" in text and "flood" in text
    quiet = LiveView("s", 30, console=Console(file=io.StringIO(), width=200), quiet=True)
    quiet.update("attack", 5.0, 90.0, 40.0, 0.0, [], ["flood"])
    assert quiet.line().endswith("faults: none, attacks: flood"), quiet.line()
