"""Take GPU memory on every visible device, or host memory without one (the child of `gpu.oom`).

argv: marker, lifetime seconds, bytes (0: use the fraction), fraction, device (auto|cuda|cpu)
Prints `ready <cuda|cpu> <bytes held>`; exits with 3 when `cuda` was asked for and no
CUDA device is visible.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from faults.children.memory_hold import touched_block

NO_CUDA_EXIT = 3


def available_host_bytes() -> int:
    with open("/proc/meminfo") as f:
        return int(f.read().split("MemAvailable:")[1].split()[0]) * 1024


def hold_cuda(size: int, fraction: float) -> list[Any]:
    """One uint8 tensor per device: `size` bytes (at most what is free) or `fraction` of the free memory."""
    import torch  # only here: a CPU-only hog must not pay for importing torch

    held = []
    for d in range(torch.cuda.device_count()):
        free, _total = torch.cuda.mem_get_info(d)
        want = min(free, size) if size else int(free * fraction)
        held.append(torch.empty(want, dtype=torch.uint8, device=f"cuda:{d}"))
    return held


def main(argv: list[str]) -> None:
    lifetime, size, fraction, device = float(argv[2]), int(argv[3]), float(argv[4]), argv[5]
    held: list[Any] = []
    where = "cpu"
    if device == "cuda" or (device == "auto" and os.path.exists("/dev/nvidiactl")):
        import torch

        if torch.cuda.is_available():
            where = "cuda"
            held = hold_cuda(size, fraction)
        elif device == "cuda":
            print("error: no CUDA device visible", flush=True)
            sys.exit(NO_CUDA_EXIT)
    if where == "cpu":
        held.append(touched_block(size or int(available_host_bytes() * fraction)))
    total = sum(len(h) if isinstance(h, bytearray) else h.numel() for h in held)
    print("ready", where, total, flush=True)
    time.sleep(lifetime)


if __name__ == "__main__":
    main(sys.argv)
