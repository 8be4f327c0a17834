"""`aftershock worker --master HOST:PORT`: a Locust worker for a distributed run.

Runs `python -m locust --worker` with aftershock's locustfile (or the user's, with the
plugin attached) in its own process group; the run's config arrives from the master.
The dataset path in that config must be readable on this machine too.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from harness.core.fault import UserError
from harness.engine.load.process import child_env, locustfile_arg

STOP_GRACE_S = 15.0


def _master(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"expected HOST:PORT, e.g. 127.0.0.1:5557, got {value!r}")
    return host.strip("[]"), int(port)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="aftershock worker", description=__doc__.splitlines()[0])
    p.add_argument("--master", type=_master, required=True, help="the run's master, HOST:PORT")
    p.add_argument("--locustfile", help="your own locustfile (the same one the master runs)")
    p.add_argument("--processes", type=int, default=1, help="worker processes on this machine")
    return p


def worker_command(master: tuple[str, int], locustfile: str | None, processes: int) -> list[str]:
    argv = [sys.executable, "-m", "locust", "-f", locustfile_arg(locustfile), "--worker"]
    argv += ["--master-host", master[0], "--master-port", str(master[1])]
    if processes > 1:
        argv += ["--processes", str(processes)]
    return argv


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        cmd = worker_command(args.master, args.locustfile, args.processes)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, _terminate)
    proc = subprocess.Popen(cmd, env=child_env(), start_new_session=True)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        return 130
    finally:
        _stop(proc)
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
