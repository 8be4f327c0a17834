"""The load engine end to end: real Locust child processes against a real local server.

The reference server knows the truth (what it served, how long each answer took);
the harness's merged window records must agree with it.
"""

from __future__ import annotations

import asyncio
import collections
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core.windows import Window, latency_percentile_us, merge_windows
from harness.engine.load import LoadConfig, LoadProcess, LoadProcessError, merge_into
from harness.engine.load.reference_server import ReferenceServer, ReferenceServerProcess, Reply
from tests.client_time import MAX_CLIENT_MS, with_client_time

RUN_LIMIT_S = 90  # every load run is bounded in time (and by its duration in count)


@pytest.fixture
def dataset(tmp_path: Path) -> Path:
    """4-row batches of which exactly 3 rows are labelled with what the server predicts."""
    x = np.array([[0, 1], [1, 1], [2, 1], [0, 1], [1, 0], [2, 0], [0, 0], [1, 0]], dtype=np.float32)
    label = np.array([0, 1, 2, 2, 1, 2, 0, 0])  # rows 3 and 7 disagree with int(x[0])
    path = tmp_path / "payloads.npz"
    np.savez(path, x=x, label=label)
    return path


class Run:
    def __init__(self) -> None:
        self.windows: dict[int, Window] = {}
        self.records = 0
        self.record_while_running = False
        self.pid: int | None = None

    @property
    def total(self) -> Window:
        total = merge_windows(list(self.windows.values()))
        assert total is not None, "no window records at all"
        return total


async def _drive(
    lp: LoadProcess, run: Run, after_start=None, stop_after_records: int | None = None
) -> None:
    try:
        await lp.start()
        run.pid = lp.pid
        if after_start:
            after_start(lp)
        async for w in lp.windows():
            run.records += 1
            run.record_while_running |= lp.returncode is None
            merge_into(run.windows, w)
            if stop_after_records is not None and run.records >= stop_after_records:
                await lp.stop()
    finally:
        await lp.stop()


def run_load(cfg: LoadConfig, tmp_path: Path, **kw) -> Run:
    run = Run()
    lp = LoadProcess(cfg, workdir=tmp_path / "load")
    asyncio.run(asyncio.wait_for(_drive(lp, run, **kw), RUN_LIMIT_S))
    return run


def hdr_percentile(window: Window, p: float) -> float:
    return latency_percentile_us(window.latency, p) / 1000  # ms


def true_percentile(durations_s: list[float], p: float) -> float:
    return float(np.percentile(np.array(durations_s) * 1000, p, method="inverted_cdf"))


RAW_CAPTURE = """
from locust import events
from harness.engine.load.model_user import ModelUser  # aftershock's own user, measured as usual

samples = []

@events.request.add_listener
def keep(response_time, exception=None, **kw):
    if exception is None:
        samples.append(response_time)

@events.quitting.add_listener
def dump(**kw):
    with open({path!r}, "w") as f:
        f.write("\\n".join(map(repr, samples)))
"""


