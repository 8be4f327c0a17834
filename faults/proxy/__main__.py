"""`python -m faults.proxy`: the standalone proxy, as `aftershock proxy` runs it.

`aftershock proxy` checks its options, then hands over to this module by exec (same
process id), so the running proxy never holds the CLI's own libraries (typer, rich,
pydantic): only asyncio, the standard library's HTTP server and the proxy itself.
"""

from __future__ import annotations

import argparse
import sys

from faults.proxy.address_policy import AddressPolicy
from faults.proxy.server import serve
from harness.core.errors import UserError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="aftershock proxy", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8474)
    parser.add_argument("--config", help="JSON list of proxies to create at start")
    parser.add_argument("--seed", type=int, help="seed for reproducible jitter and toxicity")
    parser.add_argument("--allow-host", action="append", default=[],
                        help="a non-loopback host proxies may listen on or relay to (repeatable)")
    parser.add_argument("--allow-privileged-ports", action="store_true", help="allow listen ports below 1024")
    args = parser.parse_args(argv)
    try:
        serve(args.host, args.port, args.config, args.seed,
              AddressPolicy.of(args.allow_host, args.allow_privileged_ports))
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
