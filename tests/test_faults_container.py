"""container.* faults against a real dockerd (start one with `.ci/docker-up.sh`).

Test containers come from the local image that script builds with `docker import`
(nothing is pulled), run with host networking or no network at all (never the
default bridge), and carry the label `aftershock-test` so docker-down can sweep them.
"""

from __future__ import annotations

import uuid

import pytest
from infra_fault_support import sigkill_and_replay, start_harness

from harness.fault import FaultContext, UserError
from harness.plugins import fault_types

IMAGE = "aftershock-busybox:latest"

docker = pytest.importorskip("docker", reason="the `docker` package is not installed (pip install docker)")


@pytest.fixture(scope="module")
def client():
    try:
        c = docker.from_env()
        c.ping()
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker daemon reachable ({exc}); run .ci/docker-up.sh first")
    try:
        c.images.get(IMAGE)
    except docker.errors.ImageNotFound:
        pytest.skip(f"test image {IMAGE} is missing; run .ci/docker-up.sh to build it")
    return c


@pytest.fixture
def containers(client):
    made = []
    case = uuid.uuid4().hex[:8]

    def run(n: int = 1, network: str = "host") -> list:
        for _ in range(n):
            made.append(client.containers.run(
                IMAGE, ["sleep", "300"], detach=True, network_mode=network,
                labels={"aftershock-test": "1", "aftershock-case": case}, name=f"aftershock-test-{uuid.uuid4().hex[:10]}",
            ))
        return made[-n:]

    run.label = f"aftershock-case={case}"
    try:
        yield run
    finally:
        for c in made:
            c.remove(force=True)


def build(fault_type: str, events: list | None = None, **params):
    cls = fault_types()[fault_type]
    kw = {"journal": lambda event, **f: events.append({"event": event, **f})} if events is not None else {}
    return cls("f", cls.Params(**params), FaultContext(toxiproxy_url="", seed=3, **kw))


def status(c) -> str:
    c.reload()
    return c.status


def test_kill_then_revert_starts_it_again(containers):
    (c,) = containers()
    events: list = []
    fault = build("container.kill", events, container=c.name)
    fault.undo_record()
    fault.inject()
    assert status(c) == "exited"
    fault.revert()
    assert status(c) == "running"
    fault.revert()  # idempotent
    assert status(c) == "running"
    assert [e["action"] for e in events] == ["kill", "undo"]


def test_stop_and_restart(containers):
    (c,) = containers()
    stop = build("container.stop", container=c.name, timeout="1s")
    stop.inject()
    assert status(c) == "exited"
    stop.revert()
    assert status(c) == "running"
    started = c.attrs["State"]["StartedAt"]
    restart = build("container.restart", container=c.name, timeout="1s")
    restart.inject()
    restart.revert()
    assert status(c) == "running" and c.attrs["State"]["StartedAt"] != started


def test_pause_by_label_hits_the_count_and_unpauses_after_an_exception(containers):
    cs = containers(3)
    fault = build("container.pause", label=containers.label, count=1)
    with pytest.raises(RuntimeError, match="boom"):
        try:
            fault.undo_record()
            fault.inject()
            assert sorted(status(c) for c in cs) == ["paused", "running", "running"]
            raise RuntimeError("boom")
        finally:
            fault.revert()
    assert [status(c) for c in cs] == ["running"] * 3


def test_network_disconnect_and_reconnect(containers):
    (c,) = containers(network="none")
    fault = build("container.network_disconnect", container=c.name, network="none")
    fault.inject()
    c.reload()
    assert c.attrs["NetworkSettings"]["Networks"] == {}
    fault.revert()
    c.reload()
    assert list(c.attrs["NetworkSettings"]["Networks"]) == ["none"]


def test_unknown_container_and_bad_params(containers):
    containers()
    with pytest.raises(UserError, match="no container named 'aftershock-no-such'"):
        build("container.kill", container="aftershock-no-such").inject()
    with pytest.raises(UserError, match="no running container has label"):
        build("container.pause", label="aftershock-case=none-such").inject()
    cls = fault_types()["container.kill"]
    with pytest.raises(ValueError, match="exactly one of `container`"):
        cls.Params()


@pytest.mark.parametrize("fault_type,expect", [("container.pause", "unpaused"), ("container.kill", "started")])
def test_replay_restores_the_container_after_the_harness_is_sigkilled(containers, tmp_path, fault_type, expect):
    (c,) = containers()
    child, _ = start_harness(tmp_path, fault_type, {"container": c.name})
    try:
        assert status(c) in ("paused", "exited")
        actions = sigkill_and_replay(child, tmp_path)
        assert f"{expect} {c.name}" in actions[0], actions
        assert status(c) == "running"
    finally:
        child.kill()
