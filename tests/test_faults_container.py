"""container.* faults against a real dockerd (start one with `.ci/docker-up.sh`).

Test containers come from the local image that script builds with `docker import`
(nothing is pulled), run with host networking or no network at all (never the
default bridge), and carry the label `aftershock-test` so docker-down can sweep them.
Each case's containers carry `aftershock.run=<case>` as a run's would, and the faults
get a context whose run is that case: `scope: run` (the default) can pick them.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from infra_fault_support import sigkill_and_replay, start_harness
from pydantic import ValidationError

from harness.core.fault import FaultContext, FaultFailed, UserError
from harness.core.registry import fault_types

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

    def run(n: int = 1, network: str = "host", run_id: str | None = case) -> list:
        labels = {"aftershock-test": "1", "aftershock-case": case, **({"aftershock.run": run_id} if run_id else {})}
        for _ in range(n):
            made.append(client.containers.run(
                IMAGE, ["sleep", "300"], detach=True, network_mode=network,
                labels=labels, name=f"aftershock-test-{uuid.uuid4().hex[:10]}",
            ))
        return made[-n:]

    run.label = f"aftershock-case={case}"
    run.run_id = case
    try:
        yield run
    finally:
        for c in made:
            c.remove(force=True)


def build(fault_type: str, events: list | None = None, run_id: str = "no-run", **params):
    """The fault as a run `run_id` builds it (its containers carry aftershock.run=run_id)."""
    cls = fault_types()[fault_type]
    kw = {"journal": lambda event, **f: events.append({"event": event, **f})} if events is not None else {}
    ctx = FaultContext(toxiproxy_url="", seed=3, run_dir=Path("/nonexistent/reports/x") / run_id, **kw)
    return cls("f", cls.Params(**params), ctx)


def status(c) -> str:
    c.reload()
    return c.status


def test_kill_then_revert_starts_it_again(containers):
    (c,) = containers()
    events: list = []
    fault = build("container.kill", events, containers.run_id, container=c.name)
    fault.undo_record()
    fault.inject()
    assert status(c) == "exited"
    fault.revert()
    assert status(c) == "running"
    fault.revert()  # idempotent
    assert status(c) == "running"
    assert [e["action"] for e in events] == ["kill", "verified", "undo", "verified", "verified"]
    assert [e["effect"] for e in events if e["action"] == "verified"] == ["exited", "restored", "restored"]


def test_stop_and_restart(containers):
    (c,) = containers()
    stop = build("container.stop", run_id=containers.run_id, container=c.name, timeout="1s")
    stop.inject()
    assert status(c) == "exited"
    stop.revert()
    assert status(c) == "running"
    started = c.attrs["State"]["StartedAt"]
    restart = build("container.restart", run_id=containers.run_id, container=c.name, timeout="1s")
    restart.inject()
    restart.revert()
    assert status(c) == "running" and c.attrs["State"]["StartedAt"] != started


def test_pause_by_label_hits_the_count_and_unpauses_after_an_exception(containers):
    cs = containers(3)
    fault = build("container.pause", run_id=containers.run_id, label=containers.label, count=1)
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
    fault = build("container.network_disconnect", run_id=containers.run_id, container=c.name, network="none")
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
        build("container.pause", label="aftershock-case=none-such", scope="any").inject()
    cls = fault_types()["container.kill"]
    with pytest.raises(ValueError, match="exactly one of `container`"):
        cls.Params()
    cls.check(cls.Params(container="x", scope="any"), set(), set())  # what `validate` calls


@pytest.mark.parametrize("fault_type,expect", [("container.pause", "unpaused"), ("container.kill", "started")])
def test_replay_restores_the_container_after_the_harness_is_sigkilled(containers, tmp_path, fault_type, expect):
    (c,) = containers()
    child, _ = start_harness(tmp_path, fault_type, {"container": c.name, "scope": "any"})
    try:
        assert status(c) in ("paused", "exited")
        actions = sigkill_and_replay(child, tmp_path)
        assert f"{expect} {c.name}" in actions[0], actions
        assert status(c) == "running"
    finally:
        child.kill()


def test_scope_run_refuses_containers_of_another_run_or_of_none(containers):
    (theirs,) = containers(run_id="another-run")
    (unlabelled,) = containers(run_id=None)
    for c in (theirs, unlabelled):
        with pytest.raises(UserError, match=rf"container '{c.name}' does not carry the label "
                                            rf"aftershock.run={containers.run_id}.*`scope: any`"):
            build("container.pause", run_id=containers.run_id, container=c.name).inject()
    with pytest.raises(UserError, match=rf"no running container has label\(s\) {containers.label} among "
                                        rf"this run's containers \(aftershock.run={containers.run_id}\)"):
        build("container.pause", run_id=containers.run_id, label=containers.label).inject()
    assert status(theirs) == status(unlabelled) == "running", "neither was touched"
    anyone = build("container.pause", run_id=containers.run_id, label=containers.label, scope="any")
    anyone.undo_record()
    try:
        anyone.inject()
        assert status(theirs) == status(unlabelled) == "paused"
    finally:
        anyone.revert()
    with pytest.raises(ValidationError, match="scope"):
        fault_types()["container.pause"].Params(container="x", scope="everything")


def test_a_kill_the_container_ignores_fails_loudly(containers):
    """`sleep` as PID 1 of a container has no SIGTERM handler, and PID 1 ignores what it
    does not handle: a SIGTERM kill takes no effect, and the fault says so."""
    (c,) = containers()
    events: list = []
    fault = build("container.kill", events, containers.run_id, container=c.name, signal="SIGTERM",
                  exit_timeout="1s")
    fault.undo_record()
    with pytest.raises(FaultFailed, match=rf"container {c.name} is running 1s later; expected it exited"):
        fault.inject()
    assert [e["event"] for e in events] == ["fault.action", "fault.failed"]
    fault.revert()
    assert status(c) == "running"
