"""The truth suite: aftershock's figures and verdicts against a server that knows the truth.

A scripted server (tests/scripted_server.py, its own process, real sockets) answers with
a latency distribution, an error share, a fault, a recovery moment and an alert moment
that this test sets, and records every request it served. One real run of the real
runner (CLI child) and Locust child carries every SLO form twice: once where it must
pass and once where it must fail. Its windows are then checked against the server's own
record, which is the truth: scheduling noise on a busy machine moves both alike. A second,
11 s run with two faults carries what one fault cannot: a recovery cut short by the next
fault's start, and an alert still on from the first fault when the second starts.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from harness.core.windows import Window, latency_percentile_us, merge_windows, new_latency_histogram
from harness.engine.journal import read_journal
from harness.engine.phases import RunTimeline, Span
from harness.engine.record.events import windows_from_events
from harness.engine.slo import SloSettings, evaluate, parse_slo
from tests.client_time import MAX_CLIENT_MS, with_client_time
from tests.scripted_server import Phase, Script

ROOT = Path(__file__).resolve().parents[1]
WINDOW = 0.5  # seconds
RUN_LIMIT_S = 180

# The script: healthy 15-25 ms (10 % at 40-55 ms); a fault of 110-200 ms with 20 % 503s;
# 2 s of recovering (75-85 ms, 5 % 503s) after it ends; the alert fires 1.2 s into it.
SCRIPT = Script(
    seed=8,
    normal=Phase(latency_ms=[(0.9, 15, 25), (0.1, 40, 55)]),
    fault=Phase(latency_ms=[(0.7, 110, 140), (0.3, 150, 200)], error_share=0.2),
    recovering=Phase(latency_ms=[(1.0, 75, 85)], error_share=0.05),
    recovery_s=2.0,
    alert_after_s=1.2,
)
FAULT_AT, FAULT_FOR, DURATION = 4.0, 6.0, 15.0  # the fault long enough for 150+ answers

# (SLO, must it pass?) Each form has a case on each side of the scripted truth.
SLOS: list[tuple[str, bool]] = [
    # plain: baseline p95 is about 48 ms, the fault's about 195 ms
    ("p95(latency) < 100ms during baseline", True),
    ("p95(latency) < 100ms during slow", False),
    ("error_rate <= 30% during slow", True),
    ("error_rate <= 10% during slow", False),
    # window: every baseline window holds 40-60 ms requests above its p95 floor
    ("p99(latency) < 100ms in every window during baseline", True),
    ("p95(latency) < 30ms in every window during baseline", False),
    ("p95(latency) < 100ms in 50% of windows", True),  # the fault is 6 s of 15
    ("p95(latency) < 100ms in 90% of windows", False),
    # for: the fault violates 100 ms for its 6 s (recovering answers in 75-85 ms)
    ("p95(latency) < 100ms for 8s", True),
    ("p95(latency) < 100ms for 2s", False),
    # relative: the fault's p95 is about 4x the baseline's
    ("p95(latency) during slow < 6 * p95(latency) during baseline", True),
    ("p95(latency) during slow < 2 * p95(latency) during baseline", False),
    # degradation: the worst fault window's p95 is at most about 200/40 = 5x the baseline's
    ("degradation(p95(latency)) < 8", True),
    ("degradation(p95(latency)) < 2", False),
    # recovery (steady state below): the server recovers 2 s after the fault ends
    ("recovery_time < 4s", True),
    ("recovery_time < 1s", False),
    ("recovery_time(p95(latency) < 10ms) < 4s", False),  # never recovers
    # detection (settings below): the alert fires 1.2 s after the fault starts
    ("detection_time < 3s", True),
    ("detection_time < 0.5s", False),
    ("detection_time(probe.alert >= 2) < 3s", False),  # never detected
]
# recovering windows measure >= 75 ms (a client only adds time), healthy ones <= 55 ms + noise
STEADY_STATE = ["p95(latency) < 70ms", "error_rate <= 1%"]


def _scenario(
    server: str,
    folder: Path,
    slos: list[tuple[str, bool]] = SLOS,
    faults: list[tuple[str, float, float]] = [("slow", FAULT_AT, FAULT_FOR)],  # noqa: B006
    duration: float = DURATION,
) -> Path:
    """The scenario file: `faults` as (name, at s, for s), each a `scripted.fault`."""
    x = np.array([[0, 1], [1, 0], [2, 1], [1, 1]], dtype=np.float32)
    np.savez(folder / "rows.npz", x=x, label=x[:, 0].astype(np.int64))
    cases = "".join(f"  - {{name: {json.dumps(f'case {i}')}, expect: {json.dumps(e)}}}\n"
                    for i, (e, _) in enumerate(slos))
    steps = "".join(f"    - {{name: {name}, type: scripted.fault, at: {at}s, duration: {length}s, "
                    f'server: "{server}"}}\n' for name, at, length in faults)
    path = folder / "truth.yaml"
    path.write_text(f"""\
