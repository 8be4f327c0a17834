"""Shared by the tests that drive a real Locust child while data faults act on its payloads."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from harness.engine.load import LoadProcess, merge_into


async def drive_load(lp: LoadProcess, story: Callable[[], Awaitable[None]], windows: dict[int, Any],
                     faults: Iterable[Any]) -> None:
    """Run the load with `story` (which injects and reverts faults) beside it, merging every
    window into `windows`; the faults are reverted and the load stopped on every way out."""
    try:
        await lp.start()
        task = asyncio.create_task(story())
        async for w in lp.windows():
            merge_into(windows, w)
        await task
    finally:
        for fault in faults:
            fault.revert()
        await lp.stop()
