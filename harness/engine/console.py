"""Rich consoles that wrap only for a person at a terminal.

A Console that is not writing to a terminal assumes 80 columns and hard-wraps there, so a
CI log or a redirected file got report paths and file:line:col messages broken mid-word.
Off a terminal these consoles never wrap: each line is as long as its content."""

from __future__ import annotations

from rich.console import Console

# Off a terminal a table lays out at its natural width up to this; nothing expands to it.
UNWRAPPED_WIDTH = 10_000


def make_console(stderr: bool = False) -> Console:
    """A Console for stdout (or stderr) that soft-wraps, at no fixed width, unless at a terminal."""
    console = Console(stderr=stderr)
    if console.is_terminal:
        return console
    return Console(stderr=stderr, soft_wrap=True, width=UNWRAPPED_WIDTH)
