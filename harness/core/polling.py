"""Wait for a condition by polling it: the one deadline loop the harness and faults share.

A predicate may raise to end the wait early (the process it waits for died); the answer
it gave last is returned, so a falsy result means the time ran out.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float, interval: float = 0.05,
               sleep: Callable[[float], object] = time.sleep) -> T:
    """Call `predicate` every `interval` s until it answers truthy or `timeout` s have passed.

    It is always called at least once, and once more at the deadline, so a condition that
    came true during the last sleep is not missed. `sleep`: gevent's in a Locust process.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    while True:
        answer = predicate()
        remaining = deadline - time.monotonic()
        if answer or remaining <= 0:
            return answer
        sleep(min(interval, remaining))
