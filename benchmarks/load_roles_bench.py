"""Where the load engine's extra cost goes with --processes: CPU by process role.

The same bare-vs-harness A/B as load_bench.py (same server, user class and process
count, rounds interleaved), but each Locust process meters itself by role (master or
worker: CPU between test start and stop, requests it sent), the harness plugin's
per-tick work is timed in-process (recorder drains, sends to the master, the master's
stream writes; by wrapping the plugin's functions, nothing changed in the plugin), and
the bench process meters its own CPU (the runner side: the harness's LoadProcess reads
and merges the window stream; bare Locust's parent only waits). Every figure is per
request the server answered, in µs, so bare and harness compare whatever their req/s.

    python benchmarks/load_roles_bench.py [--seconds 5] [--rounds 3] [--users 40]
                                          [--processes 2,4] [--clock-listeners]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from load_bench import BENCH_USER, bare, harness

ROLES_ENV = "AFTERSHOCK_BENCH_ROLES"  # where each Locust process writes its role meter

ROLE_METER = """
import gc, sys, time
from locust import events

ROLE = {"cpu": None, "requests": 0, "ticks": {}}
TICKS = ROLE["ticks"]


def _timed(name, fn, clock=time.process_time):
    def wrapper(*args, **kwargs):
        t = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            s = TICKS.setdefault(name, [0, 0.0])
            s[0] += 1
            s[1] += clock() - t
    return wrapper


_plugin = sys.modules.get("harness.engine.load.plugin")  # present only in the harness's children
if _plugin is not None:  # the listeners call these through module globals: wrapping times them
    _plugin._emit = _timed("send to master or write (tick)", _plugin._emit)
    _plugin._write = _timed("stream write (master)", _plugin._write)
    _rec = sys.modules["harness.engine.load.recorder"].WindowRecorder
    _rec.drain = _timed("drain (tick): bucket + HDR encode", _rec.drain)
    _win = sys.modules["harness.core.windows"].Window
    _win.to_record = _timed("  of which HDR encode (to_record)", _win.to_record)


_gc_started = [0.0]


def _gc_meter(phase, info):  # cyclic GC passes: per-request garbage, timed apart
    if phase == "start":
        _gc_started[0] = time.process_time()
    else:
        s = TICKS.setdefault("cyclic GC", [0, 0.0])
        s[0] += 1
        s[1] += time.process_time() - _gc_started[0]


gc.callbacks.append(_gc_meter)


@events.request.add_listener
def _count_role(**_):
    ROLE["requests"] += 1


def _clocked(name, fn):  # wall clock per call (a cheaper clock): a listener never yields
    return _timed(name, fn, time.perf_counter)


def _swap_listener(fn, name):
    handlers = events.request._handlers
    handlers[handlers.index(fn)] = _clocked(name, fn)


# --clock-listeners (it adds its own cost to every request, more on the harness's side):
# the same wrapper round a listener that only counts gives what the timing itself costs
CLOCKED = os.environ.get("AFTERSHOCK_BENCH_CLOCK") == "1"
if CLOCKED:
    _swap_listener(_count_role, "request listener: a counting one (timer overhead)")
if CLOCKED and _plugin is not None:
    _swap_listener(_plugin._on_request, "request listener: the plugin's (per request)")
    # inside it (each with the timer's overhead again): the response read and decode,
    # and the recorder's append
    _plugin._decode_foreign = _clocked("  of which response decode", _plugin._decode_foreign)
    _rec.record = _clocked("  of which recorder.record", _rec.record)


@events.test_start.add_listener
def _role_start(environment, **_):
    ROLE.update(requests=0, cpu=time.process_time(), role=type(environment.runner).__name__)
    for s in TICKS.values():
        s[0], s[1] = 0, 0.0


