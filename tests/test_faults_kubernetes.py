"""kubernetes.* faults and Chaos Mesh manifests, without a cluster.

The real `kubernetes` client (loaded from a real kubeconfig file) talks HTTP to a
small recorder on 127.0.0.1 that answers like an API server for the few calls used.
This checks the requests our faults build — paths, selectors, delete options, node
patches — as they go over the wire. It does not check what a real API server,
scheduler or controller then does (no cluster exists here).
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

pytest.importorskip("kubernetes", reason="the `kubernetes` package is not installed (pip install kubernetes)")

from faults import chaos_mesh
from harness.core.fault import FaultContext, UserError
from harness.core.registry import fault_types
from tests.json_reply import send_json


def pod(name: str, node: str, phase: str = "Running") -> dict:
    return {"metadata": {"name": name, "namespace": "ml", "labels": {"app": "fraud"}},
            "spec": {"nodeName": node, "containers": [{"name": "serve", "image": "fraud:1"}]},
            "status": {"phase": phase}}


class RecordingApiServer:
    """Answers list pods / delete pod / get node / patch node, and records each request."""

    def __init__(self, pods: list[dict], cordoned: set[str] = frozenset()) -> None:
        self.requests: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, body: dict, status: int = 200) -> None:
                send_json(self, body, status)

            def _handle(self) -> None:
                url = urlsplit(self.path)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                outer.requests.append({"method": self.command, "path": url.path, "query": parse_qs(url.query),
                                       "body": body, "content_type": self.headers.get("Content-Type")})
                parts = url.path.strip("/").split("/")
                if self.command == "GET" and parts[-1] == "pods":
                    return self._answer({"kind": "PodList", "apiVersion": "v1", "metadata": {}, "items": pods})
                if parts[:3] == ["api", "v1", "nodes"]:
                    name = parts[3]
                    unsched = name in cordoned if self.command == "GET" else body["spec"]["unschedulable"]
                    return self._answer({"kind": "Node", "apiVersion": "v1", "metadata": {"name": name},
                                         "spec": {"unschedulable": unsched}})
                if self.command == "DELETE":
                    return self._answer(pod(parts[-1], "n"))
                self._answer({"kind": "Status", "code": 404}, 404)

            do_GET = do_DELETE = do_PATCH = _handle

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def kubeconfig(self, path) -> str:
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "test",
            "clusters": [{"name": "test", "cluster": {"server": self.url}}],
            "users": [{"name": "test", "user": {"token": "t"}}],
            "contexts": [{"name": "test", "context": {"cluster": "test", "user": "test"}}],
        }))
        return str(path)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def api(request):
    servers = []

    def start(pods, cordoned=frozenset()):
        servers.append(RecordingApiServer(pods, cordoned))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def build(fault_type: str, events: list | None = None, **params):
    cls = fault_types()[fault_type]
    kw = {"journal": lambda event, **f: events.append({"event": event, **f})} if events is not None else {}
    return cls("kill-pods", cls.Params(**params), FaultContext(toxiproxy_url="", seed=1, **kw))


def test_pod_delete_lists_by_selector_and_deletes_the_picked_pods_with_grace(api, tmp_path):
    server = api([pod("a", "n1"), pod("b", "n1"), pod("c", "n2"), pod("d", "n2", phase="Pending")])
    events: list = []
    fault = build("kubernetes.pod_delete", events, namespace="ml", label_selector="app=fraud",
                  field_selector="status.phase=Running", grace_period="5s", percent="50%",
                  kubeconfig=server.kubeconfig(tmp_path / "kc"))
    assert len(fault.undo_record()["pods"]) == 2  # 50% of the 3 running pods, rounded up
    fault.inject()
    fault.revert()
    listing, *deletes = server.requests
    assert listing["path"] == "/api/v1/namespaces/ml/pods"
    assert listing["query"] == {"labelSelector": ["app=fraud"], "fieldSelector": ["status.phase=Running"]}
    assert [d["method"] for d in deletes] == ["DELETE", "DELETE"]
    assert {d["path"].rsplit("/", 1)[1] for d in deletes} <= {"a", "b", "c"}
    assert all(d["body"] == {"gracePeriodSeconds": 5} for d in deletes)
    assert [e["action"] for e in events] == ["delete_pod", "delete_pod"]


def test_preempt_cordons_schedulable_nodes_deletes_and_uncordons_on_revert(api, tmp_path):
    server = api([pod("a", "n1"), pod("b", "n2")], cordoned={"n2"})
    fault = build("kubernetes.preempt", namespace="ml", label_selector="app=fraud",
                  kubeconfig=server.kubeconfig(tmp_path / "kc"))
    record = fault.undo_record()
    assert record["uncordon"] == ["n1"]  # n2 was already cordoned by someone else: left alone
    fault.inject()
    fault.revert()
    patches = [r for r in server.requests if r["method"] == "PATCH"]
    assert [(p["path"], p["body"]) for p in patches] == [
        ("/api/v1/nodes/n1", {"spec": {"unschedulable": True}}),
        ("/api/v1/nodes/n1", {"spec": {"unschedulable": False}}),
    ]
    assert all("patch" in p["content_type"] for p in patches)
    deletes = [r for r in server.requests if r["method"] == "DELETE"]
    assert len(deletes) == 2 and all(d["body"] == {"gracePeriodSeconds": 30} for d in deletes)
    # after a SIGKILL of the harness: the ledger record alone uncordons the node again
    server.requests.clear()
    assert fault_types()["kubernetes.preempt"].replay_undo(record) == "uncordoned node n1"
    assert server.requests[0]["body"] == {"spec": {"unschedulable": False}}


def test_no_matching_pod_and_bad_config_are_user_errors(api, tmp_path):
    server = api([pod("a", "n1", phase="Succeeded")])
    with pytest.raises(UserError, match="no running pod in namespace 'ml' matches 'app=fraud'"):
        build("kubernetes.pod_delete", namespace="ml", label_selector="app=fraud",
              kubeconfig=server.kubeconfig(tmp_path / "kc")).inject()
    with pytest.raises(UserError, match="cannot load a Kubernetes config"):
        build("kubernetes.pod_delete", label_selector="app=x", kubeconfig=str(tmp_path / "missing")).inject()
    with pytest.raises(ValueError, match="would match every pod"):
        fault_types()["kubernetes.pod_delete"].Params(label_selector=" ")


def test_chaos_mesh_manifests_render_and_validate():
    delete = build("kubernetes.pod_delete", namespace="ml", label_selector="app=fraud,tier==serve",
                   count=2, grace_period="10s", context="kind-test")
    m = delete.chaos_mesh()
    assert m["kind"] == "PodChaos" and chaos_mesh.validate(m) == []
    assert m["spec"] == {"action": "pod-kill", "mode": "fixed", "value": "2", "gracePeriod": 10,
                         "selector": {"namespaces": ["ml"], "labelSelectors": {"app": "fraud", "tier": "serve"}}}
    pre = build("kubernetes.preempt", namespace="ml", label_selector="app=fraud", percent="25%",
                context="kind-test").chaos_mesh()
    assert (pre["spec"]["mode"], pre["spec"]["value"], pre["spec"]["gracePeriod"]) == ("fixed-percent", "25", 30)
    stress = chaos_mesh.stress_chaos("burn", "ml", "app=fraud", cpu_workers=2, cpu_load=80,
                                     memory_size="256MB", duration=90)
    assert chaos_mesh.validate(stress) == [] and stress["spec"]["duration"] == "90s"
    docs = list(yaml.safe_load_all(chaos_mesh.to_yaml([m, stress])))
    assert docs == [m, stress]


def test_chaos_mesh_validation_catches_broken_manifests():
    m = chaos_mesh.pod_chaos("Bad_Name", "ml", "app=x", action="container-kill", count=3, duration=1.5)
    m["spec"]["mode"] = "fixed-percent"
    m["spec"]["value"] = "150"
    m["spec"]["duration"] = "1.5 seconds"
    errors = chaos_mesh.validate(m)
    assert any("DNS-1123" in e for e in errors)
    assert any("percentage in 1..100" in e for e in errors)
    assert any("Go duration" in e for e in errors)
    assert any("containerNames is required" in e for e in errors)
    with pytest.raises(ValueError, match="only key=value terms"):
        chaos_mesh.parse_label_selector("app in (a,b)")
