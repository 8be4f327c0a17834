"""The REST API against Toxiproxy 2.x's contract, driven by the unmodified toxiproxy-python
client where it can, and by raw HTTP for status codes, messages and headers."""

from __future__ import annotations

import json
import socket

import pytest
from test_proxy_support import TcpServer, api, connect, echo, recv_exactly
from toxiproxy import Toxiproxy
from toxiproxy.exceptions import InvalidToxic, NotFound, ProxyExists

from faults.proxy import EmbeddedProxy
from faults.proxy.client import (
    ToxiproxyClient,
    ToxiproxyConflict,
    ToxiproxyError,
    ToxiproxyUnreachable,
)

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi


@pytest.fixture
def upstream():
    with TcpServer(echo) as server:
        yield server


def test_create_list_get_delete_with_the_real_client(toxi: Toxiproxy, upstream: TcpServer) -> None:
    assert toxi.proxies() == {}
    proxy = toxi.create(upstream=upstream.address, name="redis")
    assert proxy.enabled is True
    host, port = proxy.listen.rsplit(":", 1)
    assert host == "127.0.0.1" and int(port) > 0  # port 0 → the real port
    assert set(toxi.proxies()) == {"redis"}
    fetched = toxi.get_proxy("redis")
    assert (fetched.listen, fetched.upstream) == (proxy.listen, upstream.address)
    with pytest.raises(ProxyExists):
        toxi.create(upstream=upstream.address, name="redis")
    assert toxi.destroy(proxy) is True
    assert toxi.proxies() == {}
    assert b"version" in toxi.version()


def test_proxy_errors_have_toxiproxys_codes_and_messages(
    embedded: EmbeddedProxy, upstream: TcpServer
) -> None:
    r = api(embedded, "POST", "/proxies", json={"upstream": upstream.address})
    assert (r.status_code, r.json()) == (
        400,
        {"error": "missing required field: name", "status": 400},
    )
    r = api(embedded, "POST", "/proxies", json={"name": "a"})
    assert (r.status_code, r.json()["error"]) == (400, "missing required field: upstream")
    body = {"name": "dup", "upstream": upstream.address, "listen": "127.0.0.1:0"}
    assert api(embedded, "POST", "/proxies", json=body).status_code == 201
    r = api(embedded, "POST", "/proxies", json=body)
    assert (r.status_code, r.json()) == (409, {"error": "proxy already exists", "status": 409})
    for method, path in [
        ("GET", "/proxies/nope"),
        ("DELETE", "/proxies/nope"),
        ("PATCH", "/proxies/nope"),
        ("GET", "/proxies/nope/toxics"),
        ("POST", "/proxies/nope/toxics"),
    ]:
        r = api(embedded, method, path, json={})
        assert (r.status_code, r.json()["error"]) == (404, "proxy not found"), (method, path)
    for method in ("GET", "PATCH", "POST", "DELETE"):
        r = api(embedded, method, "/proxies/dup/toxics/nope", json={})
        assert (r.status_code, r.json()["error"]) == (404, "toxic not found"), method
    assert api(embedded, "DELETE", "/proxies/dup").status_code == 204


@pytest.mark.parametrize(
    "path, method",
    [
        ("/proxies", "POST"),
        ("/populate", "POST"),
        ("/proxies/m", "PATCH"),
        ("/proxies/m", "POST"),
        ("/proxies/m/toxics", "POST"),
        ("/proxies/m/toxics/t", "PATCH"),
    ],
)
def test_malformed_json_is_400_bad_request_body(
    embedded: EmbeddedProxy, upstream: TcpServer, path: str, method: str
) -> None:
    api(embedded, "POST", "/proxies", json={"name": "m", "upstream": upstream.address})
    api(embedded, "POST", "/proxies/m/toxics", json={"name": "t", "type": "noop"})
    try:
        for raw in ('{"name": ', "not json", "", "[1, 2"):
            r = api(embedded, method, path, data=raw, headers={"Content-Type": "application/json"})
            assert r.status_code == 400, (raw, r.text)
            assert r.json()["error"].startswith("bad request body: "), r.text
            assert r.json()["status"] == 400
        r = api(embedded, method, path, data="")
        assert r.json()["error"] == "bad request body: EOF"
    finally:
        api(embedded, "DELETE", "/proxies/m")


