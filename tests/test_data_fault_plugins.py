"""Data faults reach the load through the one fault registry, and only a load that applies them.

A third-party data fault (extra.bump of tests/plugins/aftershock_extra) is registered the way
a package registers it: an `aftershock.faults` entry point, pip-installed into a folder on
the path (tests/plugin_support.py; the shared venv stays clean). It runs in a real Locust
child, inside a user's own locustfile that opts in, against the reference server, whose
predictions (column 0 of each row) are the truth: the fault moves column 0, so no row
is predicted right while it acts.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from harness.core.fault import FaultContext
from harness.core.registry import FAULTS, fault_types
from harness.core.windows import Window
from harness.engine.load import LoadConfig, LoadProcess
from harness.engine.load.reference_server import ReferenceServerProcess
from harness.engine.scenario.loader import ScenarioError, parse_scenario
from tests.load_support import drive_load
from tests.plugin_support import install_extra

RUN_LIMIT_S = 90

OPTED_IN = """
from locust import task
import harness.engine.load.model_user as aftershock


class Mine(aftershock.ModelUser):  # the dataset's batches, through the data faults
    pass
"""

OWN_PAYLOADS = """
from locust import HttpUser, task


class Theirs(HttpUser):
    @task
    def predict(self):
        self.client.post("/v2/models/m/infer", json={"inputs": []})
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_extra(tmp_path_factory.mktemp("extra"))


@pytest.fixture
def third_party(installed: Path, monkeypatch: pytest.MonkeyPatch):
    """The aftershock-extra distribution on the path of this process and of its children."""
    monkeypatch.syspath_prepend(str(installed))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (str(installed), os.environ.get("PYTHONPATH")) if p))
    FAULTS.reload()
    yield fault_types()["extra.bump"]
    FAULTS.reload()


def scenario(locustfile: Path | None, fault: str = "{name: wrong, type: data.schema_break, kind: wrong_dtype, at: 2s, duration: 2s}") -> str:
    load = f"locustfile: {locustfile}" if locustfile else "users: 1"
    return f"""
name: byo
target: {{url: "http://127.0.0.1:9", protocol: oip-v2, model: m}}
load: {{duration: 6s, {load}}}
timeline:
  baseline: 1s
  faults:
    - {fault}
slos:
  - {{name: some answer, expect: error_rate < 100%}}
"""


def test_a_locustfile_that_does_not_apply_data_faults_is_refused(tmp_path: Path) -> None:
    theirs = tmp_path / "theirs.py"
    theirs.write_text(OWN_PAYLOADS)
    with pytest.raises(ScenarioError) as err:
        parse_scenario(scenario(theirs), "byo.yaml")
    assert "does not run it" in str(err.value) and "byo.yaml:" in str(err.value)
    path = tmp_path / "byo.yaml"
    path.write_text(scenario(theirs))
    cli = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(path)], capture_output=True, text=True,
                         timeout=120, check=False)  # fmt: skip
    said = " ".join((cli.stdout + cli.stderr).split())  # the console wraps long lines
    assert cli.returncode == 2 and "does not run it" in said and "byo.yaml:8:7" in said  # before any load
    mine = tmp_path / "mine.py"
    mine.write_text(OPTED_IN)
    parse_scenario(scenario(mine), "byo.yaml")  # opted in: accepted
    parse_scenario(scenario(None), "byo.yaml")  # aftershock's own locustfile


def test_a_label_fault_without_labels_is_refused() -> None:
    text = scenario(None, "{name: more-fraud, type: data.prior_shift, proportions: {0: 1}, at: 2s, duration: 2s}")
    parse_scenario(text, "s.yaml")
    with pytest.raises(ScenarioError, match="load.data.labels: true"):
        parse_scenario(text.replace("users: 1", "users: 1, data: {labels: false}"), "s.yaml")


def test_third_party_data_fault_is_validated_through_the_registry(third_party, tmp_path: Path) -> None:
    loaded = parse_scenario(scenario(None, "{name: bump, type: extra.bump, step: 2, at: 2s, duration: 2s}"), "s.yaml")
    ((cls, params),) = loaded.faults
    assert cls is third_party and params.step == 2
    theirs = tmp_path / "theirs.py"
    theirs.write_text(OWN_PAYLOADS)
    with pytest.raises(ScenarioError, match="extra.bump acts on the payloads"):
        parse_scenario(scenario(theirs, "{name: bump, type: extra.bump, at: 2s, duration: 2s}"), "s.yaml")


def test_third_party_data_fault_acts_in_a_user_locustfile(third_party, tmp_path: Path) -> None:
    x = np.array([[0, 1], [1, 1], [2, 1], [0, 1]], dtype=np.float32)
    data = tmp_path / "payloads.npz"
    np.savez(data, x=x, label=np.array([0, 1, 2, 0]))  # every row labelled as the server predicts
    mine = tmp_path / "mine.py"
    mine.write_text(OPTED_IN)
    ctx = FaultContext(toxiproxy_url="", load_dir=tmp_path / "load", seed=1)
    fault = third_party("bump", third_party.Params.model_validate({"step": 5}), ctx)
    windows: dict[int, Window] = {}
    span: list[float] = []

    async def drive() -> None:
        cfg = LoadConfig(target_url=srv.url, model="m", dataset=str(data), users=2, duration=5, window=0.5,
                         locustfile=str(mine))  # fmt: skip
        lp = LoadProcess(cfg, workdir=tmp_path / "load")

        async def timeline() -> None:
            while not windows:
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            span.append(time.time())
            fault.inject()
            await asyncio.sleep(2.0)
            fault.revert()
            span.append(time.time())

        await drive_load(lp, timeline, windows, [fault])

    with ReferenceServerProcess() as srv:
        asyncio.run(asyncio.wait_for(drive(), RUN_LIMIT_S))
    start, end = span
    before = [w for w in windows.values() if w.end <= start]
    during = [w for w in windows.values() if w.start >= start + 0.3 and w.end <= end]
    assert before and during
    assert all(w.labelled and w.correct == w.labelled for w in before)
    assert all(w.labelled and w.correct == 0 for w in during)  # the server saw every row moved
    assert fault.metrics() == {"changed_share": 1.0}