name: truth
target: {{url: "{server}", protocol: oip-v2, model: m}}
load: {{users: 5, duration: {duration}s, window: {WINDOW}s, data: {{dataset: rows.npz}}}}
timeline:
  baseline: {faults[0][1]}s
  faults:
{steps}probes:
  - {{name: alert, type: http, url: "{{target}}/alert", measure: json, json_path: firing, interval: 100ms}}
settings:
  recovery_windows: 3
  steady_state: {json.dumps(STEADY_STATE)}
  detection: ["probe.alert >= 1"]
slos:
{cases}""", encoding="utf-8")
    return path


def _fault_plugin(folder: Path) -> Path:
    """`scripted.fault` through the `aftershock.faults` entry-point group, as a third party's."""
    info = folder / "aftershock_truth_suite-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: aftershock-truth-suite\nVersion: 0\n")
    (info / "entry_points.txt").write_text(
        "[aftershock.faults]\nscripted.fault = tests.scripted_server:ScriptedFault\n")
    return folder


@dataclass
class TruthRun:
    result: dict[str, Any]
    windows: list[Window]  # the harness's, from the run's journal
    # the server's record: arrival (Unix s), service (s), status, connection, and service
    # plus the client's gaps around it on that connection (s): see tests/client_time.py
    requests: np.ndarray
    moments: dict[str, float | None]  # the server's phase changes (Unix s)
    origin: float  # the run's start (Unix s)

    def verdict(self, expect: str) -> dict[str, Any]:
        return next(v for v in self.result["slos"] if v["expect"] == expect)

    def fault_span(self) -> tuple[float, float]:
        (f,) = self.result["timeline"]["faults"]
        return self.origin + f["injected_at_s"], self.origin + f["reverted_at_s"]

    def harness(self, start: float, end: float) -> Window:
        """The harness's windows lying wholly in [start, end), merged."""
        inside = [w for w in self.windows if w.start >= start - 1e-6 and w.end <= end + 1e-6]
        assert inside, f"no window in [{start}, {end})"
        merged = merge_windows(inside)
        assert merged is not None
        return merged

    def served(self, start: float, end: float) -> np.ndarray:
        """The server's record of requests that arrived in [start, end)."""
        arrival = self.requests[:, 0]
        return self.requests[(arrival >= start) & (arrival < end)]


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def _serve_and_run(
    folder: Path, script: Script, scenario: Callable[[str, Path], Path]
) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """Start the scripted server, run `scenario(url, folder)` with the real CLI (the must-fail
    cases fail: exit 1): (result.json, the server's record, the journal's events)."""
    (folder / "script.json").write_text(script.model_dump_json(), encoding="utf-8")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(ROOT), str(_fault_plugin(folder / "plugins")), env.get("PYTHONPATH")) if p)
    server = subprocess.Popen([sys.executable, "-m", "tests.scripted_server", str(folder / "script.json")],
                              cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        url = server.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        run = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario(url, folder)),
                              "-o", str(folder / "out")], check=False, cwd=folder, env=env, capture_output=True,
                             text=True, timeout=RUN_LIMIT_S)
        assert run.returncode == 1, run.stdout + run.stderr  # the must-fail cases fail
        (run_dir,) = (folder / "out" / "truth").iterdir()
        result = json.loads((run_dir / "result.json").read_text())
        record = _get(f"{url}/record")
    finally:
        server.terminate()
        server.wait(10)
    return result, record, read_journal(run_dir / "journal.jsonl")


