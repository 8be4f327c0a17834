"""Keep `cores` cores busy at a duty cycle (the child of `resource.cpu`).

argv: marker, lifetime seconds, cores, duty cycle (0..1]
"""

from __future__ import annotations

import os
import sys
import time

PERIOD_S = 0.1  # one busy+idle cycle: short enough that the duty cycle looks steady


def burn(lifetime: float, duty: float) -> None:
    """Spin for `duty` of every period, sleep the rest, until `lifetime` has passed."""
    end = time.monotonic() + lifetime
    while time.monotonic() < end:
        busy_until = time.monotonic() + PERIOD_S * duty
        while time.monotonic() < busy_until:
            pass
        if duty < 1.0:
            time.sleep(PERIOD_S * (1.0 - duty))


def main(argv: list[str]) -> None:
    lifetime, cores, duty = float(argv[2]), int(argv[3]), float(argv[4])
    leader = True
    for _ in range(cores - 1):
        if os.fork() == 0:  # the workers stay in the leader's process group
            leader = False
            break
    if leader:
        print("ready", flush=True)
    burn(lifetime, duty)


if __name__ == "__main__":
    main(sys.argv)
