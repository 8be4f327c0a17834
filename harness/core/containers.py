"""Containers the harness runs (Docker SDK): host network, labels, readiness, stop + remove.

The counterpart of processes.py for dependencies declared with `container:`. A
container is named and labelled with its run, so the undo ledger can name it before it
exists and `aftershock cleanup` removes exactly it (and only if the labels still say
it is that run's) after a SIGKILL of the harness.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

from harness.core.fault import UserError
from harness.core.polling import wait_until
from harness.core.safety import check_host_allowed

RUN_LABEL = "aftershock.run"
SCENARIO_LABEL = "aftershock.scenario"
DEPENDENCY_LABEL = "aftershock.dependency"


def docker_client(host: str | None, allowed_hosts: Iterable[str] = ()) -> Any:
    """A Docker SDK client for `host` (DOCKER_HOST or the local socket when None), pinged.

    The daemon's address passes the safety check first, DOCKER_HOST included: a remote
    daemon runs containers on another machine."""
    where = host or os.environ.get("DOCKER_HOST")
    if where:
        check_host_allowed(where, allowed_hosts, "docker_host" if host else "DOCKER_HOST")
    try:
        import docker  # optional extra: `pip install aftershock[docker]`
        from docker.errors import DockerException
    except ImportError:
        raise UserError("container dependencies need the Docker SDK: pip install 'aftershock[docker]'") from None
    try:
        client = docker.DockerClient(base_url=host) if host else docker.from_env()
        client.ping()
    except DockerException as exc:
        where = host or "DOCKER_HOST or /var/run/docker.sock"
        raise UserError(f"no Docker daemon reachable at {where} ({exc}): start dockerd, or set docker_host: "
                        "to one that runs") from None
    return client


def host_python_mounts() -> dict[str, str]:
    """Host paths a bare image needs to run this interpreter and import this project.

    The interpreter's prefixes, every directory on sys.path (site-packages, an editable
    install's source), this project's root, and the system's /usr, /lib, /lib64 for the
    shared libraries; nested paths are left out (their parent is mounted).
    """
    project = Path(__file__).resolve().parents[2]  # harness/core/ -> the checkout
    wanted = [sys.base_prefix, sys.prefix, str(project), "/usr", "/lib", "/lib64",
              *(p for p in sys.path if p.startswith("/"))]
    paths = sorted({str(Path(p)) for p in wanted if p != "/" and Path(p).exists()})
    kept: list[str] = []
    for p in paths:  # sorted: a parent comes before what is under it
        if not any(p == k or p.startswith(k + "/") for k in kept):
            kept.append(p)
    return {p: p for p in kept}


class ManagedContainer:
    """One container: started detached on the host network, logs kept at stop, removed."""

    def __init__(self, name: str, client: Any, image: str, command: list[str], *, container_name: str,
                 labels: dict[str, str], env: dict[str, str], volumes: dict[str, str], log_path: Path,
                 working_dir: str | None = None) -> None:
        self.name = name
        self.client = client
        self.image = image
        self.command = command
        self.container_name = container_name
        self.labels = labels
        self.env = env
        self.volumes = volumes  # host path -> container path[:rw]
        self.log_path = log_path
        self.working_dir = working_dir
        self.container: Any = None

    @property
    def id(self) -> str | None:
        return self.container.id if self.container is not None else None

    def host_pid(self) -> int | None:
        """The pid of the container's main process as the host sees it."""
        if self.container is None:
            return None
        self.container.reload()
        return self.container.attrs["State"].get("Pid") or None

    def start(self) -> None:
        from docker.errors import APIError, ImageNotFound

        binds = {}
        for host, inside in self.volumes.items():
            path, _, mode = inside.partition(":")
            binds[host] = {"bind": path, "mode": "rw" if mode == "rw" else "ro"}
        try:
            self.container = self.client.containers.run(
                self.image, self.command, detach=True, name=self.container_name, labels=self.labels,
                environment=self.env, volumes=binds, network_mode="host", working_dir=self.working_dir,
                init=True,  # PID 1 of a container ignores SIGTERM; docker's init passes it on
            )
        except ImageNotFound:
            raise UserError(f"{self.name}: no image {self.image!r} on the Docker daemon: build or pull it first") from None
        except APIError as exc:
            if exc.status_code == 409:
                raise UserError(f"{self.name}: a container named {self.container_name!r} already exists "
                                f"(`docker rm -f {self.container_name}`, or `aftershock cleanup` after a crash)") from None
            raise UserError(f"{self.name}: Docker could not run {self.image!r}: {exc.explanation or exc}") from None

    def status(self) -> str:
        from docker.errors import NotFound

        try:
            self.container.reload()
        except NotFound:
            return "removed"
        return self.container.status

    def logs(self, lines: int = 20) -> str:
        try:
            text = self.container.logs(tail=lines).decode("utf-8", errors="replace")
        except Exception:  # noqa: BLE001 (gone already: nothing to show)
            return "(no log)"
        return text.rstrip() or "(empty log)"

    def wait_http_ready(self, url: str, timeout: float) -> None:
        """Poll `url` until it answers 2xx; on timeout or early exit, show the log's tail."""
        def ready() -> bool:
            if self.status() not in ("created", "running"):
                raise UserError(f"{self.name}: container {self.container_name} stopped ({self.status()}) before it "
                                f"was ready; its last log lines:\n{self.logs()}")
            try:
                return httpx.get(url, timeout=1.0, trust_env=False).status_code < 300
            except httpx.HTTPError:
                return False

        if wait_until(ready, timeout, interval=0.2):
            return
        raise UserError(f"{self.name}: container {self.container_name} was not ready at {url} within {timeout:g}s; "
                        f"its last log lines:\n{self.logs()}")

    def stop(self, grace: float = 5.0) -> None:
        """Unpause, stop (SIGTERM, SIGKILL after `grace`), keep its log, remove. Idempotent."""
        from docker.errors import NotFound

        if self.container is None:
            return
        try:
            self.container.reload()
            if self.container.status == "paused":  # a frozen container cannot act on SIGTERM
                self.container.unpause()
            if self.container.status in ("running", "paused"):
                self.container.stop(timeout=max(0, round(grace)))
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            self.log_path.write_bytes(self.container.logs())
            self.container.remove(force=True)
        except NotFound:
            pass


def remove_leftover(docker_host: str | None, container_name: str, run_id: str,
                    allowed_hosts: Iterable[str] = ()) -> str:
    """Crash undo: remove the run's container by name, if it is still that run's."""
    from docker.errors import NotFound

    client = docker_client(docker_host, allowed_hosts)
    try:
        c = client.containers.get(container_name)
    except NotFound:
        return "already gone"
    if c.labels.get(RUN_LABEL) != run_id:
        return f"left alone: the container now named so belongs to another run ({c.labels.get(RUN_LABEL)})"
    c.remove(force=True)
    return "removed"