def test_percentiles_match_the_truth_and_windows_stream(dataset: Path, tmp_path: Path) -> None:
    def plan(n: int) -> Reply:  # 60 % at 20 ms, 37 % at 50 ms, 3 % at 150 ms
        k = n % 100
        return Reply(delay=0.020 if k < 60 else 0.050 if k < 97 else 0.150)

    raw = tmp_path / "raw.txt"
    locustfile = tmp_path / "capture.py"
    locustfile.write_text(RAW_CAPTURE.format(path=str(raw)))
    with ReferenceServerProcess(plan) as srv:  # its own process: no GIL shared with the test
        cfg = LoadConfig(
            target_url=srv.url,
            model="m",
            dataset=str(dataset),
            batch_size=4,
            users=2,
            duration=6,
            locustfile=str(locustfile),
        )
        run = run_load(cfg, tmp_path)
    client_seen = [
        float(v) / 1000 for v in raw.read_text().split()
    ]  # Locust's own timings, seconds

    total = run.total
    assert total.requests == srv.requests == len(client_seen) and total.failed == 0
    assert run.record_while_running, "window records must arrive while Locust still runs"
    assert total.labelled == 4 * total.requests and total.correct == 3 * total.requests
    # The load lasts its configured duration: requests kept arriving for 6 s, less the
    # slowest answer (150 ms) and the users' start (5.99 s measured). Locust's run-time
    # timer once fired early by the child's import time (gevent's cached loop clock): 5.27 s.
    print(f"requests arrived for {srv.load_seconds:.3f} s of a {cfg.duration} s load")
    assert srv.load_seconds >= cfg.duration - 0.5
    # per answer: served time, and that plus the client's gaps on its keep-alive connection
    answers = with_client_time([(t0, s, 200, conn) for t0, s, conn in srv.answers])
    assert len(answers) == total.requests
    client_ms = float(np.median(answers[:, 4] - answers[:, 1])) * 1000
    print(f"the client's median time per request outside the server: {client_ms:.2f} ms")
    assert client_ms <= MAX_CLIENT_MS, f"the client took {client_ms:.2f} ms per request"
    for p in (50, 95, 99):
        measured = hdr_percentile(total, p)
        # The windowed, merged HDR figures against every raw sample the client saw: the
        # histograms' own error is under 1 %, however busy the machine is.
        seen = true_percentile(client_seen, p)
        assert abs(measured - seen) <= 0.01 * seen, (
            f"p{p}: {measured:.2f} ms vs client {seen:.2f} ms"
        )
        # Against what the server served (its own clock, from request to answer): the
        # truth the issue names. The client adds loopback and Locust's work, about 1 ms
        # on an idle box (benchmarks/README-load.md), but on a busy one its waits for a
        # core (28.5 ms seen against 22.5 served): those lie in its gaps between answers
        # and requests on its connection, which bound it from above (tests/client_time.py).
        served = true_percentile(answers[:, 1], p)
        most = true_percentile(answers[:, 4], p)
        print(f"p{p}: measured {measured:.2f} ms, client saw {seen:.2f} ms, server served "
              f"{served:.2f} ms, with the client's own time at most {most:.2f} ms")
        assert served - (0.02 * served + 2.0) <= measured <= most + 0.02 * most + 2.0, (
            f"p{p}: {measured:.2f} ms vs served {served:.2f}-{most:.2f} ms"
        )


def test_failures_by_kind_accuracy_and_fallbacks(dataset: Path, tmp_path: Path) -> None:
    planned: collections.Counter[str] = collections.Counter()

    def plan(n: int) -> Reply:
        kinds = [
            (n % 10 == 3, "http_503", Reply(status=503)),
            (n % 10 == 6, "http_429", Reply(status=429)),
            (n % 20 == 9, "decode", Reply(broken="garbage")),
            (n % 25 == 11, "connection", Reply(broken="close")),
            (n % 50 == 17, "timeout", Reply(delay=1.5)),
            (True, "ok", Reply(delay=0.002, fallback=n % 5 == 0)),
        ]
        kind, reply = next((k, r) for hit, k, r in kinds if hit)
        planned[kind] += 1
        return reply

    with ReferenceServer(plan) as srv:
        cfg = LoadConfig(
            target_url=srv.url,
            model="m",
            dataset=str(dataset),
            batch_size=4,
            users=4,
            duration=3,
            request_timeout="500ms",
            window="250ms",
        )
        run = run_load(cfg, tmp_path)
        served = dict(srv.served)

    total = run.total
    assert total.size == 0.25
    assert total.requests == sum(planned.values())
    expected = {k: v for k, v in planned.items() if k != "ok"}
    assert total.failures == expected and all(v > 0 for v in expected.values())
    assert total.succeeded == planned["ok"]
    assert total.fallbacks == served["fallback"] > 0
    assert total.labelled == 4 * planned["ok"] and total.correct == 3 * planned["ok"]


