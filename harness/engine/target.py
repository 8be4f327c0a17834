"""The system under test: start (or attach to) the target and its dependencies.

Dependencies are started first, each on a free port; a proxy is created in front of
each on the fault proxy; the target is then started pointing at the proxies, so the
fault proxy sits on every path from the target to its dependencies.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.core.containers import (
    DEPENDENCY_LABEL,
    RUN_LABEL,
    SCENARIO_LABEL,
    ManagedContainer,
    docker_client,
    host_python_mounts,
)
from harness.core.extras import require_extra
from harness.core.fault import Dependency, UserError
from harness.core.processes import ManagedProcess, free_port
from harness.core.safety import check_host_allowed
from harness.engine.probes.placeholders import fill_target_url
from harness.engine.scenario.model import ContainerSpec, Scenario, StartCommand

HOST = "127.0.0.1"


def demo_state_dir() -> Path:
    """Where the demo caches its trained model, shared by runs so training happens once."""
    base = os.environ.get("AFTERSHOCK_CACHE") or os.path.join(Path.home(), ".cache", "aftershock")
    return Path(base) / "demo"


@dataclass
class SystemUnderTest:
    scenario: Scenario
    run_dir: Path
    proxy_client: Any  # faults.proxy.client.ToxiproxyClient
    ledger: Any  # harness.engine.ledger.Ledger: every process and proxy is recorded for cleanup
    journal: Any  # harness.engine.journal.Journal
    processes: dict[str, ManagedProcess] = field(default_factory=dict)
    containers: dict[str, ManagedContainer] = field(default_factory=dict)
    dependencies: dict[str, Dependency] = field(default_factory=dict)
    base_url: str = ""
    dataset_path: Path | None = None

    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopping: bool = False

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: str | None = None) -> ManagedProcess:
        # start() runs in a worker thread that a Ctrl-C cannot stop: the lock makes sure
        # nothing is spawned once stop() has begun.
        with self._lock:
            if self._stopping:
                raise UserError(f"not starting {name}: the run is stopping")
            proc = ManagedProcess(name, argv, self.run_dir / "logs" / f"{name}.log", env=env, cwd=cwd)
            proc.on_start = self._record_start
            proc.start()
            self.processes[name] = proc
        return proc

    def _record_start(self, proc: ManagedProcess) -> None:
        self.ledger.process_started(proc.name, proc.pid)
        self.journal.write("process.started", name=proc.name, pid=proc.pid, argv=proc.argv)

    def start(self) -> None:
        s = self.scenario
        for name, dep in s.dependencies.items():
            upstream = self._start_dependency(name, dep)
            proxy_name = f"aftershock-{name}-{os.getpid()}"  # unique on a shared external server
            self.ledger.route_created(proxy_name, self.proxy_client.url, proxy_name)
            listen = self.proxy_client.create_proxy(name=proxy_name, upstream=upstream, listen=f"{HOST}:0").listen
            self.dependencies[name] = Dependency(name=name, proxy_name=proxy_name, listen=listen, upstream=upstream)
        t = s.target
        if t.demo:
            self._start_demo_target()
        elif t.start:
            port = free_port()
            self._start_command("target", t.start, port)
            self.base_url = f"http://{HOST}:{port}"
        else:  # `{deps[NAME]}` reaches the target through the proxy (client-side faults)
            self.base_url = fill_target_url(t.url, {n: d.listen for n, d in self.dependencies.items()})
        # the final address, right before the load, probes and attacks are handed it
        check_host_allowed(self.base_url, s.safety.allowed_hosts, "target")
        for name, job in s.jobs.items():
            values = {"run_dir": str(self.run_dir.resolve()), "target": self.base_url, "python": sys.executable,
                      "deps": {n: d.listen for n, d in self.dependencies.items()}}
            try:
                argv = [part.format(**values) for part in job.command]
                env = {k: v.format(**values) for k, v in job.env.items()}
                ready = job.ready and Path(job.ready.file.format(**values))
            except (KeyError, IndexError, ValueError) as exc:
                raise UserError(f"jobs.{name}: cannot fill in {exc}: use {{python}}, {{run_dir}}, {{target}} or {{deps[NAME]}}") from None
            proc = self._spawn(name, argv, env=env, cwd=job.cwd)
            if ready:
                proc.wait_file_ready(ready, job.ready.timeout, job.ready.contains)

    def _start_dependency(self, name: str, dep: Any) -> str:
        if dep.container:
            port = free_port()
            self._start_container(name, dep.container, port, demo_store=dep.upstream == "demo")
            return f"{HOST}:{port}"
        if dep.upstream == "demo" and self.scenario.target.demo == "llm":
            port = free_port()
            proc = self._spawn(name, [sys.executable, "-m", "harness.demo", "llm-backend", "--host", HOST,
                                      "--port", str(port), "--state-dir", str(demo_state_dir()), *self._canary_flag()])
            # the first start trains the model: it gets the target's ready timeout
            proc.wait_http_ready(f"http://{HOST}:{port}/health", timeout=self.scenario.target.ready_timeout)
            return f"{HOST}:{port}"
        if dep.upstream == "demo":
            port = free_port()
            # the demo's world seed (entities, labelling rule) stays its default: the
            # cached model was trained on it; the scenario seed picks the payload sample
            proc = self._spawn(name, [sys.executable, "-m", "harness.demo", "feature-store", "--host", HOST,
                                      "--port", str(port)])
            proc.wait_http_ready(f"http://{HOST}:{port}/health", timeout=30)
            return f"{HOST}:{port}"
        if dep.start:
            port = free_port()
            self._start_command(name, dep.start, port)
            return f"{HOST}:{port}"
        return check_host_allowed(dep.upstream, self.scenario.safety.allowed_hosts, f"dependencies.{name}.upstream")

    def _placeholders(self, port: int) -> dict[str, Any]:
        return {"port": port, "python": sys.executable, "deps": {n: d.listen for n, d in self.dependencies.items()}}

    def _start_command(self, name: str, spec: StartCommand, port: int) -> None:
        values = self._placeholders(port)
        try:
            argv = [part.format(**values) for part in spec.command]
            env = {k: v.format(**values) for k, v in spec.env.items()}
        except (KeyError, IndexError, ValueError) as exc:
            raise UserError(f"{name}.start: cannot fill in {exc} in the command: use {{port}}, {{python}} or {{deps[NAME]}}") from None
        proc = self._spawn(name, argv, env=env, cwd=spec.cwd)
        proc.wait_http_ready(f"http://{HOST}:{port}{spec.ready.path}", timeout=spec.ready.timeout)

    def _start_container(self, name: str, spec: ContainerSpec, port: int, demo_store: bool) -> None:
        """Run the dependency in a container on the host network; recorded in the ledger first."""
        if demo_store:
            argv = [sys.executable, "-m", "harness.demo", "feature-store", "--host", HOST, "--port", str(port)]
            env, ready = {}, f"http://{HOST}:{port}/health"
        else:
            values = self._placeholders(port)
            try:
                argv = [part.format(**values) for part in spec.command or []]
                env = {k: v.format(**values) for k, v in spec.env.items()}
            except (KeyError, IndexError, ValueError) as exc:
                raise UserError(f"{name}.container: cannot fill in {exc} in the command: use {{port}}, {{python}} or {{deps[NAME]}}") from None
            ready = f"http://{HOST}:{port}{spec.ready.path}"
        volumes = dict(spec.volumes)
        workdir = None
        if spec.host_python or demo_store:
            volumes = {**host_python_mounts(), **volumes}
            env = {"PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1", **env}
            if os.environ.get("PYTHONPATH"):
                env.setdefault("PYTHONPATH", os.environ["PYTHONPATH"])
            workdir = str(Path(__file__).resolve().parents[2])  # `-m harness...` resolves here
        client = docker_client(spec.docker_host, self.scenario.safety.allowed_hosts)
        run_id = self.run_dir.name
        container_name = spec.name or f"aftershock-{name}-{run_id}"
        labels = {RUN_LABEL: run_id, SCENARIO_LABEL: self.scenario.name, DEPENDENCY_LABEL: name}
        box = ManagedContainer(name, client, spec.image, argv, container_name=container_name, labels=labels,
                               env=env, volumes=volumes, log_path=self.run_dir / "logs" / f"{name}.log",
                               working_dir=workdir)
        with self._lock:  # as _spawn: nothing starts once stop() has begun
            if self._stopping:
                raise UserError(f"not starting {name}: the run is stopping")
            self.ledger.container_started(name, container_name, run_id, spec.docker_host)
            self.containers[name] = box
            box.start()
        self.journal.write("container.started", name=name, container=container_name, id=box.id,
                           image=spec.image, argv=argv, labels=labels, host_pid=box.host_pid())
        box.wait_http_ready(ready, timeout=spec.ready.timeout)

    def _canary_flag(self) -> list[str]:
        canary = self.scenario.target.canary
        return ["--canary", canary] if canary is not None else []

    def _start_demo_target(self) -> None:
        require_extra("torch", "ml", "the demo target")  # its model server; said here, not in its log
        t = self.scenario.target
        store = next(d for n, d in self.dependencies.items() if self.scenario.dependencies[n].upstream == "demo")
        port = free_port()
        state = demo_state_dir()
        if t.demo == "llm":  # the gateway reaches the model backend through the fault proxy
            argv = [sys.executable, "-m", "harness.demo", "llm-gateway", "--host", HOST, "--port", str(port),
                    "--backend", f"http://{store.listen}", "--mode", t.mode, "--state-dir", str(state),
                    *self._canary_flag(), *t.args]
            self._spawn("target", argv).wait_http_ready(f"http://{HOST}:{port}/health", timeout=t.ready_timeout)
            self.base_url = f"http://{HOST}:{port}"
            return
        argv = [sys.executable, "-m", "harness.demo", "serve", "--host", HOST, "--port", str(port),
                "--feature-store", f"http://{store.listen}", "--mode", t.mode, "--state-dir", str(state),
                "--model-name", t.model]
        if t.feature_timeout is not None:
            argv += ["--feature-timeout", f"{t.feature_timeout:g}"]
        argv += t.args
        proc = self._spawn("target", argv)
        proc.wait_http_ready(f"http://{HOST}:{port}/v2/health/ready", timeout=t.ready_timeout)
        self.base_url = f"http://{HOST}:{port}"

    def demo_dataset(self) -> Path:
        """The demo's labelled evaluation set, exported once per run into the run folder."""
        out = self.run_dir / "demo-data.npz"
        proc = ManagedProcess("export-data", [sys.executable, "-m", "harness.demo", "export-data", "--out", str(out),
                                              "--seed", str(self.scenario.seed + 1)],
                              self.run_dir / "logs" / "export-data.log")
        proc.start()
        try:
            code = proc.proc.wait(timeout=120)
        finally:
            proc.stop(grace=1)
        if code != 0 or not out.exists():
            raise RuntimeError(f"the demo could not export its dataset (exit {code}); see {proc.log_path}")
        return out

    def stop(self) -> None:
        """Stop the target first, then its dependencies; every one, whatever fails."""
        with self._lock:
            self._stopping = True
        jobs = [n for n in self.processes if n in self.scenario.jobs]
        rest = [n for n in self.processes if n != "target" and n not in jobs]
        for name in [*jobs, "target", *rest]:
            proc = self.processes.get(name)
            if proc is None:
                continue
            try:
                proc.stop()
            except Exception as exc:  # noqa: BLE001 (stop the others; the ledger keeps it for cleanup)
                self.journal.write("teardown.error", step=f"stop process {name}", error=str(exc))
                continue
            self.ledger.process_done(name)
            self.journal.write("process.stopped", name=name, returncode=proc.proc.returncode if proc.proc else None)
        for name, box in self.containers.items():
            try:
                box.stop()
                self.journal.write("container.removed", name=name, container=box.container_name)
            except Exception as exc:  # noqa: BLE001 (no daemon: the ledger keeps it for cleanup)
                self.journal.write("teardown.error", step=f"remove container {box.container_name}", error=str(exc))
                continue
            self.ledger.container_done(name)
        for dep in self.dependencies.values():
            if self._delete_proxy(dep.proxy_name):
                self.ledger.route_done(dep.proxy_name)

    def _delete_proxy(self, proxy_name: str, attempts: int = 3) -> bool:
        """Delete one proxy, retrying a failure; False (logged) if it may still be there."""
        for attempt in range(1, attempts + 1):
            try:
                self.proxy_client.delete_proxy(proxy_name)
                return True
            except Exception as exc:  # noqa: BLE001 (the ledger keeps it open for `cleanup`)
                self.journal.write("teardown.error", step=f"delete proxy {proxy_name}", attempt=attempt, error=str(exc))
                if attempt < attempts:
                    time.sleep(0.5 * attempt)
        return False