def test_toxic_defaults_validation_and_update(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    proxy = toxi.create(upstream=upstream.address, name="db")
    r = api(
        embedded,
        "POST",
        "/proxies/db/toxics",
        json={"type": "latency", "attributes": {"latency": 5}},
    )
    assert r.status_code == 200
    assert r.json() == {
        "attributes": {"latency": 5, "jitter": 0},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 1.0,
    }
    r = api(embedded, "POST", "/proxies/db/toxics", json={"type": "latency", "stream": "UpStream"})
    assert r.status_code == 200 and r.json()["name"] == "latency_upstream"  # case-insensitive
    r = api(embedded, "POST", "/proxies/db/toxics", json={"type": "latency", "stream": "sideways"})
    assert (r.status_code, r.json()["error"]) == (
        400,
        "stream was invalid, can be either upstream or downstream",
    )
    r = api(embedded, "POST", "/proxies/db/toxics", json={"type": "bogus"})
    assert (r.status_code, r.json()["error"]) == (400, "invalid toxic type")
    # names are unique across both streams
    r = api(
        embedded,
        "POST",
        "/proxies/db/toxics",
        json={"type": "noop", "name": "latency_downstream", "stream": "upstream"},
    )
    assert (r.status_code, r.json()["error"]) == (409, "toxic already exists")
    r = api(
        embedded,
        "POST",
        "/proxies/db/toxics",
        json={"type": "latency", "name": "x", "attributes": {"latency": "x"}},
    )
    assert r.status_code == 400 and r.json()["error"].startswith("bad request body")

    # through the real client: add, list, get, destroy
    with pytest.raises(InvalidToxic):
        proxy.add_toxic(type="bogus")
    with pytest.raises(ProxyExists):
        proxy.add_toxic(type="latency")
    proxy.add_toxic(
        type="bandwidth", name="bw", stream="upstream", toxicity=0.5, attributes={"rate": 10}
    )
    toxics = proxy.toxics()
    assert set(toxics) == {"latency_downstream", "latency_upstream", "bw"}
    assert toxics["bw"].attributes == {"rate": 10} and toxics["bw"].toxicity == 0.5
    assert [t["name"] for t in api(embedded, "GET", "/proxies/db/toxics").json()] == [
        "latency_upstream",
        "bw",
        "latency_downstream",
    ]  # upstream chain first, in order

    # update: attributes merge, toxicity changes, nothing else does (PATCH and POST)
    r = api(
        embedded,
        "PATCH",
        "/proxies/db/toxics/latency_downstream",
        json={"attributes": {"jitter": 3}, "toxicity": 0.25, "stream": "upstream", "type": "noop"},
    )
    assert r.status_code == 200
    assert r.json() == {
        "attributes": {"latency": 5, "jitter": 3},
        "name": "latency_downstream",
        "type": "latency",
        "stream": "downstream",
        "toxicity": 0.25,
    }
    r = api(
        embedded,
        "POST",
        "/proxies/db/toxics/latency_downstream",
        json={"attributes": {"latency": 7}},
    )
    assert r.json()["attributes"] == {"latency": 7, "jitter": 3} and r.json()["toxicity"] == 0.25
    assert api(embedded, "GET", "/proxies/db/toxics/bw").json()["type"] == "bandwidth"

    assert proxy.destroy_toxic("bw") is True
    with pytest.raises(NotFound):
        proxy.destroy_toxic("bw")
    assert api(embedded, "DELETE", "/proxies/db/toxics/latency_upstream").status_code == 204


def test_proxy_update_disable_enable_and_reset(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    proxy = toxi.create(upstream=upstream.address, name="svc")
    proxy.add_toxic(type="latency", attributes={"latency": 1})
    proxy.disable()
    shown = api(embedded, "GET", "/proxies/svc").json()
    assert shown["enabled"] is False and shown["listen"] == proxy.listen
    with pytest.raises(OSError):
        connect(proxy.listen, timeout=2).recv(1)
    r = api(embedded, "PATCH", "/proxies/svc", json={"enabled": True})
    assert r.status_code == 200 and r.json()["enabled"] is True
    assert (
        r.json()["listen"] == proxy.listen and r.json()["upstream"] == upstream.address
    )  # omitted kept
    assert len(r.json()["toxics"]) == 1  # toxics survive disable/enable
    proxy.disable()
    assert api(embedded, "POST", "/reset").status_code == 204
    shown = api(embedded, "GET", "/proxies/svc").json()
    assert shown["enabled"] is True and shown["toxics"] == []
    with connect(proxy.listen) as sock:
        sock.sendall(b"ping")
        assert recv_exactly(sock, 4) == b"ping"


def test_changing_upstream_restarts_and_drops_connections(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    proxy = toxi.create(upstream=upstream.address, name="move")
    with TcpServer(echo) as other, connect(proxy.listen) as sock:
        sock.sendall(b"a")
        assert recv_exactly(sock, 1) == b"a"
        r = api(embedded, "PATCH", "/proxies/move", json={"upstream": other.address})
        assert r.json()["upstream"] == other.address and r.json()["enabled"] is True
        try:
            assert sock.recv(10) == b""
        except ConnectionResetError:
            pass
        with connect(r.json()["listen"]) as again:
            again.sendall(b"b")
            assert recv_exactly(again, 1) == b"b"
        assert other.connections.qsize() == 1


def test_populate(embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer) -> None:
    entries = [
        {"name": "one", "upstream": upstream.address, "listen": "127.0.0.1:0"},
        {"name": "two", "upstream": upstream.address, "listen": "127.0.0.1:0", "enabled": False},
    ]
    r = api(embedded, "POST", "/populate", json=entries)
    assert r.status_code == 201
    assert [p["name"] for p in r.json()["proxies"]] == ["one", "two"]
    assert r.json()["proxies"][1]["enabled"] is False
    one_listen = r.json()["proxies"][0]["listen"]
    # an existing proxy with the same listen and upstream is kept as it is
    r = api(
        embedded,
        "POST",
        "/populate",
        json=[{"name": "one", "upstream": upstream.address, "listen": one_listen}],
    )
    assert r.status_code == 201 and r.json()["proxies"][0]["listen"] == one_listen
    # everything is validated before anything is created
    r = api(
        embedded,
        "POST",
        "/populate",
        json=[{"name": "three", "upstream": upstream.address}, {"name": "four"}],
    )
    assert (r.status_code, r.json()["error"]) == (
        400,
        "missing required field: upstream at proxy 2",
    )
    assert "three" not in toxi.proxies()
    # a bind failure: 500, with the proxies created so far
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        r = api(
            embedded,
            "POST",
            "/populate",
            json=[
                {"name": "five", "upstream": upstream.address},
                {"name": "six", "upstream": upstream.address, "listen": busy},
            ],
        )
    assert r.status_code == 500
    assert r.json()["error"] == f"listen tcp {busy}: bind: address already in use"
    assert [p["name"] for p in r.json()["proxies"]] == ["five"]
    assert api(embedded, "POST", "/populate", json={"name": "x"}).status_code == 400
    # the real client's populate works against us too
    created = toxi.populate(
        [{"name": "seven", "upstream": upstream.address, "listen": "127.0.0.1:0"}]
    )
    assert [p.name for p in created] == ["seven"]


def test_bind_failure_is_500_with_the_os_message(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:
        busy = f"127.0.0.1:{taken.getsockname()[1]}"
        r = api(
            embedded,
            "POST",
            "/proxies",
            json={"name": "b", "upstream": upstream.address, "listen": busy},
        )
        assert r.status_code == 500
        assert r.json() == {
            "error": f"listen tcp {busy}: bind: address already in use",
            "status": 500,
        }
        with pytest.raises(KeyError):  # toxiproxy-python's known weak spot ...
            toxi.create(upstream=upstream.address, name="b", listen=busy)
        with pytest.raises(
            ToxiproxyError, match="address already in use"
        ):  # ... our wrapper's answer
            ToxiproxyClient(embedded.api_url).create_proxy("b", upstream.address, listen=busy)
    assert "b" not in toxi.proxies()


def test_headers_browser_guard_version_and_unknown_routes(embedded: EmbeddedProxy) -> None:
    for method, path in [
        ("GET", "/proxies"),
        ("GET", "/version"),
        ("GET", "/proxies/none"),
        ("GET", "/no/such/route"),
        ("POST", "/reset"),
    ]:
        r = api(embedded, method, path)
        assert r.headers.get("X-Toxiproxy-Request-Id"), (method, path)
    ids = {api(embedded, "GET", "/version").headers["X-Toxiproxy-Request-Id"] for _ in range(3)}
    assert len(ids) == 3
    r = api(embedded, "GET", "/proxies", headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64)"})
    assert (r.status_code, r.text.strip()) == (403, "User agent not allowed")
    assert r.headers.get("X-Toxiproxy-Request-Id")
    r = api(embedded, "GET", "/version")
    assert r.status_code == 200 and r.json()["version"].startswith("2.")
    assert api(embedded, "GET", "/no/such/route").status_code == 404
    assert api(embedded, "PUT", "/proxies").status_code == 405


def test_stats_are_extra_fields_the_real_client_tolerates(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    proxy = toxi.create(upstream=upstream.address, name="counted")
    for _ in range(3):
        with connect(proxy.listen) as sock:
            sock.sendall(b"12345")
            assert recv_exactly(sock, 5) == b"12345"
    stats = api(embedded, "GET", "/proxies/counted").json()["stats"]
    assert stats["connections_total"] == 3
    assert stats["upstream"] == {"bytes_received": 15, "bytes_sent": 15}
    assert stats["downstream"]["bytes_sent"] == 15
    assert toxi.proxies()["counted"].listen == proxy.listen  # Proxy(**json) with extra keys works


def test_create_with_toxics_is_atomic(
    embedded: EmbeddedProxy, toxi: Toxiproxy, upstream: TcpServer
) -> None:
    bad = {
        "name": "atomic",
        "upstream": upstream.address,
        "toxics": [{"type": "latency", "attributes": {"latency": 1}}, {"type": "nope"}],
    }
    r = api(embedded, "POST", "/proxies", json=bad)
    assert (r.status_code, r.json()["error"]) == (400, "invalid toxic type")
    assert "atomic" not in toxi.proxies()
    good = {
        "name": "atomic",
        "upstream": upstream.address,
        "toxics": [{"type": "limit_data", "attributes": {"bytes": 3}}],
    }
    r = api(embedded, "POST", "/proxies", json=good)
    assert r.status_code == 201 and [t["name"] for t in r.json()["toxics"]] == [
        "limit_data_downstream"
    ]
    with connect(r.json()["listen"]) as sock:  # the very first connection already has the toxic
        sock.sendall(b"abcdef")
        assert recv_exactly(sock, 6) == b"abc"


def test_seed_makes_toxicity_rolls_reproducible(upstream: TcpServer) -> None:
    def pattern(seed: int) -> list[bool]:
        with EmbeddedProxy(seed=seed) as server:
            client = ToxiproxyClient(server.api_url)
            listen = client.create_proxy(
                "s",
                upstream.address,
                toxics=[{"type": "limit_data", "toxicity": 0.5, "attributes": {"bytes": 0}}],
            ).listen
            passed = []
            for _ in range(16):
                with connect(listen) as sock:
                    sock.sendall(b"x")
                    passed.append(recv_exactly(sock, 1) == b"x")
            return passed

    first = pattern(42)
    assert first == pattern(42)
    assert any(first) and not all(first)


def test_client_wrapper_errors_are_clear(embedded: EmbeddedProxy, upstream: TcpServer) -> None:
    client = ToxiproxyClient(embedded.api_url)
    client.create_proxy("w", upstream.address)
    with pytest.raises(ToxiproxyConflict, match="proxy already exists"):
        client.create_proxy("w", upstream.address)
    assert client.remove_toxic("w", "missing") is False
    assert client.delete_proxy("w") is True and client.delete_proxy("w") is False
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(ToxiproxyUnreachable, match="cannot connect"):
        ToxiproxyClient(dead, timeout=1).proxies()
    assert ToxiproxyClient(dead).running() is False
    with pytest.raises(ValueError, match="host and a port"):
        ToxiproxyClient("http://localhost")


def test_stop_is_idempotent_and_closes_listeners(upstream: TcpServer) -> None:
    server = EmbeddedProxy()
    server.start()
    listen = ToxiproxyClient(server.api_url).create_proxy("p", upstream.address).listen
    sock = connect(listen)
    server.stop()
    server.stop()
    try:
        assert sock.recv(1) == b""
    except ConnectionResetError:
        pass
    sock.close()
    with pytest.raises(OSError):
        connect(listen, timeout=2)
    with pytest.raises(OSError):
        connect(server.api_url.removeprefix("http://"), timeout=2)
    assert json.dumps(server.api_url)