def test_master_with_two_workers_counts_every_request(dataset: Path, tmp_path: Path) -> None:
    workers: list[subprocess.Popen[bytes]] = []
    logs = [tmp_path / f"worker{i}.log" for i in range(2)]

    def start_workers(lp: LoadProcess) -> None:
        for log in logs:
            cmd = [sys.executable, "-m", "harness.engine.load.worker", "--master", lp.master_address]
            workers.append(subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT))

    with ReferenceServer(lambda n: Reply(delay=0.003)) as srv:
        cfg = LoadConfig(
            target_url=srv.url,
            model="m",
            dataset=str(dataset),
            users=4,
            duration=3,
            expect_workers=2,
            expect_workers_timeout=30,
        )
        try:
            run = run_load(cfg, tmp_path, after_start=start_workers)
        finally:
            for w in workers:
                try:
                    w.wait(30)
                except subprocess.TimeoutExpired:
                    w.kill()
                    w.wait()
        served = srv.requests

    own = [
        int(re.search(r"worker stopped after (\d+) requests", log.read_text()).group(1))
        for log in logs
    ]
    assert all(n > 0 for n in own), own
    assert run.total.requests == sum(own) == served
    assert [w.returncode for w in workers] == [0, 0]


def test_bring_your_own_locustfile_with_arrival_rate(dataset: Path, tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.py"
    theirs.write_text(
        "from locust import HttpUser, task\n"
        "class Theirs(HttpUser):\n"
        "    @task\n"
        "    def predict(self):\n"
        "        body = {'inputs': [{'name': 'x', 'shape': [1, 2], 'datatype': 'FP32', 'data': [2, 0]}]}\n"
        "        self.client.post('/v2/models/m/infer', json=body, context={'aftershock_labels': [2]})\n"
    )
    with ReferenceServer(lambda n: Reply(delay=0.002, fallback=n % 2 == 0)) as srv:
        cfg = LoadConfig(
            target_url=srv.url,
            locustfile=str(theirs),
            users=4,
            duration=4,
            shape={"kind": "arrival_rate", "rate": 40},
        )
        run = run_load(cfg, tmp_path)
        served = dict(srv.served)

    total = run.total
    assert total.requests == served["ok"] and total.failed == 0
    assert total.fallbacks == served["fallback"]  # the adapter decoded their responses
    assert total.labelled == total.correct == total.requests
    rate = total.requests / 4  # paced at 40/s (startup lag only lowers it)
    assert 15 <= rate <= 44, rate


def test_stop_mid_run_flushes_and_ends_the_process_group(dataset: Path, tmp_path: Path) -> None:
    with ReferenceServer(lambda n: Reply(delay=0.002)) as srv:
        cfg = LoadConfig(
            target_url=srv.url,
            model="m",
            dataset=str(dataset),
            users=4,
            duration=60,
            processes=2,
            window="200ms",
        )
        started = time.monotonic()
        run = run_load(cfg, tmp_path, stop_after_records=4)
        elapsed = time.monotonic() - started
        served = srv.requests
    assert elapsed < 45, "stop() must not wait for the 60 s run"
    assert run.total.requests == served  # the last records were flushed on SIGTERM
    assert run.pid is not None
    with pytest.raises(ProcessLookupError):  # nothing is left in Locust's process group
        os.killpg(run.pid, 0)


def test_child_failure_reports_its_log_tail(dataset: Path, tmp_path: Path) -> None:
    cfg = LoadConfig(
        target_url="http://127.0.0.1:9",
        dataset=str(dataset),
        duration=5,
        shape={"kind": "custom", "class_path": "no_such_module_xyz:Shape"},
    )
    with pytest.raises(LoadProcessError, match=r"(?s)exited with code.*no_such_module_xyz"):
        run_load(cfg, tmp_path)


def test_refused_connections_are_counted(dataset: Path, tmp_path: Path) -> None:
    from harness.core.processes import free_port

    cfg = LoadConfig(
        target_url=f"http://127.0.0.1:{free_port()}",
        dataset=str(dataset),
        users=2,
        duration=2,
        think_time="50ms",
    )
    total = run_load(cfg, tmp_path).total
    assert total.requests > 0 and total.failures == {"connection": total.requests}
