"""Chaos Mesh manifests equivalent to aftershock faults, for teams that run Chaos Mesh.

`pod_chaos()` and `stress_chaos()` build `chaos-mesh.org/v1alpha1` objects (PodChaos,
StressChaos); `validate()` checks one against the parts of the CRD schema we emit
(required fields, enums, `value` per `mode`, duration syntax); `to_yaml()` writes
them as one multi-document YAML for `kubectl apply -f`.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

API_VERSION = "chaos-mesh.org/v1alpha1"
MODES = ("one", "all", "fixed", "fixed-percent", "random-max-percent")
POD_ACTIONS = ("pod-kill", "pod-failure", "container-kill")
_DURATION = re.compile(r"^(\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")  # Go's time.ParseDuration
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def go_duration(seconds: float) -> str:
    """`30s`, `1500ms`: a duration Chaos Mesh (Go's time.ParseDuration) accepts."""
    if seconds == int(seconds):
        return f"{int(seconds)}s"
    return f"{round(seconds * 1000)}ms"


def mode_of(count: int | None, percent: float | None) -> tuple[str, str | None]:
    """Chaos Mesh `mode`/`value` for aftershock's blast radius (all, count, percent)."""
    if count is not None:
        return ("one", None) if count == 1 else ("fixed", str(count))
    if percent is not None:
        return "fixed-percent", str(max(1, round(percent * 100)))
    return "all", None


def parse_label_selector(selector: str) -> dict[str, str]:
    """`app=a,tier==b` -> labelSelectors; other terms (`!=`, `in`, `!key`) are refused."""
    labels: dict[str, str] = {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term or "=" not in term:
            raise ValueError(f"label selector term {term!r}: only key=value terms map to "
                             "Chaos Mesh labelSelectors")
        key, value = term.split("==" if "==" in term else "=", 1)
        labels[key.strip()] = value.strip()
    return labels


def _selector(namespace: str, label_selector: str) -> dict[str, Any]:
    return {"namespaces": [namespace], "labelSelectors": parse_label_selector(label_selector)}


def _spec_mode(spec: dict[str, Any], count: int | None, percent: float | None) -> None:
    mode, value = mode_of(count, percent)
    spec["mode"] = mode
    if value is not None:
        spec["value"] = value


def pod_chaos(name: str, namespace: str, label_selector: str, action: str = "pod-kill",
              count: int | None = None, percent: float | None = None,
              grace_period: float | None = None, duration: float | None = None,
              container_names: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"action": action, "selector": _selector(namespace, label_selector)}
    _spec_mode(spec, count, percent)
    if grace_period is not None and action == "pod-kill":
        spec["gracePeriod"] = int(grace_period)
    if duration is not None and action != "pod-kill":  # pod-kill is instantaneous
        spec["duration"] = go_duration(duration)
    if container_names:
        spec["containerNames"] = container_names
    return {"apiVersion": API_VERSION, "kind": "PodChaos",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def stress_chaos(name: str, namespace: str, label_selector: str, *, cpu_workers: int | None = None,
                 cpu_load: int | None = None, memory_size: str | None = None,
                 count: int | None = None, percent: float | None = None,
                 duration: float | None = None) -> dict[str, Any]:
    stressors: dict[str, Any] = {}
    if cpu_workers is not None:
        stressors["cpu"] = {"workers": cpu_workers, **({"load": cpu_load} if cpu_load is not None else {})}
    if memory_size is not None:
        stressors["memory"] = {"workers": 1, "size": memory_size}
    spec: dict[str, Any] = {"selector": _selector(namespace, label_selector), "stressors": stressors}
    _spec_mode(spec, count, percent)
    if duration is not None:
        spec["duration"] = go_duration(duration)
    return {"apiVersion": API_VERSION, "kind": "StressChaos",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def validate(manifest: dict[str, Any]) -> list[str]:
    """Problems with a PodChaos/StressChaos manifest (empty list: it is well formed)."""
    errors: list[str] = []
    if manifest.get("apiVersion") != API_VERSION:
        errors.append(f"apiVersion must be {API_VERSION}")
    kind = manifest.get("kind")
    if kind not in ("PodChaos", "StressChaos"):
        errors.append(f"kind {kind!r} is not PodChaos or StressChaos")
    meta = manifest.get("metadata") or {}
    name = meta.get("name", "")
    if not _NAME.match(name) or len(name) > 253:
        errors.append(f"metadata.name {name!r} is not a DNS-1123 subdomain (lower case, digits, '-', '.')")
    spec = manifest.get("spec") or {}
    mode = spec.get("mode")
    if mode not in MODES:
        errors.append(f"spec.mode {mode!r} is not one of {', '.join(MODES)}")
    value = spec.get("value")
    if mode in ("fixed", "fixed-percent", "random-max-percent"):
        if not isinstance(value, str) or not value.isdigit():
            errors.append(f"spec.value must be a string of digits for mode {mode}")
        elif mode != "fixed" and not 0 < int(value) <= 100:
            errors.append("spec.value must be a percentage in 1..100")
    sel = spec.get("selector")
    if not isinstance(sel, dict) or not sel:
        errors.append("spec.selector is required")
    elif "labelSelectors" in sel and not all(isinstance(v, str) for v in sel["labelSelectors"].values()):
        errors.append("spec.selector.labelSelectors values must be strings")
    if "duration" in spec and not _DURATION.match(str(spec["duration"])):
        errors.append(f"spec.duration {spec['duration']!r} is not a Go duration like 30s or 1m30s")
    if kind == "PodChaos":
        if spec.get("action") not in POD_ACTIONS:
            errors.append(f"spec.action {spec.get('action')!r} is not one of {', '.join(POD_ACTIONS)}")
        if spec.get("action") == "container-kill" and not spec.get("containerNames"):
            errors.append("spec.containerNames is required for container-kill")
        if "gracePeriod" in spec and (not isinstance(spec["gracePeriod"], int) or spec["gracePeriod"] < 0):
            errors.append("spec.gracePeriod must be a non-negative integer (seconds)")
    if kind == "StressChaos":
        st = spec.get("stressors") or {}
        if not st.get("cpu") and not st.get("memory"):
            errors.append("spec.stressors needs cpu or memory")
        if st.get("cpu") and not (isinstance(st["cpu"].get("workers"), int) and st["cpu"]["workers"] >= 1):
            errors.append("spec.stressors.cpu.workers must be an integer >= 1")
        if "load" in st.get("cpu", {}) and not 0 <= st["cpu"]["load"] <= 100:
            errors.append("spec.stressors.cpu.load must be in 0..100")
    return errors


def to_yaml(manifests: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(manifests, sort_keys=False)
