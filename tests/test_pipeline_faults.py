"""Pipeline faults (data.duplicate, data.replay, data.late) on the ingested event stream, and
the figures read back from the store (duplicate_effect, ingest_lag).

The stream is the harness's own (harness.engine.ingest.stream.IngestStream) posting over
real sockets to a scripted store (tests/scripted_store.py) that records every delivery as
it arrives: what each fault did is checked against that record, and the figures against the
events the test knows were sent. The faults act through the real control file, injected and
reverted as the timeline does.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scripted_store import ScriptedStore
from tiny_target import write_dataset

from faults.pipeline import (
    DataDuplicate,
    DataLate,
    DataReplay,
    DuplicateAction,
    DuplicateParams,
    LateParams,
    ReplayAction,
    ReplayParams,
)
from harness.core.errors import UserError
from harness.core.fault import FaultContext, FaultFailed
from harness.core.payload.payload_channel import ControlReader
from harness.core.pipeline_fault import CONTROL_FILE, Event, PipelineFault
from harness.core.windows import Window
from harness.demo.event_log import EventLog, EventPolicy
from harness.engine.ingest.stream import IngestStream
from harness.engine.ingest.tally import StoreTally
from harness.engine.ledger import read_ledger
from harness.engine.phases import RunTimeline, Span
from harness.engine.probe_sampler import ProbeSampler
from harness.engine.scenario.loader import ScenarioError, load_scenario
from harness.engine.scenario.model import IngestSpec
from harness.engine.slo import evaluate, parse_slo

ROOT = Path(__file__).resolve().parents[1]
RATE = 40.0  # events per second: one every 25 ms
TICK = 0.05  # the stream's tick at most: an event's time is its tick's
NOTICE = 0.05 + TICK  # the stream sees an inject or revert within one control-file poll and a tick


class Run:
    """One stream run against a store, with faults injected and reverted at offsets."""

    def __init__(self, store: ScriptedStore, run_dir: Path) -> None:
        self.store = store
        self.values: list[tuple[dict[str, float], float]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        rows = [{"x": float(i), "label": i % 2} for i in range(50)]
        self.stream = IngestStream(IngestSpec(rate=RATE, path="/ingest", readback="/events", settle=0.2),
                                   store.url, "m", rows, run_dir=run_dir, run_id="run", seed=1, window=0.25,
                                   request_timeout=5.0, journal=lambda e, **f: self.events.append((e, f)),
                                   add_values=lambda v, at: self.values.append((v, at)))
        self.ctx = FaultContext(toxiproxy_url="", run_dir=run_dir, seed=5)
        self.spans: dict[str, tuple[float, float]] = {}

    def go(self, seconds: float, faults: list[tuple[PipelineFault, float, float]]) -> None:
        async def schedule(fault: PipelineFault, start: float, at: float, until: float) -> None:
            await asyncio.sleep(max(0.0, start + at - time.time()))
            fault.inject()
            begun = time.time()
            await asyncio.sleep(max(0.0, start + until - time.time()))
            fault.revert()
            self.spans[fault.name] = (begun, time.time())

        async def main() -> None:
            start = time.time()
            await asyncio.gather(self.stream.run(start, start + seconds),
                                 *(schedule(f, start, a, b) for f, a, b in faults))

        asyncio.run(main())

    def fault(self, cls: type[PipelineFault], name: str, params: Any) -> PipelineFault:
        return cls(name, params, self.ctx)

    def last(self, figure: str) -> float:
        return [v[figure] for v, _ in sorted(self.values, key=lambda s: s[1])][-1]

    def worst(self, figure: str) -> float:
        return max(v[figure] for v, _ in self.values)


@pytest.mark.parametrize("dedupe", [False, True], ids=["counts-every-delivery", "dedupes-by-event-id"])
def test_duplicate_sends_events_made_while_active_twice(tmp_path: Path, dedupe: bool) -> None:
    with ScriptedStore(dedupe=dedupe) as store:
        run = Run(store, tmp_path)
        dup = run.fault(DataDuplicate, "dup", DuplicateParams(share=1.0))
        run.go(1.5, [(dup, 0.4, 1.0)])
    sent = dup.metrics()["duplicates_sent"]
    copies = store.copies()
    made = {d.event_id: d.event_time for d in store.deliveries}
    doubled = {i for i, n in copies.items() if n == 2}
    begun, ended = run.spans["dup"]
    assert set(copies.values()) == {1, 2}
    assert len(doubled) == sent >= 0.8 * RATE * (ended - begun) - 2  # every event made while active (~24)
    assert all(begun - TICK <= made[i] <= ended + NOTICE for i in doubled)  # and none after the revert
    assert all(i in doubled for i, t in made.items() if begun + NOTICE < t < ended - TICK)
    if dedupe:  # the store refused each second delivery: nothing counted twice
        assert store.log.duplicates_refused == sent
        assert run.stream.tally.duplicate_effect == 0 == run.last("duplicate_effect")
    else:  # every second delivery is a row counted twice, and the harness counts each
        assert run.stream.tally.duplicate_effect == sent == run.last("duplicate_effect")
    assert run.stream.tally.summary()["events_stored"] == len(copies)


def test_replay_resends_its_window_out_of_order_at_its_rate(tmp_path: Path) -> None:
    with ScriptedStore() as store:
        run = Run(store, tmp_path)
        replay = run.fault(DataReplay, "rewind", ReplayParams(rate=30, window=0.5))
        run.go(2.0, [(replay, 0.8, 1.6)])
    sent = replay.metrics()["replays_sent"]
    begun, ended = run.spans["rewind"]
    first: dict[str, float] = {}  # event id -> event time, from its first delivery
    replayed = []  # the ids of the deliveries after an event's first, in arrival order
    for d in store.deliveries:
        if d.event_id in first:
            replayed.append(d.event_id)
        first.setdefault(d.event_id, d.event_time)
    window = {i for i, t in first.items() if begun - 0.5 - TICK <= t < begun}  # made in the 0.5 s before it
    assert len(replayed) == sent
    assert 0.7 * 30 * (ended - begun) <= sent <= 30 * (ended - begun + NOTICE) + 1
    assert set(replayed) <= window  # only the window before the fault
    # a shuffled pass over the window before another, never one event again and again: at
    # least every event surely inside it (`begun` follows the inject by a moment) when there were enough replays
    inner = {i for i, t in first.items() if begun - 0.5 + 0.02 <= t < begun - 0.02}
    assert len(set(replayed)) >= min(sent, len(inner))
    seqs = [int(i.rsplit("-", 1)[1]) for i in replayed]
    assert seqs != sorted(seqs)  # out of order
    assert run.stream.tally.duplicate_effect == sent == run.last("duplicate_effect")


# with every event held back the stream is only delayed, and no watermark can tell: the
# refusing store gets half of them late, among fresh events that move its watermark on
@pytest.mark.parametrize(("lateness", "share"), [(None, 1.0), (0.3, 0.5)], ids=["takes-late-events", "refuses-past-watermark"])
def test_late_holds_events_back_past_the_window(tmp_path: Path, lateness: float | None, share: float) -> None:
    with ScriptedStore(allowed_lateness=lateness) as store:
        run = Run(store, tmp_path)
        late = run.fault(DataLate, "late", LateParams(share=share, delay=0.6))
        run.go(1.8, [(late, 0.4, 0.9)])
    sent = late.metrics()["late_sent"]
    begun, ended = run.spans["late"]
    held = [d for d in store.deliveries if d.arrived - d.event_time >= 0.6]
    assert len(held) == sent >= 0.5 * share * RATE * (ended - begun)
    assert all(begun - TICK <= d.event_time <= ended + NOTICE for d in held)
    assert all(d.arrived - d.event_time < 0.6 for d in store.deliveries if not begun - TICK <= d.event_time <= ended + NOTICE)
    if lateness is None:  # stored seconds after they happened: the lag shows it
        assert 0.6 <= run.worst("ingest_lag") == run.stream.tally.max_lag < 1.5
    else:
        assert store.log.late_refused == sent
        assert run.worst("ingest_lag") < 0.6
    assert run.last("duplicate_effect") == 0


def test_a_replay_with_nothing_to_replay_fails_loudly(tmp_path: Path) -> None:
    with ScriptedStore() as store:
        run = Run(store, tmp_path)
        replay = run.fault(DataReplay, "too-early", ReplayParams(rate=30, window=5))
        replay.inject()  # before the first event: its window holds none
        run.go(1.0, [])
    with pytest.raises(FaultFailed, match="acted on none"):
        replay.metrics()


def test_a_pipeline_fault_without_a_stream_fails_to_inject(tmp_path: Path) -> None:
    fault = DataDuplicate("dup", DuplicateParams(), FaultContext(toxiproxy_url="", run_dir=tmp_path))
    with pytest.raises(FaultFailed, match="ingest:"):
        fault.inject()
    fault.revert()  # idempotent, safe after a failed inject
    assert "already gone" in DataDuplicate.replay_undo(fault.undo_record())


def test_the_ledger_record_alone_undoes_an_injected_fault(tmp_path: Path) -> None:
    """What `aftershock cleanup` does after a SIGKILL: no context, only the record."""
    (tmp_path / "ingest").mkdir()
    fault = DataLate("late", LateParams(delay=5), FaultContext(toxiproxy_url="", run_dir=tmp_path))
    record = json.loads(json.dumps(fault.undo_record()))  # as the ledger keeps it
    fault.inject()
    reader = ControlReader(tmp_path / "ingest" / CONTROL_FILE, min_interval=0)
    assert reader.poll() and set(reader.faults) == {"late"}
    assert "removed from" in DataLate.replay_undo(record)
    assert reader.poll() and reader.faults == {}
    fault.revert()  # and the run's own revert after it does no harm


@pytest.mark.parametrize(("path", "readback", "says"), [
    ("/nowhere", "/events", "every one of the"),
    ("/ingest", "/nowhere", "could not be read back"),
])
def test_a_stream_the_target_never_took_fails_loudly(tmp_path: Path, path: str, readback: str, says: str) -> None:
    with ScriptedStore() as store:
        run = Run(store, tmp_path)
        run.stream.ingest_url, run.stream.readback_url = store.url + path, store.url + readback
        with pytest.raises(UserError, match=says):
            run.go(0.3, [])


def test_actions_are_seeded_and_act_on_their_share() -> None:
    events = [Event(i, f"e{i}", float(i), {}) for i in range(400)]

    def chosen(seed: int) -> list[int]:
        action, rng = DuplicateAction(DuplicateParams(share=0.3, gap=0.5)), np.random.default_rng(seed)
        return [e.seq for e in events if len(action.deliveries(e, [e.event_time], rng)) == 2]

    assert chosen(4) == chosen(4) != chosen(5)
    assert 0.22 * 400 <= len(chosen(4)) <= 0.38 * 400
    action = DuplicateAction(DuplicateParams(share=1.0, gap=0.5))
    assert action.deliveries(events[3], [3.0], np.random.default_rng(0)) == [3.0, 3.5]

    def replays(seed: int) -> list[int]:
        action, rng = ReplayAction(ReplayParams(rate=10, window=20), started=100.0), np.random.default_rng(seed)
        return [e.seq for e in action.resends(102.0, events, rng)]  # 2 s at 10/s: 20 of the 20 in the window

    assert replays(1) == replays(1) and sorted(replays(1)) == list(range(80, 100)) and replays(1) != sorted(replays(1))


def test_tally_counts_rows_beyond_one_per_event_and_lag_from_the_true_event_time() -> None:
    tally = StoreTally(window=1.0)
    tally.sent = {"a": 100.0, "b": 100.5, "c": 101.0}
    first = tally.add_page([("a", 100.2), ("b", 100.6), ("zz", 100.7)])  # zz: not the harness's
    second = tally.add_page([("a", 101.1), ("c", 101.3), ("a", 103.9)])
    assert [(f.at, f.duplicate_effect, round(f.ingest_lag, 6)) for f in first] == [(100.5, 0, 0.2)]
    assert [(f.at, f.duplicate_effect, round(f.ingest_lag, 6)) for f in second] == [(101.5, 1, 1.1), (103.5, 2, 3.9)]
    assert (tally.duplicate_effect, tally.foreign_rows, tally.rows_read) == (2, 1, 6)
    next_page = tally.add_page([("b", 103.95)])  # window 103 again, in the next read: its worst row stays
    assert [(f.at, f.duplicate_effect, round(f.ingest_lag, 6)) for f in next_page] == [(103.5, 3, 3.9)]
    assert StoreTally(window=1.0).summary()["duplicate_effect"] is None  # nothing stored: not measured


def test_event_log_policies() -> None:
    def store(rows: list[Any]) -> dict[str, Any]:  # refuses rows labelled 9, like the ingest guard
        errors = [{"row": i, "error": "guard", "reason": "label_contradicts_model"} for i, r in enumerate(rows) if r["label"] == 9]
        return {"accepted": len(rows) - len(errors), "errors": errors}

    def row(i: str, t: float, label: int = 0) -> dict[str, Any]:
        return {"features": [], "label": label, "event_id": i, "event_time": t}

    resilient = EventLog(EventPolicy.for_mode("resilient"))
    answer = resilient.ingest([row("a", 10.0), row("a", 10.0), row("b", 10.5, label=9), row("c", 8.0), row("d", "x")], store)
    assert [(e["row"], e["reason"]) for e in answer["errors"]] == [
        (1, "duplicate"), (2, "label_contradicts_model"), (3, "late"), (4, "schema")]
    assert (answer["accepted"], answer["duplicates"], answer["late"]) == (1, 1, 1)
    assert resilient.ingest([row("b", 10.5)], store)["accepted"] == 1  # refused by the guard: not a duplicate later
    listing = resilient.listing(0)
    assert listing["rows"] == 2 and [r[0] for r in listing["stored"]] == ["a", "b"] and listing["watermark"] == 9.5
    assert resilient.listing(1)["stored"][0][0] == "b"
    fragile = EventLog(EventPolicy.for_mode("fragile"))
    fragile.ingest([row("a", 10.0), row("a", 10.0), row("c", 1.0)], store)
    assert fragile.listing(0)["rows"] == 3


# every SLO form on the figures, each with a case that must fail: (expect, clean passes, faulty fails)
FORMS = [
    "duplicate_effect == 0",
    "max(duplicate_effect) <= 0 during dup",
    "max(ingest_lag) < 1s",
    "mean(ingest_lag) < 500ms",
    "ingest_lag < 1s in every window",
    "ingest_lag < 1s in 90% of windows",
    "ingest_lag < 1s for 2s",
    "last(ingest_lag) < 1s during dup",
    "max(ingest_lag) during fault < 2 * max(ingest_lag) during baseline",
    "degradation(ingest_lag) < 5",
]


@pytest.mark.parametrize("expect", FORMS)
def test_every_slo_form_on_the_figures_passes_clean_and_fails_faulty(expect: str) -> None:
    t0 = 1_700_000_000.0

    def verdict(faulty: bool) -> bool | None:
        tally = StoreTally(window=1.0)
        stored = []
        for k in range(20):  # one event a second; in the fault span (5 s..10 s) stored twice and 3 s late
            tally.sent[f"e{k}"] = t0 + k
            hit = faulty and 5 <= k < 10
            stored.append((f"e{k}", t0 + k + (3.0 if hit else 0.1)))
            if hit:
                stored.append((f"e{k}", t0 + k + 3.2))
        sampler = ProbeSampler([], RunTimeline(run=Span("run", "run", t0)), lambda *a, **k: None)
        for f in tally.add_page(sorted(stored, key=lambda s: s[1])):
            sampler.add_values({"duplicate_effect": f.duplicate_effect, "ingest_lag": f.ingest_lag}, at=f.at)
        windows = {i: Window(index=i, size=1.0, requests=10) for i in range(int(t0), int(t0) + 20)}
        for w in windows.values():
            w.latency.record_value(1000)
        sampler.attach(windows)
        timeline = RunTimeline(run=Span("run", "run", t0, t0 + 20), baseline=Span("baseline", "baseline", t0, t0 + 5),
                               faults=[Span("dup", "fault", t0 + 5, t0 + 13, "data.duplicate")])
        slo = parse_slo(expect, known_scopes={"run", "fault", "dup"}, known_probes={"duplicate_effect", "ingest_lag"})
        return evaluate(slo, [windows[i] for i in sorted(windows)], timeline).passed

    assert verdict(faulty=False) is True
    assert verdict(faulty=True) is False


SCENARIO = """name: s
target: {{demo: fraud}}
dependencies: {{feature-store: {{upstream: demo}}}}
load: {{duration: 20s}}
{ingest}timeline:
  faults:
    - {{name: dup, type: data.duplicate, at: 5s, duration: 5s}}
