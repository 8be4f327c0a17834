"""What the load plugin costs per request, in-process: its request listener and the drain.

One "second" of requests (--requests, default 4000) goes through the listener as Locust's
request event calls it (keyword arguments, an OIP v2 response body the decoder has seen),
then one drain, as the flusher does each window tick; best of --repeat. Beside it: an
empty listener (what Locust's event call costs any listener), and hdrh's `record_value`
per sample against `record_values` for a batch. Runs on the code it finds, so checking out
an older commit and running this script there gives the before figure.

    python benchmarks/load_hook_bench.py [--requests 4000] [--repeat 15]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.engine.load import plugin
from harness.engine.load.recorder import WindowRecorder
from harness.engine.load.response_decoder import ResponseDecoder
from harness.core.protocols import make_adapter
from harness.core.windows import new_latency_histogram

BODY = b'{"model_name":"m","outputs":[{"name":"y","shape":[1,1],"datatype":"FP32","data":[0.5]}]}'


class CachedResponse:
    """What the listener reads of a FastHttpUser response: its (already read) body."""

    content = BODY


def per_request_us(listener: Callable[..., None], n: int, repeat: int) -> float:
    meta: dict[str, Any] = {
        "request_type": "POST",
        "name": "/v2/models/m/infer",
        "context": {},
        "response": CachedResponse(),
        "exception": None,
        "url": "http://127.0.0.1/v2/models/m/infer",
        "response_length": len(BODY),
    }
    best = float("inf")
    for _ in range(repeat):
        recorder = plugin.STATE.recorder = WindowRecorder(1.0)
        t0 = time.perf_counter()
        for i in range(n):
            meta["start_time"] = 1000.0 + i / n
            meta["response_time"] = 1.0 + (i % 97) * 0.37
            listener(**meta)
        recorder.drain()
        best = min(best, time.perf_counter() - t0)
    return best / n * 1e6


def hdr_us(n: int, repeat: int) -> tuple[float, float | None]:
    values = np.random.default_rng(1).integers(1_000, 60_000, n)
    one, batch = float("inf"), float("inf")
    for _ in range(repeat):
        h = new_latency_histogram()
        t0 = time.perf_counter()
        for v in values.tolist():
            h.record_value(v)
        one = min(one, time.perf_counter() - t0)
        try:
            from harness.engine.load.recorder import record_values
        except ImportError:  # code from before the batched recorder
            continue
        h = new_latency_histogram()
        t0 = time.perf_counter()
        record_values(h, values)
        batch = min(batch, time.perf_counter() - t0)
    return one / n * 1e6, (batch / n * 1e6 if batch < float("inf") else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    plugin.STATE.decoder = ResponseDecoder(make_adapter("oip-v2"))

    def empty(**_: Any) -> None:
        pass

    base = per_request_us(empty, args.requests, args.repeat)
    hook = per_request_us(plugin._on_request, args.requests, args.repeat)
    one, batch = hdr_us(args.requests, args.repeat)
    print(f"# load_hook_bench: {args.requests} requests then a drain, best of {args.repeat}")
    print(f"empty listener          {base:6.2f} us/request (Locust's event call)")
    print(f"plugin listener + drain {hook:6.2f} us/request ({hook - base:.2f} of its own)")
    batched = "not in this code" if batch is None else f"{batch:.3f} us/sample"
    print(f"hdrh record_value       {one:6.2f} us/sample;  record_values {batched}")


if __name__ == "__main__":
    main()
