"""A model server whose worker runs in a session of its own, as BentoML's workers do.

    python tests/servers/own_session.py PORT

The process the harness starts is an arbiter: it starts the worker (the OIP v2
reference server, `harness.engine.load.reference_server PORT`) with `start_new_session=True`,
starts it again whenever it dies, and on SIGTERM stops it and exits. A signal sent to
the arbiter's process group therefore never reaches the worker: only a fault that acts
on the whole process tree takes this server down.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main() -> None:
    port = sys.argv[1]
    worker: subprocess.Popen[bytes] | None = None
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        if worker is not None and worker.poll() is None:
            worker.terminate()

    signal.signal(signal.SIGTERM, stop)
    while not stopping:
        worker = subprocess.Popen([sys.executable, "-m", "harness.engine.load.reference_server", port],
                                  cwd=ROOT, start_new_session=True)
        print(f"worker {worker.pid} started", flush=True)
        worker.wait()
        print(f"worker {worker.pid} exited with {worker.returncode}", flush=True)
        time.sleep(0.2)  # a supervisor's back-off before the next start


if __name__ == "__main__":
    main()
