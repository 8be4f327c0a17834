"""network.* and http.* faults injected and reverted on the embedded proxy through the
client wrapper, and undone from their ledger record alone."""

from __future__ import annotations

import socket
import time

import pytest
from pydantic import ValidationError
from test_proxy_support import TcpServer, connect, echo, recv_exactly

from faults.network import NetworkDown, NetworkLatency
from faults.proxy.client import ToxiproxyClient
from harness.core.fault import Dependency, FaultContext, FaultFailed, UserError
from harness.core.registry import fault_types

pytest_plugins = ["test_proxy_support"]  # fixtures: embedded, toxi


@pytest.fixture
def setup(embedded):
    client = ToxiproxyClient(embedded.api_url)
    with TcpServer(echo) as upstream:
        proxy = client.create_proxy("aftershock-store", upstream.address)
        ctx = FaultContext(
            toxiproxy_url=embedded.api_url,
            dependencies={
                "store": Dependency("store", "aftershock-store", proxy.listen, upstream.address)
            },
        )
        try:
            yield client, ctx, proxy.listen
        finally:
            client.delete_proxy("aftershock-store")


def make(fault_type: str, ctx: FaultContext, name: str = "f", **params):
    cls = fault_types()[fault_type]
    return cls(name, cls.Params(dependency="store", **params), ctx)


CASES = [
    (
        "network.latency",
        {"latency": "250ms", "jitter": "10ms"},
        "latency",
        {"latency": 250, "jitter": 10},
    ),
    ("network.bandwidth", {"rate": "100KB"}, "bandwidth", {"rate": 100}),
    ("network.timeout", {"timeout": "2s"}, "timeout", {"timeout": 2000}),
    ("network.reset", {"timeout": "50ms"}, "reset_peer", {"timeout": 50}),
    ("network.slow_close", {"delay": "1s"}, "slow_close", {"delay": 1000}),
    (
        "network.slicer",
        {"average_size": "1KB", "size_variation": 100, "delay": "1ms"},
        "slicer",
        {"average_size": 1000, "size_variation": 100, "delay": 1000},
    ),
    ("network.limit_data", {"bytes": "1MB"}, "limit_data", {"bytes": 1_000_000}),
    (
        "http.error",
        {"status": 502, "rate": "25%"},
        "http_error",
        {"status": 502, "rate": 0.25, "body": ""},
    ),
    ("http.delay", {"delay": "300ms", "rate": 0.5}, "http_delay", {"delay": 300, "rate": 0.5}),
    ("http.stream", {"mode": "stall", "stall": "2s", "after_chunks": 3}, "http_stream_stall",
     {"stall": 2000, "after_chunks": 3}),
    ("http.stream", {"mode": "slow", "delay_per_chunk": "40ms"}, "http_stream_slow",
     {"delay": 40, "after_chunks": 0}),
    ("http.stream", {"mode": "cut", "after_chunks": 5}, "http_stream_cut", {"after_chunks": 5}),
    ("http.stream", {"mode": "corrupt", "after_chunks": 1}, "http_stream_corrupt", {"after_chunks": 1}),
]


@pytest.mark.parametrize("fault_type, params, toxic_type, attributes", CASES)
def test_inject_and_revert_each_toxic_fault(
    setup, fault_type, params, toxic_type, attributes
) -> None:
    client, ctx, _ = setup
    fault = make(fault_type, ctx, **params)
    fault.check(fault.params, set(ctx.dependencies), set())
    record = fault.undo_record()
    stream = "upstream" if fault_type in ("http.error", "http.delay") else "downstream"
    assert record == {
        "api_url": ctx.toxiproxy_url,
        "proxy": "aftershock-store",
        "toxics": [f"aftershock-f-{stream}"],
    }
    fault.inject()
    (toxic,) = client.toxics("aftershock-store")
    assert (toxic.type, toxic.stream, toxic.name) == (
        toxic_type,
        stream,
        f"aftershock-f-{stream}",
    )
    assert toxic.attributes == attributes
    fault.revert()
    assert client.toxics("aftershock-store") == []
    fault.revert()  # idempotent


def test_both_streams_toxicity_and_reinject_over_leftovers(setup) -> None:
    client, ctx, _ = setup
    fault = make("network.latency", ctx, name="slow", latency="10ms", stream="both", toxicity="50%")
    fault.inject()
    fault.inject()  # a leftover toxic of the same name is replaced, not an error
    toxics = {t.name: t for t in client.toxics("aftershock-store")}
    assert set(toxics) == {"aftershock-slow-upstream", "aftershock-slow-downstream"}
    assert {t.toxicity for t in toxics.values()} == {0.5}
    assert "removed toxics" in type(fault).replay_undo(fault.undo_record())
    assert client.toxics("aftershock-store") == []
    assert "no toxics" in type(fault).replay_undo(fault.undo_record())


