"""Which optional extras (`pip install 'aftershock[...]'`) a scenario needs to run, so that an
exported CI workflow installs them instead of failing at the first run."""

from __future__ import annotations

from harness.engine.scenario.loader import LoadedScenario

# fault type prefix -> extra; a type not listed runs on a core install
_FAULT_EXTRAS = {"container.": "docker", "kubernetes.": "k8s", "data.image_corruption": "ml"}


def scenario_extras(loaded: LoadedScenario) -> set[str]:
    """The extras a scenario needs: `ml` for the demo target and attacks (torch, ART),
    `docker` and `k8s` for container and Kubernetes faults."""
    s = loaded.scenario
    need = set()
    if s.target.demo or s.timeline.attacks:
        need.add("ml")
    for f in s.timeline.faults:
        need.update(extra for prefix, extra in _FAULT_EXTRAS.items() if f.type.startswith(prefix))
    return need

