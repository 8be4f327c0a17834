"""Data faults end to end: a real Locust child sends the demo's data to the real demo service.

Faults are injected through the control file while the load runs; the test checks what
was sent (the child's delivered measurements), what the demo noticed (its drift webhook,
received by the harness's receiver through the `webhook` probe), and how schema breaks
are answered (4xx, never 5xx), read with the client/server error-rate SLIs.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from faults.drift import CovariateShift
from faults.schema_break import SchemaBreak
from harness.core.fault import FaultContext
from harness.core.payload.delivered import delivered_events
from harness.core.protocols import make_adapter
from harness.core.windows import Window
from harness.engine.datasets import load_dataset
from harness.engine.load import LoadConfig, LoadProcess
from harness.engine.phases import RunTimeline, Span
from harness.engine.probes import build_probe
from harness.engine.slo import evaluate, parse_slo
from harness.engine.slo.sli import window_sli
from harness.workflows.drift_test import DemoTarget, run_grid
from tests.load_support import drive_load

RUN_LIMIT_S = 120


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    probe = build_probe({"name": "drift_hook", "type": "webhook", "match": {"event": "drift_alert"}})
    try:
        with DemoTarget("resilient", tmp_path_factory.mktemp("demo"), ["--drift-webhook", probe.url]) as target:
            yield target, probe
    finally:
        probe.close()


async def _load_with_faults(cfg: LoadConfig, workdir: Path, windows: dict[int, Window], spans: dict) -> None:
    lp = LoadProcess(cfg, workdir=workdir)
    ctx = FaultContext(toxiproxy_url="", load_dir=workdir, seed=4)
    shift = CovariateShift("shift", CovariateShift.Params.model_validate({"columns": ["features[0]"], "shift": 1.0}), ctx)
    schema = SchemaBreak("schema", SchemaBreak.Params.model_validate({"kind": "wrong_dtype", "field": "features"}), ctx)

    async def timeline() -> None:
        while not windows:
            await asyncio.sleep(0.05)
        for fault, hold in ((shift, 5.0), (schema, 3.0)):
            await asyncio.sleep(1.0)
            start = time.time()
            fault.inject()
            await asyncio.sleep(hold)
            fault.revert()
            spans[fault.name] = Span(fault.name, "fault", start, time.time())

    await drive_load(lp, timeline, windows, [shift, schema])


def test_drift_and_schema_break_under_real_load(demo, tmp_path: Path) -> None:
    target, probe = demo
    cfg = LoadConfig(target_url=target.url, model="fraud", dataset=str(target.data), users=2,
                     duration=14, window=0.5, request_timeout=5)  # fmt: skip
    windows: dict[int, Window] = {}
    spans: dict[str, Span] = {}
    asyncio.run(asyncio.wait_for(_load_with_faults(cfg, tmp_path / "load", windows, spans), RUN_LIMIT_S))

    # what was sent: a 1.0 std shift of the amount, measured on the payloads themselves
    events = {(e["fault"], e["feature"]): e for e in delivered_events(tmp_path / "load")}
    shifted = events[("shift", "features[0]")]
    assert shifted["rows"] > 50
    assert shifted["requested"]["shift_std"] == 1.0
    assert shifted["mean_shift_std"] == pytest.approx(1.0, abs=0.1)
    assert shifted["ks"] > 0.2
    assert events[("schema", "schema")]["changed_share"] == pytest.approx(1.0)  # measured on the bytes sent
    assert events[("shift", "features[0]")]["changed_share"] > 0.9  # the amount moves in (almost) every row

    # what the demo noticed: its drift webhook reached the harness's receiver
    assert probe.sample() >= 1
    (first, *_) = probe.receiver.received({"event": "drift_alert"})
    assert spans["shift"].start <= first.time <= spans["shift"].end + 5

    # how the broken requests were answered: client errors, never server errors
    ordered = [windows[i] for i in sorted(windows)]
    run = RunTimeline(run=Span("run", "run", ordered[0].start, ordered[-1].end), faults=list(spans.values()))
    assert evaluate(parse_slo("client_error_rate >= 90% during schema"), ordered, run).passed
    assert evaluate(parse_slo("server_error_rate == 0"), ordered, run).passed
    assert evaluate(parse_slo("error_rate < 1% during shift"), ordered, run).passed
    assert sum(n for k, n in merge_failures(ordered).items() if k.startswith("http_4")) > 10


def merge_failures(windows: list[Window]) -> dict[str, int]:
    out: dict[str, int] = {}
    for w in windows:
        for k, n in w.failures.items():
            out[k] = out.get(k, 0) + n
    return out


def test_client_and_server_error_rate_slis() -> None:
    w = Window(index=1, size=1.0, requests=20, failures={"http_400": 4, "http_422": 1, "http_503": 2, "timeout": 3})
    assert window_sli("client_error_rate", w) == pytest.approx(5 / 20)
    assert window_sli("server_error_rate", w) == pytest.approx(2 / 20)
    assert window_sli("error_rate", w) == pytest.approx(10 / 20)


def test_drift_test_grid_against_the_demo(demo, tmp_path: Path) -> None:
    target, _ = demo
    data = load_dataset(target.data)
    result = run_grid(target.url, data, make_adapter("oip-v2"), "fraud", corruptions=["noise", "nan"],
                      severities=(1, 5), rows=200, batch_size=20)  # fmt: skip
    assert result.clean.accuracy is not None and result.clean.accuracy > 0.85
    noise = {c.severity: c.accuracy for c in result.by_corruption()["noise"]}
    assert noise[5] < noise[1] <= result.clean.accuracy + 0.02
    nan = result.by_corruption()["nan"]
    assert all(c.client_errors > 0 and c.server_errors == 0 for c in nan)
    assert result.mean("noise") == pytest.approx((noise[1] + noise[5]) / 2)


def test_webhook_probe_state_and_count() -> None:
    import httpx

    probe = build_probe({"name": "hook", "type": "webhook", "measure": "state",
                         "match": {"event": "drift_alert"}, "reset": {"event": "drift_resolved"}})  # fmt: skip
    try:
        assert probe.sample() == 0
        for event in ("drift_alert", "other", "drift_resolved", "drift_alert"):
            httpx.post(probe.url, json={"event": event}, trust_env=False).raise_for_status()
            if event == "drift_resolved":
                assert probe.sample() == 0
        assert probe.sample() == 1
        assert len(probe.receiver.received({"event": "drift_alert"})) == 2
    finally:
        probe.close()
