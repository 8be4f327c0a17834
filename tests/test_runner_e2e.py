"""End to end: the flagship scenario and its fragile twin, run by the real CLI as a child
process, against the real demo, with the real proxy and Locust; and every way out of a
run (SIGINT, SIGTERM, SIGKILL + `aftershock cleanup`) leaves no fault and no process."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from faults.proxy.client import ToxiproxyClient
from harness.core.processes import free_port

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "scenarios" / "feature-store-latency.yaml"
FRAGILE = ROOT / "scenarios" / "feature-store-latency-fragile.yaml"


def aftershock(*args: str, cwd: Path = ROOT, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "harness.cli", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kw)


def run_dir_of(output: Path, name: str) -> Path:
    (d,) = sorted((output / name).iterdir())
    return d


@pytest.fixture(scope="module")
def flagship_pair(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[int, str, Path]]:
    """The flagship and its fragile twin, --quick, run at once (the CI's time): by name, the
    exit code, the output and the folder the reports went to."""
    folder = tmp_path_factory.mktemp("flagship")
    # a relative reports folder, as the README's main command uses
    procs = {"resilient": aftershock("run", str(FLAGSHIP), "--quick", "-o", "reports", cwd=folder),
             "fragile": aftershock("run", str(FRAGILE), "--quick", "-o", str(folder / "fragile"))}
    outs = {name: proc.communicate(timeout=300)[0] for name, proc in procs.items()}
    return {"resilient": (procs["resilient"].returncode, outs["resilient"], folder / "reports"),
            "fragile": (procs["fragile"].returncode, outs["fragile"], folder / "fragile")}


def test_flagship_quick_passes_with_verdicts(flagship_pair: dict[str, tuple[int, str, Path]]) -> None:
    code, out, reports = flagship_pair["resilient"]
    assert code == 0, out
    run = run_dir_of(reports, "feature-store-latency")
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "passed"
    assert len(result["slos"]) == 4
    for v in result["slos"]:
        assert v["passed"] is True and v["measured"] is not None, v
    recovery = [v for v in result["slos"] if v["expect"].startswith("recovery_time")]
    assert recovery and 0 <= recovery[0]["measured"] < 10
    (fault,) = result["timeline"]["faults"]
    assert fault["injected_at_s"] is not None and fault["reverted_at_s"] > fault["injected_at_s"]
    assert abs(fault["inject_skew_s"]) < 1.0
    for name in ("journal.jsonl", "report.html", "summary.md"):
        assert (run / name).stat().st_size > 0
    events = [json.loads(line)["event"] for line in (run / "journal.jsonl").read_text().splitlines()]
    assert events.index("fault.injected") < events.index("fault.reverted") < events.index("run.ended")
    assert "Plotly.newPlot(" in (run / "report.html").read_text()  # the interactive timeline


def test_fragile_twin_fails_an_slo(flagship_pair: dict[str, tuple[int, str, Path]]) -> None:
    code, out, reports = flagship_pair["fragile"]
    assert code == 1, out
    result = json.loads((run_dir_of(reports, "feature-store-latency-fragile") / "result.json").read_text())
    latency = next(v for v in result["slos"] if v["expect"].startswith("p95"))
    assert latency["passed"] is False and latency["measured"] >= 250


def test_bad_scenario_exits_2_with_location(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(FLAGSHIP.read_text().replace("type: network.latency", "type: network.latncy"))
    proc = aftershock("run", str(bad))
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert f"{bad}:" in out and "timeline.faults[0].type" in out and "did you mean" in out
    assert "Traceback" not in out


# --- every way out reverts --------------------------------------------------------


@pytest.fixture
def external_proxy(tmp_path: Path):
    """A standalone proxy server in its own process, so we can see what a run leaves on it."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "proxy", "--port", str(port)], cwd=ROOT,
                            stdout=(tmp_path / "proxy.log").open("w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    client = ToxiproxyClient(url, timeout=1.0)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not client.running():
        time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _toxics_on(url: str) -> list[str]:
    proxies = ToxiproxyClient(url).proxies()
    return [t.name for p in proxies.values() for t in p.toxics]


def _wait_for_event(journal: Path, event: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if journal.exists() and f'"event": "{event}"' in journal.read_text():
            return
        time.sleep(0.2)
    raise AssertionError(f"no {event} in {journal} within {timeout}s")


def _started_pids(journal: Path) -> list[int]:
    events = [json.loads(line) for line in journal.read_text().splitlines()]
    return [e["pid"] for e in events if e["event"] == "process.started"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


def _start_mid_fault(tmp_path: Path, url: str) -> tuple[subprocess.Popen, Path]:
    proc = aftershock("run", str(FLAGSHIP), "-o", str(tmp_path), "--toxiproxy-url", url)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (tmp_path / "feature-store-latency").exists():
        time.sleep(0.2)
    journal = run_dir_of(tmp_path, "feature-store-latency") / "journal.jsonl"
    _wait_for_event(journal, "fault.injected", timeout=120)
    assert _toxics_on(url), "the fault should be on the proxy now"
    return proc, journal


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_mid_fault_reverts_and_stops_everything(tmp_path: Path, external_proxy: str, sig: int) -> None:
    proc, journal = _start_mid_fault(tmp_path, external_proxy)
    pids = _started_pids(journal)
    assert pids
    proc.send_signal(sig)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, out
    assert _toxics_on(external_proxy) == []
    assert ToxiproxyClient(external_proxy).proxies() == {}, "the run's proxies are deleted too"
    assert [p for p in pids if _alive(p)] == []
    assert "fault.reverted" in journal.read_text()


def test_sigkill_then_cleanup_removes_leftovers(tmp_path: Path, external_proxy: str) -> None:
    proc, journal = _start_mid_fault(tmp_path, external_proxy)
    pids = _started_pids(journal)
    proc.kill()
    proc.wait(timeout=10)
    assert _toxics_on(external_proxy), "SIGKILL leaves the toxic behind"
    assert any(_alive(p) for p in pids), "SIGKILL leaves the target behind"
    clean = aftershock("cleanup", "--reports", str(tmp_path))
    out, _ = clean.communicate(timeout=60)
    assert clean.returncode == 0, out
    assert _toxics_on(external_proxy) == []
    assert ToxiproxyClient(external_proxy).proxies() == {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.1)
    assert [p for p in pids if _alive(p)] == []
    again = aftershock("cleanup", "--reports", str(tmp_path))
    assert "nothing to clean up" in again.communicate(timeout=60)[0]


def test_outage_scenario_detects_through_a_probe(tmp_path: Path) -> None:
    proc = aftershock("run", str(ROOT / "scenarios" / "feature-store-outage.yaml"), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    run = run_dir_of(tmp_path, "feature-store-outage")
    result = json.loads((run / "result.json").read_text())
    detection = next(v for v in result["slos"] if v["expect"].startswith("detection_time"))
    assert 0 <= detection["measured"] < 5
    assert '"event": "probe.sample"' in (run / "journal.jsonl").read_text()


def test_stop_condition_aborts_with_exit_3_and_reverts(tmp_path: Path) -> None:
    scenario = tmp_path / "abort.yaml"
    scenario.write_text(
        (ROOT / "scenarios" / "feature-store-outage.yaml").read_text()
        .replace("name: feature-store-outage", "name: outage-abort")
        .replace("mode: resilient", "mode: fragile")
        .replace("error_rate > 50% for 5s", "error_rate > 50% for 1s")
    )
    proc = aftershock("run", str(scenario), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 3, out
    run = run_dir_of(tmp_path, "outage-abort")
    result = json.loads((run / "result.json").read_text())
    assert result["status"] == "aborted" and "error_rate > 50% for 1s" in result["message"]
    journal = (run / "journal.jsonl").read_text()
    assert journal.index('"event": "run.aborted"') < journal.index('"event": "fault.reverted"')
    # aborted within about a window of the fault starting, well before the planned end
    (fault,) = result["timeline"]["faults"]
    assert fault["reverted_at_s"] - fault["injected_at_s"] < fault["planned_duration_s"]


@pytest.mark.parametrize("name, code", [("spot-preemption", 0), ("spot-preemption-fragile", 1)])
def test_spot_preemption_of_the_training_job(tmp_path: Path, name: str, code: int) -> None:
    proc = aftershock("run", str(ROOT / "scenarios" / f"{name}.yaml"), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == code, out
    run = run_dir_of(tmp_path, name)
    verdicts = {v["expect"]: v for v in json.loads((run / "result.json").read_text())["slos"]}
    lost = verdicts["steps_lost <= 20"]
    assert lost["passed"] is (code == 0)
    assert verdicts["resume_time < 15s"]["measured"] is not None
    # the job really was killed and started again
    progress = (run / "trainer" / "progress.jsonl").read_text()
    assert progress.count('"event": "start"') >= 2 or '"event": "resumed"' in progress


def test_a_job_that_dies_before_it_is_ready_stops_the_run_with_its_log(tmp_path: Path) -> None:
    scenario = tmp_path / "dead-job.yaml"
    text = (ROOT / "scenarios" / "spot-preemption.yaml").read_text().replace("name: spot-preemption", "name: dead-job")
    # the trainer is given a flag it does not know: it exits at once, before any step
    scenario.write_text(text.replace("--step-time", "--no-such-flag"))
    proc = aftershock("run", str(scenario), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 2, out
    assert "trainer exited with code 2 before it was ready" in out and "--no-such-flag" in out
    assert "Traceback" not in out
    started = _started_pids(run_dir_of(tmp_path, "dead-job") / "journal.jsonl")
    assert started and not any(_alive(pid) for pid in started)


def test_warmup_load_is_sent_but_not_measured(tmp_path: Path) -> None:
    scenario = tmp_path / "warm.yaml"
    text = FLAGSHIP.read_text().replace("name: feature-store-latency", "name: warm")
    warmup = re.search(r"^  warmup: .*\n", text, flags=re.MULTILINE)
    assert warmup, "the flagship sets load.warmup"
    scenario.write_text(text.replace(warmup.group(0), "  warmup: 3s\n"))
    proc = aftershock("run", str(scenario), "--quick", "-o", str(tmp_path))
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out
    run = run_dir_of(tmp_path, "warm")
    journal = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    phase = next(e for e in journal if e["event"] == "phase")
    sent = [json.loads(line) for line in (run / "load" / "windows.jsonl").read_text().splitlines()]
    first_sent = min(r["index"] * r["size"] for r in sent)
    # the clock starts at a window boundary at least 3 s after the first request
    assert phase["warmup"] == 3.0 and phase["start"] >= first_sent + 3.0 - 1e-6
    journaled = [e["record"] for e in journal if e["event"] == "window"]
    assert journaled and all(r["index"] * r["size"] >= phase["start"] - 1e-6 for r in journaled)
    result = json.loads((run / "result.json").read_text())
    assert result["windows"] and all(w["t_s"] >= 0 for w in result["windows"])
    assert sum(r["requests"] for r in sent) > sum(w["requests"] for w in result["windows"])