@pytest.fixture(scope="module")
def truth_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TruthRun]:
    result, record, events = _serve_and_run(tmp_path_factory.mktemp("truth"), SCRIPT, _scenario)
    phase = next(e for e in events if e["event"] == "phase" and e.get("phase") == "load")
    yield TruthRun(result, windows_from_events(events), with_client_time(record["requests"]),
                   record["moments"], float(phase["start"]))


@pytest.mark.parametrize(("expect", "must_pass"), SLOS, ids=[e for e, _ in SLOS])
def test_every_slo_form_passes_and_fails_where_the_truth_says(
    truth_run: TruthRun, expect: str, must_pass: bool
) -> None:
    v = truth_run.verdict(expect)
    assert v["passed"] is must_pass, v


def _ms_at(values_s: np.ndarray, p: float) -> float:
    return float(np.percentile(values_s * 1000, p, method="inverted_cdf"))  # nearest rank


def _tolerance(ms: float) -> float:
    return 0.02 * ms + 2.0


def _check(measured: Window, served: np.ndarray, p: float | None, what: str) -> None:
    """`measured`'s pP (None: max) lies between the server's truth and that plus the client's
    time (tests/client_time.py says why that bounds what the client saw)."""
    ok = served[served[:, 2] == 200]
    if p is None:
        got = measured.latency.get_max_value() / 1000
        low, high = float(ok[:, 1].max()) * 1000, float(ok[:, 4].max()) * 1000
    else:
        got = latency_percentile_us(measured.latency, p) / 1000
        low, high = _ms_at(ok[:, 1], p), _ms_at(ok[:, 4], p)
    name = f"{what} {'max' if p is None else f'p{p:g}'}"
    print(f"{name}: measured {got:.2f} ms, served {low:.2f} ms (+{got - low:.2f}); "
          f"with the client's own time at most {high:.2f} ms")
    assert low - _tolerance(low) <= got <= high + _tolerance(high), name


def _compare_percentiles(run: TruthRun, start: float, end: float, what: str) -> None:
    measured = run.harness(start, end)
    served = run.served(start, end)
    assert measured.latency.total_count == pytest.approx(int(np.sum(served[:, 2] == 200)), abs=2)
    client_ms = float(np.median(served[:, 4] - served[:, 1])) * 1000
    assert client_ms <= MAX_CLIENT_MS, f"{what}: the client took {client_ms:.2f} ms per request"
    for p in (50, 95, 99):
        _check(measured, served, p, what)


def test_percentiles_match_the_servers_record(truth_run: TruthRun) -> None:
    run, m = truth_run, truth_run.moments
    first = min(w.start for w in run.windows if w.start >= run.origin - 1e-6)
    _compare_percentiles(run, first, _floor(m["fault_started"]), "baseline")
    _compare_percentiles(run, _ceil(m["fault_started"]), _floor(m["fault_ended"]), "fault")
    last = max(w.end for w in run.windows)
    _compare_percentiles(run, _ceil(m["recovered"]), last, "after recovery")


def test_requests_in_flight_at_the_stop_are_recorded_as_served(truth_run: TruthRun) -> None:
    """The windows around the stop hold the requests in flight when the load stopped."""
    last = max(w.start for w in truth_run.windows if w.requests)
    for start in (last - WINDOW, last):
        measured = truth_run.harness(start, start + WINDOW)
        served = truth_run.served(start, start + WINDOW)
        _check(measured, served, 99, f"window at +{start - truth_run.origin:g} s")
        _check(measured, served, None, f"window at +{start - truth_run.origin:g} s")


