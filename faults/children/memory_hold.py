"""Allocate a number of bytes, make every page resident, hold them (the child of `resource.memory`).

argv: marker, lifetime seconds, bytes
"""

from __future__ import annotations

import sys
import time

PAGE = 4096


def touched_block(size: int) -> bytearray:
    """`size` bytes with one write per page, so the kernel really backs every page."""
    block = bytearray(size)
    block[::PAGE] = b"\x01" * len(range(0, size, PAGE))
    return block


def main(argv: list[str]) -> None:
    lifetime, size = float(argv[2]), int(argv[3])
    block = touched_block(size)
    print("ready", flush=True)
    time.sleep(lifetime)
    del block


if __name__ == "__main__":
    main(sys.argv)