slos:
  - {{name: a, expect: duplicate_effect == 0}}
"""


@pytest.mark.parametrize(("ingest", "line", "says"), [
    ("", 7, "data.duplicate acts on the event stream the harness ingests, and this scenario has none: add an `ingest:`"),
    ("", 9, "^\n  a figure of the event stream the harness ingests: add an `ingest:` section"),
    ("ingest: {rate: fast}\n", 5, "ingest.rate: invalid rate 'fast': write requests per time"),
    ("ingest: {readback: 'http://10.0.0.1/events'}\n", 5, "is not a path on the target"),
    ("ingest: {max_events: 0}\n", 5, "ingest.max_events"),
])
def test_bad_ingest_input_names_file_line_and_fix(tmp_path: Path, ingest: str, line: int, says: str) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(ingest=ingest))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:{line}:" in str(err.value) and says in str(err.value), str(err.value)


def test_bad_ingest_input_exits_2_through_the_cli(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(ingest=""))
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "validate", str(path)],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2
    assert f"{path}:7:" in proc.stdout + proc.stderr and "Traceback" not in proc.stdout + proc.stderr


def test_sigint_mid_fault_reverts_it_and_ends_the_stream(tmp_path: Path) -> None:
    """A whole run through the CLI against the scripted store as its target, interrupted
    while data.duplicate acts: exit 130, the fault reverted, the ledger closed."""
    write_dataset(tmp_path)
    with ScriptedStore() as store:
        (tmp_path / "s.yaml").write_text(f"""name: sigint
