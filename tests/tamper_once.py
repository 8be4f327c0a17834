"""`python tests/tamper_once.py FILE`: inject `model.tamper` (flip) on FILE in this process,
revert it, and exit 7 with the UserError's message if the fault could not act.

The write-permission test runs it without CAP_DAC_OVERRIDE: a root process writes any file.
"""

from __future__ import annotations

import sys

from faults.lifecycle.tamper import ModelTamper, ModelTamperParams
from harness.core.fault import FaultContext, UserError


def main(path: str) -> int:
    fault = ModelTamper("tamper", ModelTamperParams(version="v2", path=path), FaultContext(toxiproxy_url=""))
    try:
        fault.inject()
    except UserError as exc:
        print(exc)
        fault.revert()
        return 7
    fault.revert()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