def test_error_rate_and_throughput_match_the_script_and_the_record(truth_run: TruthRun) -> None:
    run, m = truth_run, truth_run.moments
    start, end = _ceil(m["fault_started"]), _floor(m["fault_ended"])
    measured, served = run.harness(start, end), run.served(start, end)
    low, high = _binomial_interval(measured.requests, SCRIPT.fault.error_share, 0.99)
    rate = measured.failed / measured.requests
    print(f"fault error rate {rate:.3f} of {measured.requests} (99 % interval of the script "
          f"{low / measured.requests:.3f}-{high / measured.requests:.3f}); "
          f"server {np.mean(served[:, 2] != 200):.3f}")
    assert low <= measured.failed <= high, (measured.failed, low, high)
    assert measured.failures == {"http_503": pytest.approx(int(np.sum(served[:, 2] == 503)), abs=2)}
    first = min(w.start for w in run.windows if w.start >= run.origin - 1e-6)
    last = max(w.end for w in run.windows if w.end <= run.origin + DURATION + 1e-6)
    total, arrived = run.harness(first, last), run.served(first, last)
    print(f"throughput {total.requests / (last - first):.1f} req/s; server {len(arrived) / (last - first):.1f}")
    assert total.requests == pytest.approx(len(arrived), rel=0.02)


def test_recovery_and_detection_times_within_one_window_of_the_script(truth_run: TruthRun) -> None:
    run, m = truth_run, truth_run.moments
    injected, reverted = run.fault_span()
    assert abs(injected - m["fault_started"]) < 0.2 and abs(reverted - m["fault_ended"]) < 0.2
    recovery = run.verdict("recovery_time < 4s")["measured"]
    detection = run.verdict("detection_time < 3s")["measured"]
    true_recovery, true_detection = m["recovered"] - reverted, m["alert_on"] - injected
    print(f"recovery {recovery:.2f} s (true {true_recovery:.2f}); "
          f"detection {detection:.2f} s (true {true_detection:.2f})")
    assert abs(recovery - true_recovery) <= WINDOW
    assert abs(detection - true_detection) <= WINDOW + 0.1  # + the probe's 100 ms interval


# --- two faults, the second starting inside the first's recovery -------------------------

# a at 2 s for 2 s, b at 5 s for 1.5 s: a's 2 s of recovering are cut after 1 s by b, and
# a's alert (0.6 s after it starts, off when it recovers) still fires when b starts.
TWO_FAULTS = [("a", 2.0, 2.0), ("b", 5.0, 1.5)]
TWO_FAULT_SCRIPT = Script(
    seed=9,
    normal=Phase(latency_ms=[(1.0, 15, 25)]),
    fault=Phase(latency_ms=[(1.0, 110, 140)]),
    recovering=Phase(latency_ms=[(1.0, 75, 85)]),
    recovery_s=2.0,
    alert_after_s=0.6,
)
TwoFaultRun = tuple[dict[str, Any], dict[str, Any]]  # verdicts by SLO text, the server's record
TWO_FAULT_SLOS: list[tuple[str, bool]] = [
    ("recovery_time of b < 4s", True),
    ("recovery_time of a < 4s", False),  # not recovered within 1 s: b started
    ("detection_time of a < 3s", True),
    ("detection_time of b < 3s", False),  # a false alarm: a's alert already on
]


@pytest.fixture(scope="module")
def two_fault_run(tmp_path_factory: pytest.TempPathFactory) -> TwoFaultRun:
    def scenario(url: str, folder: Path) -> Path:
        return _scenario(url, folder, TWO_FAULT_SLOS, TWO_FAULTS, duration=11.0)

    result, record, _ = _serve_and_run(tmp_path_factory.mktemp("two"), TWO_FAULT_SCRIPT, scenario)
    verdicts = {v["expect"]: v for v in result["slos"]}
    for expect, must_pass in TWO_FAULT_SLOS:
        assert verdicts[expect]["passed"] is must_pass, verdicts[expect]
    return verdicts, record


