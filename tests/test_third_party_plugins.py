"""A third-party package adds one of every plug-in kind, and a scenario uses all five.

tests/plugins/aftershock_extra is a real package with its own pyproject.toml; it is
pip-installed (no dependencies, no build isolation) into a temporary folder put on the
path of this process and of the run's children (the shared venv stays clean): aftershock
finds its fault, data fault, attack, probe and protocol through their entry points only.
The run checks each against a truth the test controls: the reference server predicts
column 0, which is each row's label, so the data fault (which moves column 0) must drop
accuracy while it acts and only then; the probe must read the fault's flag exactly while
the fault acts; the attack must see every row it sent answered right.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from harness.core.registry import ATTACKS, FAULTS, PROBES, PROTOCOLS, PluginError
from harness.engine.load.reference_server import ReferenceServerProcess
from tests.plugin_support import install_extra, reload_registries

ROOT = Path(__file__).resolve().parents[1]
RUN_LIMIT_S = 180


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """aftershock-extra installed into a folder on sys.path (the registry reads its dist-info)."""
    target = install_extra(tmp_path_factory.mktemp("extra"))
    sys.path.insert(0, str(target))
    reload_registries()
    yield target
    sys.path.remove(str(target))
    reload_registries()


def test_the_registry_finds_each_kind_from_the_package(installed: Path) -> None:
    assert (installed / "aftershock_extra-0.1.0.dist-info" / "entry_points.txt").exists()
    assert FAULTS.get("extra.flag").__module__ == "aftershock_extra.flag"
    assert FAULTS.get("extra.bump").__module__ == "aftershock_extra.bump"
    assert ATTACKS.get("extra.ask").__module__ == "aftershock_extra.ask"
    assert PROBES.get("extra.flag").__module__ == "aftershock_extra.flag"
    assert PROTOCOLS.get("extra-oip").__module__ == "aftershock_extra.protocol"
    assert "network.latency" in FAULTS.names()  # the built-ins come the same way
    with pytest.raises(PluginError, match=r"unknown attack type 'extra\.aks' \(did you mean 'extra\.ask'\?\)"):
        ATTACKS.get("extra.aks")


def broken_distribution(site: Path, entry: str) -> None:
    """A package whose only entry point is `entry` in aftershock.faults (dist-info alone)."""
    info = site / "broken_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[aftershock.faults]\n{entry}\n")


@pytest.mark.parametrize(("entry", "says"), [
    ("bad.missing = no_such_module:Fault", r"cannot import 'no_such_module'"),
    ("bad.base = aftershock_extra.flag:FlagParams", r"is not a subclass of harness\.core\.fault\.Fault"),
    ("bad.name = aftershock_extra.flag:FlagFault", r"\.type is 'extra\.flag', not the entry point's name"),
])
def test_a_broken_plugin_names_its_entry_point_and_package(installed: Path, tmp_path: Path, entry: str,
                                                           says: str) -> None:
    broken_distribution(tmp_path, entry)
    sys.path.insert(0, str(tmp_path))
    FAULTS.reload()
    try:
        name = entry.split(" = ")[0]
        with pytest.raises(PluginError, match=says) as caught:
            FAULTS.get(name)
        assert f"entry point '{entry}' in group aftershock.faults (package broken-plugin)" in str(caught.value)
        with pytest.raises(PluginError, match=says):
            FAULTS.types()  # a broken plug-in is never skipped in silence
    finally:
        sys.path.remove(str(tmp_path))
        FAULTS.reload()


SCENARIO = """\
name: extra-plugins
target:
  url: {url}
  protocol: extra-oip
  model: m
probes:
  - {{name: flag, type: extra.flag, path: {flag}, interval: 0.2s}}
load: {{users: 2, duration: 10s, window: 0.5s, data: {{dataset: {data}, labels: true}}}}
timeline:
  baseline: 2s
  faults:
    - {{name: raise-flag, type: extra.flag, path: {flag}, at: 3s, duration: 3s}}
    - {{name: bump, type: extra.bump, step: 5, at: 3s, duration: 3s}}
  attacks:
    - {{name: ask, type: extra.ask, samples: 4, at: 2s, duration: 1.5s}}
slos:
  - {{name: flag raised while the fault acts, expect: min(probe.flag) during raise-flag == 1}}
  - {{name: flag down before, expect: max(probe.flag) during baseline == 0}}
  - {{name: right before the bump, expect: accuracy >= 99% during baseline}}
  - {{name: wrong during the bump, expect: accuracy <= 20% during bump}}
  - {{name: the attack asked, expect: queries >= 8 during ask}}
  - {{name: and was answered right, expect: clean_accuracy == 1 during ask}}
"""


def test_a_scenario_uses_all_five_third_party_plugins(installed: Path, tmp_path: Path) -> None:
    with ReferenceServerProcess() as server:  # predicts int(row[0]) for each row
        run_the_scenario(installed, tmp_path, server.url)


def run_the_scenario(installed: Path, tmp_path: Path, url: str) -> None:
    data = tmp_path / "rows.npz"
    x = np.array([[0, 1], [1, 1], [2, 1], [0, 1]], dtype=np.float32)
    np.savez(data, x=x, label=np.array([0, 1, 2, 0]))  # every row labelled as the server predicts
    scenario = tmp_path / "extra.yaml"
    scenario.write_text(SCENARIO.format(flag=tmp_path / "flag", data=data, url=url))
    env = os.environ | {"PYTHONPATH": os.pathsep.join(p for p in (str(installed), os.environ.get("PYTHONPATH")) if p)}
    out = tmp_path / "reports"
    proc = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(scenario), "-o", str(out)], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=RUN_LIMIT_S, check=False)
    (run,) = sorted((out / "extra-plugins").iterdir())
    result = json.loads((run / "result.json").read_text())
    verdicts = {v["name"]: (v["passed"], v.get("measured")) for v in result["slos"]}
    assert proc.returncode == 0, (proc.stdout[-3000:], verdicts)
    assert all(passed is True for passed, _ in verdicts.values()), verdicts
    assert len(verdicts) == 6
    events = [json.loads(line) for line in (run / "journal.jsonl").read_text().splitlines()]
    reverted = {e.get("fault") for e in events if e["event"] == "fault.reverted"}
    assert {"raise-flag", "bump"} <= reverted
    assert not (tmp_path / "flag").exists()  # the fault lowered its flag


def test_a_plugin_whose_dependency_is_missing_is_left_out_and_named(tmp_path: Path) -> None:
    (tmp_path / "needs_more.py").write_text("import no_such_dependency_here  # noqa: F401\n")
    broken_distribution(tmp_path, "more.fault = needs_more:Fault")
    sys.path.insert(0, str(tmp_path))
    FAULTS.reload()
    try:
        with pytest.raises(PluginError, match=r"fault type 'more\.fault' needs no_such_dependency_here "
                                              r"\(not installed here; entry point 'more\.fault = needs_more:Fault'"):
            FAULTS.get("more.fault")
        types = FAULTS.types()  # a core install lists what it can import, as without the ml extra
        assert "more.fault" not in types and "network.latency" in types
    finally:
        sys.path.remove(str(tmp_path))
        FAULTS.reload()
