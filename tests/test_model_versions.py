"""Per-version counts in the load windows, and the SLIs that read them: bad_version_share
and rollback_time, against windows whose truth the test writes itself."""

from __future__ import annotations

import json
from pathlib import Path

from faults.lifecycle.rollout import ModelRollout, ModelRolloutParams
from harness.core.fault import FaultContext
from harness.core.protocols import Decoded, make_adapter
from harness.core.windows import Window, merge_windows
from harness.engine.load.recorder import WindowRecorder
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo import evaluate, parse_slo

T0 = 1_700_000_000.0


def test_the_recorder_counts_requests_latency_and_accuracy_per_version() -> None:
    rec = WindowRecorder(1.0)
    for k in range(10):  # window 0: v1 answers 10 x 5 ms, all right
        rec.record(T0 + k / 20, 5.0, decoded=Decoded(predictions=[1], model_version="v1"), labels=[1])
    for k in range(4):  # window 1: v2 answers 4 x 50 ms, all wrong; one more v2 fails
        rec.record(T0 + 1 + k / 20, 50.0, decoded=Decoded(predictions=[0], model_version="v2"), labels=[1])
    rec.record(T0 + 1.5, 3.0, "http_500", Decoded(model_version="v2"))
    rec.record(T0 + 1.6, 2.0)  # a response that named no version
    windows = [Window.from_record(r) for r in rec.drain()]  # through the wire format
    total = merge_windows(windows)
    assert total is not None and total.requests == 16
    v1, v2 = total.versions["v1"], total.versions["v2"]
    assert (v1.requests, v1.labelled, v1.correct, v1.failed) == (10, 10, 10, 0)
    assert (v2.requests, v2.labelled, v2.correct, v2.failures) == (5, 4, 0, {"http_500": 1})
    assert 49_000 <= v2.latency.get_max_value() <= 50_100 and v1.latency.get_max_value() <= 5_100
    by_index = {w.index: w for w in windows}
    assert set(by_index[int(T0)].versions) == {"v1"} and set(by_index[int(T0) + 1].versions) == {"v2"}


def test_oip_v2_reads_the_version_of_an_error_body_too() -> None:
    oip = make_adapter("oip-v2")
    assert oip.version_of({"error": "boom", "model_version": "2"}) == "2"
    assert oip.version_of({"error": "boom"}) is None
    http = make_adapter("http-json", model_version="meta.v")
    assert http.version_of({"predictions": [1], "meta": {"v": 3}}) == "3"
    assert http.version_of({"error": "no predictions"}) is None


def served(seconds: range, version: str, n: int = 10) -> list[Window]:
    out = []
    for k in seconds:
        w = Window(index=int(T0) + k, size=1.0, requests=n)
        for _ in range(n):
            w.latency.record_value(1000)
        w.version(version).requests = n
        out.append(w)
    return out


def merged(*parts: list[Window]) -> list[Window]:
    by: dict[int, Window] = {}
    for part in parts:
        for w in part:
            if w.index in by:
                by[w.index].merge(w)
            else:
                by[w.index] = w
    return list(by.values())


def timeline(fault_end: float | None, bad: tuple[str, ...] = ("v2",)) -> RunTimeline:
    t = RunTimeline(run=Span("run", "run", T0, T0 + 30))
    t.faults.append(Span("canary", "fault", T0 + 5, fault_end, fault_type="model.rollout", bad_versions=bad))
    return t


def test_rollback_time_is_the_end_of_the_last_window_the_bad_version_served_in() -> None:
    windows = merged(served(range(30), "v1"), served(range(5, 12), "v2", n=2))  # v2 serves 5..12 s
    verdict = evaluate(parse_slo("rollback_time < 8s"), windows, timeline(T0 + 25))
    assert verdict.passed is True and verdict.measured == 7.0, verdict.detail
    assert evaluate(parse_slo("rollback_time < 6s"), windows, timeline(T0 + 25)).passed is False
    share = evaluate(parse_slo("bad_version_share <= 4%"), windows, timeline(T0 + 25))
    assert share.passed is False and abs(share.measured - 14 / 314) < 1e-9  # 4.5 %
    assert evaluate(parse_slo("bad_version_share <= 5%"), windows, timeline(T0 + 25)).passed is True


def test_a_bad_version_still_serving_at_the_fault_revert_or_run_end_fails() -> None:
    windows = merged(served(range(30), "v1"), served(range(5, 25), "v2", n=2))  # until the revert
    verdict = evaluate(parse_slo("rollback_time < 60s"), windows, timeline(T0 + 24.5))
    assert verdict.passed is False and verdict.measured is None and "not rolled back" in verdict.detail
    forever = merged(served(range(30), "v1"), served(range(5, 30), "v2"))
    assert evaluate(parse_slo("rollback_time < 60s"), forever, timeline(None)).passed is False
    # the revert lands a few ms into a window no request has started in yet: the bad version's
    # last window ends just before it, and no window saw the target serve without it
    edge = merged(served(range(20), "v1"), served(range(5, 20), "v2", n=2))
    verdict = evaluate(parse_slo("rollback_time < 60s"), edge, timeline(T0 + 20.004))
    assert verdict.passed is False and verdict.measured is None and "not rolled back" in verdict.detail


def test_without_versions_or_bad_versions_nothing_is_measured() -> None:
    plain = [Window(index=int(T0) + k, size=1.0, requests=5) for k in range(30)]
    for slo in ("rollback_time < 10s", "bad_version_share < 1%"):
        assert evaluate(parse_slo(slo), plain, timeline(T0 + 20)).passed is None
        assert evaluate(parse_slo(slo), served(range(30), "v1"), timeline(T0 + 20, bad=())).passed is None
    never = evaluate(parse_slo("rollback_time < 1s"), served(range(30), "v1"), timeline(T0 + 20))
    assert never.passed is True and never.measured == 0.0 and "never served" in never.detail


def test_model_rollout_reverts_through_a_dropped_file_and_from_the_ledger(tmp_path: Path) -> None:
    models = tmp_path / "models"
    models.mkdir()
    (models / "current.json").write_text('{"version": "1"}')
    params = ModelRolloutParams(version="2", share="25%", degrade={"label_noise": "40%"},
                                deploy={"file": {"dir": "models", "name": "current.json"}})
    fault = ModelRollout("canary", params, FaultContext(toxiproxy_url="", run_dir=tmp_path, seed=5))
    record = fault.undo_record()
    fault.inject()
    dropped = json.loads((models / "current.json").read_text())
    assert dropped == {"version": "2", "share": 0.25, "artifact": None,
                       "degrade": {"label_noise": 0.4, "threshold_shift": 0.0, "slow": 0.0,
                                   "crash_share": 0.0, "seed": 5}}
    assert fault.bad_versions() == ["2"]
    fault.revert()
    assert json.loads((models / "current.json").read_text()) == {"version": "1"}
    fault.inject()
    ModelRollout.replay_undo(json.loads(json.dumps(record)))  # what `aftershock cleanup` does
    assert json.loads((models / "current.json").read_text()) == {"version": "1"}