def test_latency_fault_slows_real_traffic(setup) -> None:
    _, ctx, listen = setup
    fault = make("network.latency", ctx, latency="200ms")
    with connect(listen) as sock:
        fault.inject()
        try:
            start = time.perf_counter()
            sock.sendall(b"ping")
            assert recv_exactly(sock, 4) == b"ping"
            assert time.perf_counter() - start >= 0.2 - 0.003
        finally:
            fault.revert()
        start = time.perf_counter()
        sock.sendall(b"pong")
        assert recv_exactly(sock, 4) == b"pong"
        assert time.perf_counter() - start < 0.19


def test_network_down_disables_and_revert_reenables(setup) -> None:
    client, ctx, listen = setup
    fault = make("network.down", ctx, name="outage")
    assert fault.undo_record() == {
        "api_url": ctx.toxiproxy_url,
        "proxy": "aftershock-store",
        "enable": True,
    }
    fault.inject()
    assert client.get_proxy("aftershock-store").enabled is False
    with pytest.raises(ConnectionRefusedError):
        connect(listen, timeout=2)
    assert NetworkDown.replay_undo(fault.undo_record()) == "re-enabled proxy aftershock-store"
    with connect(listen) as sock:
        sock.sendall(b"up")
        assert recv_exactly(sock, 2) == b"up"
    fault.revert()


def test_replay_undo_treats_an_unreachable_server_as_done() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    assert "not reachable" in NetworkLatency.replay_undo(
        {"api_url": dead, "proxy": "p", "toxics": ["t"]}
    )
    assert "not reachable" in NetworkDown.replay_undo(
        {"api_url": dead, "proxy": "p", "enable": True}
    )
    assert "no longer exists" not in NetworkDown.replay_undo(
        {"api_url": dead, "proxy": "p", "enable": True}
    )


def test_replay_undo_of_a_missing_proxy(embedded) -> None:
    url = embedded.api_url
    assert "no toxics" in NetworkLatency.replay_undo(
        {"api_url": url, "proxy": "gone", "toxics": ["t"]}
    )
    assert "no longer exists" in NetworkDown.replay_undo(
        {"api_url": url, "proxy": "gone", "enable": True}
    )


def test_check_names_the_declared_dependencies() -> None:
    cls = fault_types()["network.latency"]
    params = cls.Params(dependency="feature-stor", latency="1s")
    with pytest.raises(
        UserError, match=r"'feature-stor' is not declared \(declared: cache, feature-store\)"
    ):
        cls.check(params, {"feature-store", "cache"}, set())
    cls.check(cls.Params(dependency="cache", latency=1), {"cache"}, set())


def test_params_are_checked() -> None:
    types = fault_types()
    with pytest.raises(ValidationError, match="at least 1KB"):
        types["network.bandwidth"].Params(dependency="d", rate="500B")
    with pytest.raises(ValidationError):
        types["network.latency"].Params(dependency="d", latency="fast")
    with pytest.raises(ValidationError):
        types["network.latency"].Params(dependency="d", latency="1s", stream="sideways")
    with pytest.raises(ValidationError):
        types["network.latency"].Params(dependency="d", latency="1s", toxicity=1.5)
    with pytest.raises(ValidationError):
        types["http.error"].Params(dependency="d", status=700)
    with pytest.raises(ValidationError):
        types["network.down"].Params(dependency="d", unknown=1)
    with pytest.raises(ValidationError, match="mode stall needs `stall` above 0, e.g. stall: 2s"):
        types["http.stream"].Params(dependency="d", mode="stall")
    with pytest.raises(ValidationError, match="`delay_per_chunk` applies to mode slow only"):
        types["http.stream"].Params(dependency="d", mode="cut", delay_per_chunk="1s")
    with pytest.raises(ValidationError):
        types["http.stream"].Params(dependency="d", mode="pause")
    assert types["network.timeout"].Params(dependency="d").timeout == 0


def test_each_action_is_read_back_from_the_proxy_and_a_missing_toxic_fails_loudly(setup) -> None:
    client, ctx, _ = setup
    events: list = []
    ctx.journal = lambda event, **f: events.append({"event": event, **f})
    fault = make("network.latency", ctx, latency="100ms")
    fault.inject()
    client.remove_toxic("aftershock-store", "aftershock-f-downstream")  # taken off behind our back
    with pytest.raises(FaultFailed, match="toxic aftershock-f-downstream is not on proxy aftershock-store"):
        fault.check_present()
    client.add_toxic("aftershock-store", name="aftershock-f-downstream", type="latency",
                     stream="downstream", attributes={"latency": 5, "jitter": 0})
    with pytest.raises(FaultFailed, match=r"is not what was sent: \{'attributes'"):
        fault.check_present()
    fault.revert()
    down = make("network.down", ctx, name="outage")
    down.inject()
    down.revert()
    effects = [e.get("effect") or e["event"] for e in events]
    assert effects == ["toxics present", "fault.failed", "fault.failed", "toxics removed", "disabled", "enabled"]