def test_a_recovery_cut_by_the_next_fault_fails_as_not_recovered(two_fault_run: TwoFaultRun) -> None:
    verdicts, record = two_fault_run
    (a,), b = record["earlier"], record["moments"]
    assert a["recovered"] > b["fault_started"]  # the truth: a was still recovering when b came
    cut = verdicts["recovery_time of a < 4s"]
    print(cut["detail"])
    assert cut["measured"] is None and "a not recovered within" in cut["detail"]
    assert "b started" in cut["detail"]
    recovered = verdicts["recovery_time of b < 4s"]["measured"]  # the twin, against the truth
    assert abs(recovered - (b["recovered"] - b["fault_ended"])) <= WINDOW + 0.2


def test_an_alert_already_on_when_a_fault_starts_is_a_false_alarm(two_fault_run: TwoFaultRun) -> None:
    verdicts, record = two_fault_run
    (a,), b = record["earlier"], record["moments"]
    assert a["alert_on"] < b["fault_started"] < a["recovered"]  # the truth: a's alert still on
    alarm = verdicts["detection_time of b < 3s"]
    print(alarm["detail"])
    assert alarm["measured"] is None and "false alarm" in alarm["detail"]
    detected = verdicts["detection_time of a < 3s"]["measured"]  # the twin, against the truth
    assert abs(detected - (a["alert_on"] - a["fault_started"])) <= WINDOW + 0.1


def _binomial_interval(n: int, share: float, confidence: float) -> tuple[int, int]:
    """The central `confidence` interval of Binomial(n, share): the counts a true share gives."""
    tail = (1 - confidence) / 2
    cdf, low, high = 0.0, None, n
    for k in range(n + 1):
        cdf += math.comb(n, k) * share**k * (1 - share) ** (n - k)
        if low is None and cdf > tail:
            low = k
        if cdf >= 1 - tail:
            high = k
            break
    return low or 0, high


def _floor(t: float | None) -> float:
    assert t is not None
    return math.floor(t / WINDOW) * WINDOW


def _ceil(t: float | None) -> float:
    assert t is not None
    return math.ceil(t / WINDOW) * WINDOW


# --- the percentile definition, on a set of latencies known exactly ------------------


def _window(index: int, latencies_ms: list[float]) -> Window:
    w = Window(index=index, size=1.0, requests=len(latencies_ms), latency=new_latency_histogram())
    for ms in latencies_ms:
        w.latency.record_value(round(ms * 1000))
        w.latency_sum_us += ms * 1000
    return w


def test_p95_is_a_value_at_most_5_percent_of_requests_lie_above() -> None:
    """15 requests, one at 278 ms: the 14th value (93 %) is no p95; the 15th is."""
    windows = [_window(i, [20.0] * 14 + [278.0]) for i in range(1_000, 1_004)]
    assert latency_percentile_us(windows[0].latency, 95) / 1000 == pytest.approx(278, rel=1e-3)
    assert latency_percentile_us(windows[0].latency, 93) / 1000 == pytest.approx(20, rel=1e-3)
    timeline = RunTimeline(run=Span("run", "run", 1_000.0, 1_004.0))
    settings = SloSettings()
    every = evaluate(parse_slo("p95(latency) < 250ms in every window"), windows, timeline, settings)
    assert every.passed is False and every.measured == pytest.approx(278, rel=1e-3)
    plain = evaluate(parse_slo("p95(latency) < 250ms"), windows, timeline, settings)
    assert plain.passed is False
    # 20 requests, one slow: p95 is the 19th (at most 5 % above it), so 20 ms holds
    twenty = [_window(2_000, [20.0] * 19 + [278.0])]
    run = RunTimeline(run=Span("run", "run", 2_000.0, 2_001.0))
    assert evaluate(parse_slo("p95(latency) < 250ms"), twenty, run, settings).passed is True
    assert evaluate(parse_slo("p96(latency) < 250ms"), twenty, run, settings).passed is False