@events.test_stop.add_listener
def _role_stop(environment, **_):
    out = os.environ.get("AFTERSHOCK_BENCH_ROLES")
    if out and ROLE["cpu"] is not None:
        ROLE["cpu"] = time.process_time() - ROLE["cpu"]
        with open(os.path.join(out, f"{os.getpid()}.json"), "w") as f:
            json.dump(ROLE, f)
        ROLE["cpu"] = None
"""


def read_roles(folder: Path) -> dict[str, dict]:
    """Per role: CPU seconds, requests, process count, and the timed plugin work."""
    out: dict[str, dict] = {}
    for f in folder.glob("*.json"):
        m = json.loads(f.read_text())
        role = (
            "master"
            if m["role"] == "MasterRunner"
            else "worker"
            if m["role"] == "WorkerRunner"
            else "local"
        )
        r = out.setdefault(role, {"cpu": 0.0, "requests": 0, "n": 0, "ticks": defaultdict(float)})
        r["cpu"] += m["cpu"]
        r["requests"] += m["requests"]
        r["n"] += 1
        for name, (_, s) in m["ticks"].items():
            r["ticks"][name] += s
    return out


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--users", type=int, default=40)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", default="2,4")
    ap.add_argument(
        "--clock-listeners",
        action="store_true",
        help="time the plugin's request listener per call (adds ~1 us a request per timer)",
    )
    args = ap.parse_args()
    counts = [int(p) for p in args.processes.split(",")]
    # (side, p) -> list of per-round dicts of µs per request
    rows: dict[tuple[str, int], list[dict[str, float]]] = defaultdict(list)
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "bench_user.py"
        locustfile.write_text(BENCH_USER + ROLE_METER)
        for r in range(args.rounds):
            for p in counts:
                for side in ("bare", "harness") if r % 2 == 0 else ("harness", "bare"):
                    with tempfile.TemporaryDirectory() as roles:
                        os.environ[ROLES_ENV] = roles
                        os.environ["AFTERSHOCK_BENCH_CLOCK"] = "1" if args.clock_listeners else ""
                        parent = self_cpu()
                        if side == "bare":
                            run = bare(locustfile, args.users, args.seconds, p)
                        else:
                            run, diff = harness(
                                {"locustfile": str(locustfile)}, args.users, args.seconds, p
                            )
                            assert diff == 0, (
                                f"windows counted {diff:+d} requests against the server's"
                            )
                        parent = self_cpu() - parent
                        del os.environ[ROLES_ENV]
                        got = read_roles(Path(roles))
                    served = run.rps * run.load_s  # requests the server answered
                    us = {"req/s": run.rps, "runner (bench process)": parent / served * 1e6}
                    for role, m in got.items():
                        us[f"{role} CPU"] = m["cpu"] / served * 1e6
                        for name, s in m["ticks"].items():
                            us[f"  {role}: {name}"] = s / served * 1e6
                    rows[(side, p)].append(us)
                    print(
                        f"round {r} {side} p={p}: "
                        + ", ".join(f"{k.strip()} {v:.1f}" for k, v in us.items()),
                        flush=True,
                    )
    print(f"# load average before {load_before[0]:.1f}, after {os.getloadavg()[0]:.1f}")
    for p in counts:
        print(
            f"\n## {p} processes, µs per request served (median of {args.rounds} rounds; req/s as is)"
        )
        keys = list(
            dict.fromkeys(k for side in ("bare", "harness") for d in rows[(side, p)] for k in d)
        )
        for k in keys:
            b = [d[k] for d in rows[("bare", p)] if k in d]
            h = [d[k] for d in rows[("harness", p)] if k in d]
            mb = statistics.median(b) if b else None
            mh = statistics.median(h) if h else None
            ratio = f"{mh / mb:.3f}" if mb and mh else ""
            fmt = lambda v: "-" if v is None else f"{v:.2f}"
            print(f"{k:<40} bare {fmt(mb):>9}  harness {fmt(mh):>9}  {ratio}")


if __name__ == "__main__":
    main()
