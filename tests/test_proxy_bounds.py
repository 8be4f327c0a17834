"""The standalone proxy (`aftershock proxy`, a real child process) over real HTTP: bounded
input answers 400 with a clear message, and listen/upstream addresses outside loopback or
on privileged ports answer 403 unless the server was started with an allow flag.

No test here connects anywhere but loopback: creating a proxy with an upstream never
connects to it; only a client connecting through the proxy would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parents[1]
OUTSIDE = "10.1.2.3"


class StandaloneProxy:
    """`aftershock proxy --port 0 ARGS` in a child process; `url` is its API."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "harness.cli", "proxy", "--port", "0", *args], cwd=ROOT,
                                     stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        self.lines: list[str] = []
        for line in self.proc.stderr:  # it prints its API URL once it listens
            self.lines.append(line)
            if "Toxiproxy API on " in line:
                self.url = line.split("Toxiproxy API on ")[1].split()[0]
                return
        raise AssertionError(f"the proxy did not start: {''.join(self.lines)}")

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, timeout=10, **kwargs)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def server() -> Iterator[StandaloneProxy]:
    proxy = StandaloneProxy()
    try:
        yield proxy
    finally:
        proxy.stop()


@pytest.fixture
def proxy(server: StandaloneProxy) -> Iterator[str]:
    server.call("POST", "/reset")
    for name in server.call("GET", "/proxies").json():
        server.call("DELETE", f"/proxies/{name}")
    r = server.call("POST", "/proxies", json={"name": "db", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0"})
    assert r.status_code == 201, r.text
    yield "db"


def refused(r: requests.Response, status: int, words: str) -> None:
    """Toxiproxy's error body, with the expected status and a message that says why."""
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == status and words in body["error"], body


RAW_BODIES = {
    "deep nesting": ("[" * 200_000 + "]" * 200_000, "nested too deeply"),
    "1e400": ('{"type": "latency", "attributes": {"latency": 1e400}}', "too large"),
    "NaN": ('{"type": "latency", "attributes": {"latency": NaN}}', "NaN is not a JSON number"),
    "Infinity": ('{"type": "latency", "attributes": {"jitter": Infinity}}', "Infinity is not a JSON number"),
    "-Infinity": ('{"type": "latency", "toxicity": -Infinity}', "-Infinity is not a JSON number"),
    "NaN toxicity": ('{"type": "latency", "toxicity": NaN}', "NaN is not a JSON number"),
    "5000 digits": ('{"type": "latency", "attributes": {"latency": 1' + "0" * 5000 + "}}", "digits"),
    "2 MB body": ('{"type": "latency", "name": "' + "x" * (2 << 20) + '"}', "larger than 1048576 bytes"),
}


@pytest.mark.parametrize("case", list(RAW_BODIES))
def test_unbounded_json_is_a_400_not_a_500(server: StandaloneProxy, proxy: str, case: str) -> None:
    body, words = RAW_BODIES[case]
    headers = {"Content-Type": "application/json"}
    refused(server.call("POST", f"/proxies/{proxy}/toxics", data=body, headers=headers), 400, words)
    refused(server.call("POST", "/proxies", data=body, headers=headers), 400, "bad request body")
    assert server.call("GET", f"/proxies/{proxy}/toxics").json() == []  # nothing half-made


OUT_OF_RANGE = [
    ("latency", {"latency": -1}, "'latency' must be a number from 0 to 3.6e+06, got -1"),
    ("latency", {"latency": 1e20}, "'latency' must be a number from 0 to 3.6e+06"),
    ("latency", {"jitter": 10**30}, "'jitter' must be a number from 0"),
    ("http_error", {"status": -1}, "'status' must be a number from 100 to 599, got -1"),
    ("http_error", {"status": 10**30}, "'status' must be a number from 100 to 599"),
    ("http_error", {"rate": 2}, "'rate' must be a number from 0 to 1"),
    ("bandwidth", {"rate": -5}, "'rate' must be a number from 0"),
    ("timeout", {"timeout": 1e300}, "'timeout' must be a number from 0 to 3.6e+06"),
    ("limit_data", {"bytes": 2**60}, "'bytes' must be a number from 0 to 9.0072e+15"),
    ("http_error", {"body": "x" * 70_000}, "'body' is longer than 65536 characters"),
]


@pytest.mark.parametrize(("toxic", "attributes", "words"), OUT_OF_RANGE)
def test_attributes_out_of_range_are_refused_on_create_and_update(server: StandaloneProxy, proxy: str, toxic: str,
                                                                  attributes: dict, words: str) -> None:
    stream = "upstream" if toxic.startswith("http_") else "downstream"
    r = server.call("POST", f"/proxies/{proxy}/toxics", json={"type": toxic, "stream": stream, "attributes": attributes})
    refused(r, 400, words)
    r = server.call("POST", f"/proxies/{proxy}/toxics", json={"type": toxic, "stream": stream, "name": "t"})
    assert r.status_code == 200, r.text
    refused(server.call("POST", f"/proxies/{proxy}/toxics/t", json={"attributes": attributes}), 400, words)
    assert server.call("GET", f"/proxies/{proxy}/toxics/t").json()["attributes"] == r.json()["attributes"]


@pytest.mark.parametrize("toxicity", [-0.1, 1.5, 1e300])
def test_toxicity_outside_zero_to_one_is_refused(server: StandaloneProxy, proxy: str, toxicity: float) -> None:
    r = server.call("POST", f"/proxies/{proxy}/toxics", json={"type": "latency", "toxicity": toxicity})
    refused(r, 400, "toxicity must be a number from 0 to 1")


def test_limits_themselves_are_accepted_and_written_back_as_valid_json(server: StandaloneProxy, proxy: str) -> None:
    r = server.call("POST", f"/proxies/{proxy}/toxics",
                    json={"type": "latency", "toxicity": 0, "attributes": {"latency": 3_600_000, "jitter": 0}})
    assert r.status_code == 200, r.text
    r = server.call("POST", f"/proxies/{proxy}/toxics",
                    json={"type": "http_error", "stream": "upstream", "attributes": {"status": 599, "rate": 1}})
    assert r.status_code == 200, r.text
    listed = server.call("GET", f"/proxies/{proxy}/toxics").text
    assert "NaN" not in listed and len(json.loads(listed)) == 2


def test_names_are_bounded_so_every_proxy_can_be_deleted_again(server: StandaloneProxy, proxy: str) -> None:
    refused(server.call("POST", "/proxies", json={"name": "n" * 257, "upstream": "127.0.0.1:9"}), 400,
            "proxy name is 257 characters long: at most 256")
    refused(server.call("POST", "/proxies", json={"name": "a/b", "upstream": "127.0.0.1:9"}), 400, "'/'")
    refused(server.call("POST", "/populate", json=[{"name": "n" * 300, "upstream": "127.0.0.1:9"}]), 400,
            "at most 256")
    refused(server.call("POST", f"/proxies/{proxy}/toxics", json={"type": "latency", "name": "t" * 257}), 400,
            "toxic name is 257 characters long")
    name = "n" * 256
    assert server.call("POST", "/proxies", json={"name": name, "upstream": "127.0.0.1:9"}).status_code == 201
    assert server.call("DELETE", f"/proxies/{name}").status_code == 204
    assert set(server.call("GET", "/proxies").json()) == {proxy}


# --- addresses -----------------------------------------------------------------------------


@pytest.mark.parametrize(("body", "words"), [
    ({"listen": "0.0.0.0:0"}, "listen: 0.0.0.0 is outside loopback"),
    ({"listen": ":0"}, "listen: 0.0.0.0 is outside loopback"),
    ({"listen": "[::]:0"}, "listen: :: is outside loopback"),
    ({"listen": "127.0.0.1:80"}, "listen port 80 is privileged"),
    ({"upstream": f"{OUTSIDE}:80"}, f"upstream: {OUTSIDE} is outside loopback"),
    ({"upstream": "example.com:443"}, "start the proxy with --allow-host example.com"),
])
def test_non_loopback_listen_or_upstream_and_privileged_ports_are_refused(server: StandaloneProxy, body: dict,
                                                                           words: str) -> None:
    spec = {"name": "x", "upstream": "127.0.0.1:9", "listen": "127.0.0.1:0", **body}
    refused(server.call("POST", "/proxies", json=spec), 403, words)
    r = server.call("POST", "/populate", json=[{**spec, "name": "ok", **{k: "127.0.0.1:0" for k in body}}, spec])
    refused(r, 403, words)  # populate checks every entry before creating any
    assert "x" not in server.call("GET", "/proxies").json() and "ok" not in server.call("GET", "/proxies").json()


def test_an_update_cannot_move_a_proxy_outside(server: StandaloneProxy, proxy: str) -> None:
    refused(server.call("POST", f"/proxies/{proxy}", json={"upstream": f"{OUTSIDE}:5432"}), 403, "upstream")
    refused(server.call("POST", f"/proxies/{proxy}", json={"listen": "0.0.0.0:0"}), 403, "listen")
    assert server.call("GET", f"/proxies/{proxy}").json()["upstream"] == "127.0.0.1:9"


def test_the_allow_flags_open_exactly_what_they_name() -> None:
    opened = StandaloneProxy("--allow-host", OUTSIDE)
    try:
        r = opened.call("POST", "/proxies", json={"name": "far", "upstream": f"{OUTSIDE}:5432"})
        assert r.status_code == 201, r.text  # created; nothing connects until a client does
        refused(opened.call("POST", "/proxies", json={"name": "other", "upstream": "10.9.9.9:1"}), 403, "10.9.9.9")
        refused(opened.call("POST", "/proxies", json={"name": "low", "upstream": "127.0.0.1:9",
                                                      "listen": "127.0.0.1:1000"}), 403, "privileged")
    finally:
        opened.stop()


def test_the_api_address_and_a_config_file_pass_the_same_check(tmp_path: Path) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "harness.cli", "proxy", *args], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False, env={**os.environ, "PYTHONPATH": str(ROOT)})

    r = cli("--host", "0.0.0.0", "--port", "0")
    assert r.returncode == 2 and "0.0.0.0 is outside loopback" in r.stderr and "Traceback" not in r.stderr
    config = tmp_path / "proxies.json"
    config.write_text(json.dumps([{"name": "db", "listen": "127.0.0.1:0", "upstream": f"{OUTSIDE}:5432"}]))
    r = cli("--port", "0", "--config", str(config))
    assert r.returncode == 2 and f"upstream: {OUTSIDE} is outside loopback" in r.stderr, r.stderr
