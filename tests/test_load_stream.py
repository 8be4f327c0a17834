"""Streaming load against a scripted OpenAI-compatible server that keeps the truth.

The server (tests/stream_server.py, a real child process on real sockets) draws each
answer's time to first token and inter-token gaps from seeded ranges and records when it
read each request and sent each token. The harness's TTFT and ITL (a real Locust child,
HDR windows) must agree with that record within 2 % + 2 ms, and its stream failures must
be exactly the ones the server scripted.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.windows import (
    GENERATION_SCALE,
    Window,
    latency_percentile_us,
    merge_windows,
    percentile_of,
)
from harness.engine.load import LoadConfig, LoadProcess, merge_into
from tests.stream_server import StreamScript

RUN_LIMIT_S = 60
TOKENS = 8


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    script = tmp_path_factory.mktemp("stream") / "script.json"
    script.write_text(StreamScript(tokens=TOKENS, stall_s=2.0).model_dump_json())
    proc = subprocess.Popen([sys.executable, "-m", "tests.stream_server", str(script)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc.stdout.readline().strip()
    finally:
        proc.kill()
        proc.wait(10)


def _record(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/record", timeout=5) as resp:
        return json.loads(resp.read())


def _run(cfg: LoadConfig, workdir: Path) -> Window:
    windows: dict[int, Window] = {}

    async def drive() -> None:
        lp = LoadProcess(cfg, workdir=workdir)
        try:
            await lp.start()
            async for w in lp.windows():
                merge_into(windows, w)
        finally:
            await lp.stop()

    asyncio.run(asyncio.wait_for(drive(), RUN_LIMIT_S))
    total = merge_windows(list(windows.values()))
    assert total is not None, "no window records"
    return total


def _prompts(path: Path, modes: list[str]) -> str:
    path.write_text("".join(json.dumps({"messages": [{"role": "user", "content": m}]}) + "\n" for m in modes))
    return str(path)


def _seconds(window: Window, name: str, percentile: float) -> float:
    return latency_percentile_us(window.generation[name].histogram, percentile) / GENERATION_SCALE[name]


def _robust_percentiles(values: list[float], levels: int) -> list[float]:
    """A percentile a third of the way into each level's block of the sorted values.

    The server draws each time from a few levels; on a busy 2-core box a few requests
    are read a few ms late (a process waiting for a core), and those sort to the top of
    their level's block. A rank low in each block compares requests read on time, so the
    check holds the harness to 2 % + 2 ms rather than to the machine's worst hiccup."""
    ordered = sorted(values)
    gaps = sorted(range(1, len(ordered)), key=lambda i: ordered[i] - ordered[i - 1])[-(levels - 1):]
    edges = [0, *sorted(gaps), len(ordered)]
    return [100 * (a + (b - a) // 3 + 1) / len(ordered) for a, b in itertools.pairwise(edges)]


def test_ttft_and_itl_agree_with_the_servers_record(server: str, tmp_path: Path) -> None:
    before = len(_record(server))
    cfg = LoadConfig(target_url=server, protocol="openai-chat", model="scripted", users=4, duration=4.0,
                     max_tokens=TOKENS, request_timeout=5.0)
    total = _run(cfg, tmp_path / "load")
    served = [r for r in _record(server)[before:] if r["mode"] == "ok"]
    assert served and total.failed == 0 and total.requests == len(served)
    truth = {
        "ttft": [r["sent"][0] - r["arrived"] for r in served],
        "itl": [b - a for r in served for a, b in zip(r["sent"], r["sent"][1:])],
    }
    for name, values in truth.items():
        assert total.generation[name].histogram.total_count == len(values)
        for p in _robust_percentiles(values, levels=3):
            measured, true = _seconds(total, name, p), percentile_of(values, p)
            assert abs(measured - true) <= 0.02 * true + 0.002, f"p{p:.1f}({name}) {measured:.4f}s vs server {true:.4f}s"
    tokens = total.generation["output_tokens"]
    assert tokens.histogram.get_min_value() == tokens.histogram.get_max_value() == TOKENS  # usage.completion_tokens
    assert total.finish_reasons == {"stop": len(served)}
    # tokens/s is tokens over the end-to-end time: under TOKENS / (ttft + gaps) of the server
    fastest = max(TOKENS / (r["sent"][-1] - r["arrived"]) for r in served)
    assert 0 < _seconds(total, "tokens_per_s", 100) <= fastest * 1.02


def test_stream_failures_are_classified_by_kind(server: str, tmp_path: Path) -> None:
    before = len(_record(server))
    modes = ["mode:ok", "mode:cut", "mode:stall", "mode:malformed", "mode:abort"]
    cfg = LoadConfig(target_url=server, protocol="openai-chat", model="scripted", users=5, duration=3.0,
                     prompts=_prompts(tmp_path / "prompts.jsonl", modes), stall_timeout=0.5, request_timeout=5.0)
    total = _run(cfg, tmp_path / "load")
    scripted = Counter(r["mode"] for r in _record(server)[before:])
    assert set(scripted) == {m.removeprefix("mode:") for m in modes}
    assert total.failures == {"stream_cut": scripted["cut"], "stream_stalled": scripted["stall"],
                              "stream_malformed": scripted["malformed"], "stream_aborted": scripted["abort"]}
    assert total.succeeded == scripted["ok"]
