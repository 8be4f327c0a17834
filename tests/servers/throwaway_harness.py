"""A throwaway harness for the infrastructure-fault tests: writes the ledger, starts the
processes, injects one fault, prints the pids, then waits to be SIGKILLed.

    python tests/servers/throwaway_harness.py SPEC_JSON

SPEC_JSON: {"type", "params", "processes": {name: argv}, "ledger_dir", "log_dir",
"wait", "ready_url"} (ready_url: each process is started and then waited for there).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from harness.core.fault import FaultContext
from harness.core.processes import ManagedProcess
from harness.core.registry import fault_types
from harness.engine.ledger import Ledger


def main() -> None:
    spec = json.loads(sys.argv[1])
    ledger = Ledger(Path(spec["ledger_dir"]), "run")
    procs = {}
    for name, argv in spec["processes"].items():
        p = ManagedProcess(name, argv, Path(spec["log_dir"]) / f"{name}.log")
        p.start()
        ledger.process_started(name, p.pid)
        if spec.get("ready_url"):
            p.wait_http_ready(spec["ready_url"], timeout=30)
        procs[name] = p
    members = {n: [m.pid for m in p.members()] for n, p in procs.items()}
    cls = fault_types()[spec["type"]]
    fault = cls("crashy", cls.Params(**spec["params"]), FaultContext(toxiproxy_url="", processes=procs))
    ledger.fault_planned("run:crashy", cls.type, fault.undo_record())
    fault.inject()
    time.sleep(spec.get("wait", 0))
    print(json.dumps({"pids": {n: p.pid for n, p in procs.items()}, "members": members}), flush=True)
    time.sleep(600)


if __name__ == "__main__":
    main()
