"""Kubernetes faults through the official `kubernetes` client: pod deletion and spot preemption.

`kubernetes.pod_delete` deletes pods matched by a label selector (narrowed by `count`
/ `percent`) with a grace period; their controller recreates them, so there is
nothing to undo. `kubernetes.preempt` plays a spot node loss for the matched pods:
it cordons their nodes (no new pods land there) and deletes the pods with the grace
period a cloud gives (GCE 30s); the revert uncordons the nodes it cordoned, and the
undo record lists them for `replay_undo`. `chaos_mesh()` renders the equivalent
Chaos Mesh manifest of either fault.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pydantic import Field, field_validator, model_validator

from faults import chaos_mesh
from faults.selection import SelectorParams, select
from harness.core.fault import Fault, FaultParams, UserError
from harness.core.safety import check_host_allowed
from harness.core.units import Duration

NAME_THE_CLUSTER = ("name the cluster: set `kubeconfig:` (a file) and/or `context:`; aftershock never falls back "
                    "to the in-cluster config or the current kube context")


def core_api(kubeconfig: str | None, context: str | None, allowed_hosts: Iterable[str] = ()) -> Any:
    """A CoreV1Api for the cluster the scenario names, whose API server passes the safety check.

    Never the in-cluster config or a kube context nobody named: a laptop's current
    context may well be production. `context` alone reads ~/.kube/config (or KUBECONFIG)."""
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    if kubeconfig is None and context is None:
        raise UserError(NAME_THE_CLUSTER)
    try:
        api_client = config.new_client_from_config(config_file=kubeconfig, context=context)
    except (ConfigException, OSError) as exc:
        raise UserError(f"cannot load a Kubernetes config ({exc}); set `kubeconfig:` or KUBECONFIG") from None
    check_host_allowed(api_client.configuration.host, allowed_hosts, "Kubernetes API server")
    if api_client.configuration.proxy:  # a kubeconfig `proxy-url` carries every request there
        check_host_allowed(api_client.configuration.proxy, allowed_hosts, "Kubernetes proxy-url")
    return client.CoreV1Api(api_client)


class PodParams(SelectorParams):
    namespace: str = "default"
    label_selector: str = Field(description="a Kubernetes label selector, e.g. app=fraud,tier=serving")
    field_selector: str | None = Field(None, description="optional, e.g. spec.nodeName=node-1")
    grace_period: Duration | None = Field(None, description="termination grace; null = the pod's own")
    kubeconfig: str | None = None
    context: str | None = None

    @field_validator("label_selector")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("label_selector must not be empty: it would match every pod in the namespace")
        return v

    @model_validator(mode="after")
    def _cluster_named(self) -> PodParams:
        if self.kubeconfig is None and self.context is None:
            raise ValueError(NAME_THE_CLUSTER)
        return self


class PodFault(Fault):
    """Base: lists the matching running pods once and picks the blast radius."""

    Params = PodParams

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._api: Any = None
        self._pods: list[Any] | None = None

    def api(self) -> Any:
        if self._api is None:
            self._api = core_api(self.params.kubeconfig, self.params.context, self.ctx.allowed_hosts)
        return self._api

    def pods(self) -> list[Any]:
        if self._pods is None:
            p = self.params
            kwargs = {"label_selector": p.label_selector}
            if p.field_selector:
                kwargs["field_selector"] = p.field_selector
            items = self.api().list_namespaced_pod(p.namespace, **kwargs).items
            running = [pod for pod in items
                       if pod.status and pod.status.phase == "Running" and not pod.metadata.deletion_timestamp]
            if not running:
                raise UserError(f"{self.type}: no running pod in namespace {p.namespace!r} "
                                f"matches {p.label_selector!r}")
            self._pods = select(running, p, f"{self.ctx.seed}:{self.name}", key=lambda pod: pod.metadata.name)
        return self._pods

    def delete_options(self) -> Any:
        from kubernetes import client

        grace = self.params.grace_period
        return client.V1DeleteOptions(grace_period_seconds=None if grace is None else int(grace))

    def delete_pods(self) -> None:
        for pod in self.pods():
            self.api().delete_namespaced_pod(pod.metadata.name, self.params.namespace,
                                             body=self.delete_options())
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="delete_pod",
                             pod=pod.metadata.name, node=pod.spec.node_name if pod.spec else None)

    def chaos_mesh(self, duration: float | None = None) -> dict[str, Any]:
        p = self.params
        return chaos_mesh.pod_chaos(self.name, p.namespace, p.label_selector, "pod-kill", p.count,
                                    p.percent, p.grace_period, duration)


class PodDelete(PodFault):
    """Delete matching pods; their controller (Deployment, StatefulSet, …) recreates them."""

    type = "kubernetes.pod_delete"

    def undo_record(self) -> dict[str, Any]:
        return {"pods": [pod.metadata.name for pod in self.pods()], "namespace": self.params.namespace}

    def inject(self) -> None:
        self.delete_pods()

    def revert(self) -> None:
        """Nothing to undo: a deleted pod cannot be undeleted; its controller replaces it."""

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        return "nothing to undo (deleted pods are recreated by their controller)"


class PreemptParams(PodParams):
    grace_period: Duration | None = Field(30.0, description="notice before the kill (GCE spot: 30s)")
    cordon: bool = Field(True, description="mark the pods' nodes unschedulable, as a vanishing node is")


class PodPreempt(PodFault):
    """Spot preemption of the nodes under the matched pods: cordon, then delete with grace."""

    type = "kubernetes.preempt"
    Params = PreemptParams

    def __init__(self, name: str, params: FaultParams, ctx: Any) -> None:
        super().__init__(name, params, ctx)
        self._cordoned: list[str] | None = None

    def nodes_to_cordon(self) -> list[str]:
        """Nodes under the picked pods that are schedulable now (we uncordon only those)."""
        if self._cordoned is None:
            self._cordoned = []
            if self.params.cordon:
                names = sorted({pod.spec.node_name for pod in self.pods() if pod.spec and pod.spec.node_name})
                for node in names:
                    if not self.api().read_node(node).spec.unschedulable:
                        self._cordoned.append(node)
        return self._cordoned

    def undo_record(self) -> dict[str, Any]:
        return {"uncordon": self.nodes_to_cordon(), "kubeconfig": self.params.kubeconfig,
                "context": self.params.context, "allowed_hosts": list(self.ctx.allowed_hosts)}

    def inject(self) -> None:
        for node in self.nodes_to_cordon():
            self.api().patch_node(node, {"spec": {"unschedulable": True}})
            self.ctx.journal("fault.action", fault=self.name, type=self.type, action="cordon", node=node)
        self.delete_pods()

    def revert(self) -> None:
        if self._cordoned:
            for line in self._uncordon(self.api(), self._cordoned):
                self.ctx.journal("fault.action", fault=self.name, type=self.type, action="uncordon", done=line)

    @staticmethod
    def _uncordon(api: Any, nodes: list[str]) -> list[str]:
        from kubernetes.client.exceptions import ApiException

        done = []
        for node in nodes:
            try:
                api.patch_node(node, {"spec": {"unschedulable": False}})
                done.append(f"uncordoned node {node}")
            except ApiException as exc:
                if exc.status != 404:
                    raise
                done.append(f"node {node} no longer exists")
        return done

    @classmethod
    def replay_undo(cls, record: dict[str, Any]) -> str:
        if not record["uncordon"]:
            return "no node to uncordon"
        api = core_api(record.get("kubeconfig"), record.get("context"), record.get("allowed_hosts") or ())
        return "; ".join(cls._uncordon(api, record["uncordon"]))
