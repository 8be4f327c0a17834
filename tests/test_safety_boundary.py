"""The safety boundary: every address is checked on its final form, before any connect.

Bypass attempts never send a packet off the machine: each refusal is asserted to
happen before the connect call (the error comes from the check, with nothing
started), and the end-to-end runs go inside a network namespace that has only a
loopback interface (`unshare -n`, root only; skipped elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from faults.proxy import EmbeddedProxy
from faults.proxy.client import ToxiproxyClient
from harness.core.containers import docker_client
from harness.core.fault import FaultContext, UserError
from harness.core.registry import fault_types
from harness.core.safety import AddressRefused, check_host_allowed, host_of
from harness.engine.journal import Journal
from harness.engine.ledger import Ledger
from harness.engine.probe_sampler import build_probes
from harness.engine.scenario.loader import parse_scenario
from harness.engine.scenario.model import Scenario
from harness.engine.target import SystemUnderTest
from tests.tiny_target import write_dataset

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = "10.1.2.3"  # never contacted: every test below must refuse it before connecting

BYPASSES = [
    f"http://{OUTSIDE}:8080",
    f"http://127.0.0.1:1@{OUTSIDE}:8080",  # what `http://{{deps[fs]}}@10.1.2.3:8080` fills to
    f"http://127.0.0.1:80\\@{OUTSIDE}/",  # urllib3 reads 127.0.0.1, httpx reads 10.1.2.3
    f"http://127.0.0.1:1 @{OUTSIDE}/",
    f"tcp://{OUTSIDE}:2375",
    f"{OUTSIDE}:8474",
    "http://0.0.0.0:8080",
    "http://[::ffff:10.1.2.3]:80/",
    "http://localhost.:80/",
]


@pytest.mark.parametrize("address", BYPASSES)
def test_addresses_outside_loopback_or_read_apart_are_refused(address: str) -> None:
    with pytest.raises(AddressRefused):
        check_host_allowed(address, [])


@pytest.mark.parametrize("address", ["http://127.0.0.1:8080/x", "http://[::1]:80", "localhost:9",
                                     "127.9.9.9:1", "::1", "unix:///var/run/docker.sock",
                                     "http://user:pw@127.0.0.1:1/"])
def test_loopback_and_local_sockets_pass(address: str) -> None:
    assert check_host_allowed(address, []) == address


def test_allowed_hosts_open_exactly_the_named_host() -> None:
    assert check_host_allowed(f"http://{OUTSIDE}:8080", [OUTSIDE]) == f"http://{OUTSIDE}:8080"
    assert host_of(f"http://127.0.0.1:1@{OUTSIDE}:8080") == OUTSIDE
    with pytest.raises(AddressRefused, match="--allow-host 10.1.2.4"):
        check_host_allowed("http://10.1.2.4:8080", [OUTSIDE])
    with pytest.raises(AddressRefused, match="ambiguous"):  # allowing the decoy does not help
        check_host_allowed(f"http://127.0.0.1:80\\@{OUTSIDE}/", [OUTSIDE])


def scenario_yaml(folder: Path, target_url: str, **extra: object) -> str:
    write_dataset(folder)
    doc = {
        "name": "bypass",
        "target": {"url": target_url, "protocol": "oip-v2", "model": "m"},
        "dependencies": {"fs": {"upstream": "127.0.0.1:9"}},
        "load": {"users": 1, "duration": "2s", "data": {"dataset": "rows.npz"}},
        "slos": [{"name": "a", "expect": "availability >= 1%"}],
        **extra,
    }
    return yaml.safe_dump(doc)


@pytest.mark.parametrize("url", [f"http://{OUTSIDE}:8080/{{deps[fs]}}", f"http://{{deps[fs]}}@{OUTSIDE}:8080",
                                 f"http://{{deps[fs]}}\\@{OUTSIDE}:8080"])
def test_validate_checks_target_url_with_placeholders_filled(tmp_path: Path, url: str) -> None:
    with pytest.raises(UserError, match="target.url") as err:
        parse_scenario(scenario_yaml(tmp_path, url), "s.yaml")
    assert "10.1.2.3" in str(err.value)
    # the same URL through a dependency on loopback validates
    parse_scenario(scenario_yaml(tmp_path, "http://{deps[fs]}/v2"), "s.yaml")


def test_validate_checks_toxiproxy_url_and_docker_host(tmp_path: Path) -> None:
    text = scenario_yaml(tmp_path, "http://127.0.0.1:9", toxiproxy={"url": f"http://{OUTSIDE}:8474"})
    with pytest.raises(UserError, match=r"toxiproxy\.url.*10\.1\.2\.3"):
        parse_scenario(text, "s.yaml")
    doc = yaml.safe_load(scenario_yaml(tmp_path, "http://127.0.0.1:9"))
    doc["dependencies"]["fs"] = {"container": {"image": "x", "command": ["serve", "{port}"],
                                                "docker_host": f"tcp://{OUTSIDE}:2375"}}
    with pytest.raises(UserError, match=r"docker_host.*10\.1\.2\.3"):
        parse_scenario(yaml.safe_dump(doc), "s.yaml")
    doc["safety"] = {"allowed_hosts": [OUTSIDE]}
    parse_scenario(yaml.safe_dump(doc), "s.yaml")  # named: allowed
    doc = yaml.safe_load(scenario_yaml(tmp_path, "http://127.0.0.1:9"))
    doc["load"]["duration"] = "10s"
    doc["timeline"] = {"baseline": "1s", "faults": [{"name": "p", "type": "container.pause", "label": "app=x",
                                                     "at": "2s", "duration": "1s",
                                                     "docker_host": f"ssh://me@{OUTSIDE}"}]}
    with pytest.raises(UserError, match=r"timeline\.faults\[0\].*docker_host: 10\.1\.2\.3"):
        parse_scenario(yaml.safe_dump(doc), "s.yaml")


def test_the_running_target_url_is_checked_after_filling_before_any_connect(tmp_path: Path) -> None:
    """A scenario that skipped the loader (built in code) is still refused at run time."""
    doc = yaml.safe_load(scenario_yaml(tmp_path, f"http://{{deps[fs]}}@{OUTSIDE}:8080"))
    scenario = Scenario.model_validate(doc)
    with EmbeddedProxy() as proxy:
        sut = SystemUnderTest(scenario, tmp_path / "run", ToxiproxyClient(proxy.api_url),
                              Ledger(tmp_path / "ledger", "r1"), Journal(tmp_path / "journal.jsonl"))
        try:
            with pytest.raises(AddressRefused, match="target: 10.1.2.3"):
                sut.start()
            assert sut.base_url == f"http://127.0.0.1:{sut.dependencies['fs'].listen.split(':')[1]}@{OUTSIDE}:8080"
        finally:
            sut.stop()


def test_connect_call_sites_refuse_before_connecting(tmp_path: Path) -> None:
    with pytest.raises(AddressRefused, match="toxiproxy url"):
        ToxiproxyClient(f"http://{OUTSIDE}:8474")
    with pytest.raises(AddressRefused, match="docker_host"):
        docker_client(f"tcp://{OUTSIDE}:2375")
    with pytest.raises(AddressRefused, match="probe p"):
        build_probes([{"name": "p", "type": "http", "url": f"http://{{deps[fs]}}@{OUTSIDE}/"}],
                     "http://127.0.0.1:1", {"fs": "127.0.0.1:2"})
    assert build_probes([{"name": "p", "type": "http", "url": "{target}/x"}], f"http://{OUTSIDE}:1", {},
                        allowed_hosts=[OUTSIDE])[0].hosts() == [f"http://{OUTSIDE}:1/x"]


def kubeconfig(path: Path, server: str, **cluster: str) -> str:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    }))
    return str(path)


def test_kubernetes_needs_a_named_cluster_whose_api_server_passes_the_check(tmp_path: Path) -> None:
    cls = fault_types()["kubernetes.pod_delete"]
    with pytest.raises(ValueError, match="never falls back"):
        cls.Params(label_selector="app=x")
    params = cls.Params(label_selector="app=x", kubeconfig=kubeconfig(tmp_path / "kc", f"https://{OUTSIDE}:6443"))
    with pytest.raises(AddressRefused, match="Kubernetes API server: 10.1.2.3"):
        cls("k", params, FaultContext(toxiproxy_url="")).inject()
    undo = fault_types()["kubernetes.preempt"].replay_undo
    with pytest.raises(AddressRefused):
        undo({"uncordon": ["n1"], "kubeconfig": str(tmp_path / "kc"), "context": None})
    via = kubeconfig(tmp_path / "kc2", "https://127.0.0.1:6443", **{"proxy-url": f"http://{OUTSIDE}:3128"})
    with pytest.raises(AddressRefused, match="Kubernetes proxy-url: 10.1.2.3"):
        cls("k", cls.Params(label_selector="app=x", kubeconfig=via), FaultContext(toxiproxy_url="")).inject()


# --- end to end, in a network namespace with nothing but loopback ---------------------------

needs_netns = pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"),
                                 reason="needs root and unshare(1) for a network namespace without a route out")


def run_isolated(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    """`aftershock ARGS` in a fresh network namespace: only `lo`, no route anywhere else."""
    cmd = f"ip link set lo up && exec {sys.executable} -m harness.cli " + " ".join(f"'{a}'" for a in args)
    return subprocess.run(["unshare", "-n", "sh", "-c", cmd], check=False, cwd=cwd, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})


@needs_netns
@pytest.mark.parametrize("url", [f"http://{OUTSIDE}:8080/{{deps[fs]}}", f"http://{{deps[fs]}}@{OUTSIDE}:8080"])
def test_run_refuses_the_filled_target_url_before_starting_anything(tmp_path: Path, url: str) -> None:
    (tmp_path / "s.yaml").write_text(scenario_yaml(tmp_path, url))
    r = run_isolated("run", "s.yaml", "-o", "out", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "target.url" in r.stderr and "10.1.2.3 is outside loopback" in r.stderr
    assert not (tmp_path / "out").exists()  # nothing started: no run folder, no ledger


@needs_netns
def test_run_refuses_an_outside_toxiproxy_url_before_connecting(tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text(scenario_yaml(tmp_path, "http://{deps[fs]}"))
    r = run_isolated("run", "s.yaml", "-o", "out", "--toxiproxy-url", f"http://{OUTSIDE}:8474", cwd=tmp_path)
    assert r.returncode == 2, r.stdout + r.stderr
    assert "toxiproxy url: 10.1.2.3 is outside loopback" in r.stderr
    journal = next((tmp_path / "out").rglob("journal.jsonl")).read_text()
    assert "process.started" not in journal and "target.ready" not in journal


def test_harness_clients_ignore_proxies_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """HTTP_PROXY would carry a checked loopback request to another host: a loopback canary
    stands in for that host and must see no connection."""
    import socket

    canary = socket.create_server(("127.0.0.1", 0))
    canary.settimeout(0.5)
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{canary.getsockname()[1]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    try:
        with EmbeddedProxy() as proxy:
            assert ToxiproxyClient(proxy.api_url).proxies() == {}
            with pytest.raises(socket.timeout):
                canary.accept()
    finally:
        canary.close()


def test_validating_probe_addresses_starts_nothing(tmp_path: Path) -> None:
    """The loader checks a webhook probe's listen address without opening its receiver."""
    import socket

    from harness.core.processes import free_port

    port = free_port()
    doc = yaml.safe_load(scenario_yaml(tmp_path, "http://{deps[fs]}"))
    doc["probes"] = [{"name": "hook", "type": "webhook", "port": port}]
    parse_scenario(yaml.safe_dump(doc), "s.yaml")
    with socket.create_server(("127.0.0.1", port)):  # still free: nothing listens there
        pass
