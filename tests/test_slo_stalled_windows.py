"""A stalled window is one where nothing moved, not one where no request started.

Unit cases on hand-made windows, then two runs of a real Locust child against the scripted
streaming server (tests/stream_server.py), whose record of when it sent each token is the
truth: one user's healthy streams last ~3 windows each (windows with no new request but
tokens flowing are not stalled: availability 100 %), and streams held silent for several
windows (those windows, and only those, are stalled: availability drops).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.windows import Window
from harness.engine.load import LoadConfig, LoadProcess
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo.series import Series
from harness.engine.slo.sli import scope_sli
from tests.load_support import drive_load
from tests.stream_server import StreamScript, record, running

SIZE = 0.5  # window, s
TOKENS = 15  # a healthy answer: 100 ms to the first token, 100 ms gaps: ~1.5 s, 3 windows
STALL_S = 2.5  # a `mode:stall` answer goes silent this long after 3 tokens ...
STALL_AFTER = 1.5  # ... and the client gives up after this much silence: ~3 silent windows
EDGE_S = 0.05  # what the client's and the server's clocks of one event may differ by


def _busy(index: int, requests: int = 4, activity: int = 0) -> Window:
    return Window(index=index, size=1.0, requests=requests, activity=activity)


def _timeline(start: float, end: float | None) -> RunTimeline:
    return RunTimeline(run=Span("run", "run", start, end))


def test_a_window_with_progress_but_no_new_request_is_empty_not_stalled() -> None:
    windows = [_busy(10), Window(index=11, size=1.0, activity=5), Window(index=12, size=1.0), _busy(13)]
    series = Series.build(windows, _timeline(10.0, 14.0))
    assert series.status == ["data", "empty", "stalled", "data"]
    assert scope_sli("availability", windows, _timeline(10.0, 14.0)) == pytest.approx(8 / 12)  # one stall of 4
    windows[2].activity = 1  # a single token: something moved
    assert Series.build(windows, _timeline(10.0, 14.0)).status == ["data", "empty", "empty", "data"]
    assert scope_sli("availability", windows, _timeline(10.0, 14.0)) == 1.0


def test_trailing_windows_while_the_run_is_open_stall_only_when_nothing_moves() -> None:
    windows = [_busy(10), Window(index=11, size=1.0, activity=3), Window(index=12, size=1.0)]
    assert Series.build(windows, _timeline(10.0, None)).status == ["data", "empty", "stalled"]


def test_stalled_windows_fare_as_the_requests_stuck_in_them() -> None:
    """Coordinated omission: a stall stands for a busy window's requests, and they fare as
    the first requests to end after it that started before it."""
    def run(timeouts: int, after: Window) -> list[Window]:
        first = Window(index=10, size=1.0, requests=4, failures={"timeout": timeouts} if timeouts else {})
        return [first, Window(index=11, size=1.0), Window(index=12, size=1.0), after]

    timeline = _timeline(10.0, 14.0)
    # the 4 stuck requests timed out when the service came back: an outage; 4 + 2 x 4 failed of 16
    hang = run(4, Window(index=13, size=1.0, requests=4, activity=8, carried_failed=4))
    assert scope_sli("error_rate", hang, timeline) == pytest.approx(12 / 16)
    # they answered after the pause: slow, not failed
    pause = run(0, Window(index=13, size=1.0, requests=4, activity=8, carried_ok=4))
    assert Series.build(pause, timeline).status == ["data", "stalled", "stalled", "data"]
    assert scope_sli("availability", pause, timeline) == 1.0
    assert scope_sli("throughput", pause, timeline) == pytest.approx(8 / 4)  # nothing started in the pause
    # one of the four failed: a quarter of the stalls' requests did
    mixed = run(1, Window(index=13, size=1.0, requests=4, activity=8, carried_ok=3, carried_failed=1))
    assert scope_sli("error_rate", mixed, timeline) == pytest.approx((1 + 2) / 16)
    # the run closed on the hang (a fault span holds its tail): no stuck request came back
    faulted = RunTimeline(run=Span("run", "run", 10.0, 13.0), faults=[Span("hang", "fault", 11.0, 13.0)])
    assert scope_sli("availability", run(0, Window(index=13, size=1.0))[:3], faulted) == pytest.approx(4 / 12)


def test_old_records_without_activity_read_as_none_and_round_trip() -> None:
    record = Window(index=3, size=1.0, requests=4, activity=7, carried_ok=2, carried_failed=1).to_record()
    back = Window.from_record(record)
    assert (back.activity, back.carried_ok, back.carried_failed) == (7, 2, 1)
    del record["activity"], record["carried"]  # a result.json or journal written before the fields
    back = Window.from_record(record)
    assert (back.activity, back.carried_ok, back.carried_failed) == (0, 0, 0)
    w = _busy(3, activity=2)
    w.merge(Window(index=3, size=1.0, requests=4, activity=5, carried_ok=1, carried_failed=2))
    assert (w.requests, w.activity, w.carried_ok, w.carried_failed) == (8, 7, 1, 2)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    script = StreamScript(tokens=TOKENS, ttft_ms=[100.0], itl_ms=[100.0], fault_after=3, stall_s=STALL_S)
    with running(script, tmp_path_factory.mktemp("stall")) as url:
        yield url


def _run(server: str, workdir: Path, modes: list[str], duration: float,
         stall_timeout: float = STALL_AFTER) -> tuple[list[Window], RunTimeline]:
    prompts = workdir / "prompts.jsonl"
    workdir.mkdir()
    prompts.write_text("".join(json.dumps({"messages": [{"role": "user", "content": m}]}) + "\n" for m in modes))
    cfg = LoadConfig(target_url=server, protocol="openai-chat", model="scripted", users=1, duration=duration,
                     window=SIZE, prompts=str(prompts), stall_timeout=stall_timeout, request_timeout=10.0)
    windows: dict[int, Window] = {}

    async def no_faults() -> None:
        pass

    started = time.time()
    asyncio.run(asyncio.wait_for(drive_load(LoadProcess(cfg, workdir=workdir / "load"), no_faults, windows, []), 60))
    return list(windows.values()), _timeline(started, time.time())


def test_streams_longer_than_a_window_are_not_stalls(server: str, tmp_path: Path) -> None:
    before = len(record(server))
    windows, timeline = _run(server, tmp_path / "run", ["Say something"], duration=4.0)
    served = record(server)[before:]
    series = Series.build(windows, timeline)
    assert len(served) >= 2 and sum(w.requests for w in windows) == len(served)
    # the truth: every window between the first request and the last token held a token
    # the server sent, yet some saw no request start (the old rule called them stalled)
    inner = [i for i, w in enumerate(series.windows)
             if served[0]["arrived"] <= w.start and w.end <= served[-1]["sent"][-1]]
    assert any(series.windows[i].requests == 0 for i in inner)
    assert "stalled" not in series.status
    # activity is every token and every completion, where it happened
    assert sum(w.activity for w in windows) == sum(len(r["sent"]) for r in served) + len(served)
    assert scope_sli("availability", windows, timeline) == 1.0
    assert scope_sli("stream_error_rate", windows, timeline) == 0.0


def test_streams_held_silent_stall_their_windows(server: str, tmp_path: Path) -> None:
    before = len(record(server))
    windows, timeline = _run(server, tmp_path / "run", ["Say something", "mode:stall"], duration=5.0)
    seen = record(server)[before:]
    series = Series.build(windows, timeline)
    held = [r for r in seen if r["mode"] == "stall"]
    assert held and any(r["mode"] == "ok" for r in seen)
    total_failed = sum(w.failed for w in windows)
    assert total_failed == len(held)  # each held stream failed as stream_stalled
    # a silence after the last request started is the run's tail: not judged (Series.build)
    silences = [(r["sent"][-1], r["sent"][-1] + STALL_AFTER) for r in held if r is not seen[-1]]
    stalled = {i for i, s in enumerate(series.status) if s == "stalled"}
    w = series.windows
    # the truth: windows wholly inside a silence are stalled; none outside one is
    must = {i for i in range(len(w)) if any(a + EDGE_S <= w[i].start and w[i].end <= b - EDGE_S for a, b in silences)}
    may = {i for i in range(len(w)) if any(a - EDGE_S <= w[i].start and w[i].end <= b + EDGE_S for a, b in silences)}
    assert must and must <= stalled <= may, (must, stalled, may)
    requests = sum(x.requests for x in windows)
    availability = scope_sli("availability", windows, timeline)
    assert availability is not None and availability < 1 - total_failed / requests  # the stalls count too
    stream_errors = scope_sli("stream_error_rate", windows, timeline)
    assert stream_errors is not None and stream_errors > total_failed / requests


def test_streams_that_pause_and_then_finish_are_slow_not_failed(server: str, tmp_path: Path) -> None:
    """The client waits out the 2.5 s silence: every stream finishes. The silent windows are
    stalled (nothing moved), yet no stream failed, so neither may the figures say one did;
    the pause shows as inter-token latency."""
    before = len(record(server))
    windows, timeline = _run(server, tmp_path / "run", ["mode:pause"], duration=6.0, stall_timeout=5.0)
    served = record(server)[before:]
    assert served and all(r["mode"] == "pause" and len(r["sent"]) == TOKENS for r in served)
    assert sum(w.failed for w in windows) == 0 and sum(w.requests for w in windows) == len(served)
    assert len(served) >= 2  # the silence of the first lies between two requests: judged
    assert "stalled" in Series.build(windows, timeline).status  # the truth: ~5 silent windows
    assert scope_sli("availability", windows, timeline) == 1.0
    assert scope_sli("stream_error_rate", windows, timeline) == 0.0
    assert scope_sli("max(itl)", windows, timeline) >= STALL_S - EDGE_S


def test_a_live_stop_check_does_not_take_a_long_answer_for_a_stall(tmp_path: Path) -> None:
    """Through the CLI: one user whose answers stream for ~3 s (6 windows with no request
    starting in them). A window's records, tokens included, reach the runner when the answer
    ends; the live `stop_when` check must judge those windows with them, not as gaps (a
    stall), so `error_rate > 50% for 1s` never trips."""
    import subprocess
    import sys

    script = StreamScript(tokens=30, ttft_ms=[100.0], itl_ms=[100.0])
    with running(script, tmp_path) as url:
        scenario = tmp_path / "long-answers.yaml"
        scenario.write_text(f"""\
name: long-answers
target: {{url: "{url}", protocol: openai-chat, model: scripted}}
load: {{users: 1, duration: 8s, window: 0.5s, stream: true}}
slos:
  - {{name: streams finish, expect: stream_error_rate == 0}}
stop_when:
  - error_rate > 50% for 1s
""")
        proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120, cwd=Path(__file__).resolve().parents[1])
        served = record(url)
    out = proc.stdout + proc.stderr
    assert len(served) >= 2 and all(len(r["sent"]) == 30 for r in served[:-1]), out
    assert "tripped" not in out and proc.returncode == 0, out