target: {{url: "{store.url}", protocol: oip-v2, model: m}}
load: {{users: 1, duration: 20s, window: 0.5s, data: {{dataset: rows.npz}}}}
ingest: {{rate: 20/s, path: /ingest, readback: /events}}
timeline:
  faults:
    - {{name: dup, type: data.duplicate, at: 1s, duration: 15s, share: 100%}}
slos:
  - {{name: none twice, expect: duplicate_effect == 0}}
""")
        proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "run", str(tmp_path / "s.yaml"), "-o", str(tmp_path / "out")],
                                cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not any(
                    d for d in store.copies().values() if d > 1):  # the fault acts: events go out twice
                time.sleep(0.1)
            proc.send_signal(signal.SIGINT)
            out, _ = proc.communicate(timeout=120)
        finally:
            proc.kill()
    assert proc.returncode == 130, out
    (run_dir,) = (tmp_path / "out" / "sigint").iterdir()
    events = [json.loads(line) for line in (run_dir / "journal.jsonl").read_text().splitlines()]
    assert [(e["fault"], e["early"]) for e in events if e["event"] == "fault.reverted"] == [("dup", True)]
    assert any(e["event"] == "ingest.summary" for e in events)
    assert json.loads((run_dir / "ingest" / CONTROL_FILE).read_text())["faults"] == {}
    (ledger,) = (tmp_path / "out" / ".ledger").glob("*.jsonl")
    assert not read_ledger(ledger).faults and read_ledger(ledger).closed


def test_bad_fault_params_name_file_line_and_fix(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO.format(ingest="ingest: {rate: 20/s}\n").replace(
        "    - {name: dup, type: data.duplicate, at: 5s, duration: 5s}",
        "    - {name: r, type: data.replay, at: 5s, duration: 5s, rate: 5000/s}\n"
        "    - {name: l, type: data.late, at: 5s, duration: 5s, delay: 0s}"))
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert f"{path}:8:" in str(err.value) and "up to 1000/s, e.g. 20/s" in str(err.value)
    assert f"{path}:9:" in str(err.value) and "delay must be more than 0s" in str(err.value)
