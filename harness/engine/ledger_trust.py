"""Whether `aftershock cleanup` may act on a ledger entry: signed by this user's harness,
for the run whose file holds it, with addresses that pass the safety check and a process
that is still the one the run started.

`cleanup` kills process groups and calls APIs on what a file says. A file anyone can
drop into `reports/.ledger/` (a shared folder, a checked-out repository) must not steer
it: each entry carries an HMAC-SHA256 over the run id and the entry, keyed by a random
per-user key in `~/.cache/aftershock/ledger.key` (mode 0600; `AFTERSHOCK_CACHE` moves
it). The key lives outside the reports folder on purpose: a key next to the ledgers
would travel with a crafted one. An entry moved from another run's file fails too,
since the run id is part of what is signed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from harness.core.fault import UserError
from harness.core.process_tree import process_start_time
from harness.core.safety import AddressRefused, check_host_allowed

MAC_FIELD = "mac"
# keys of fault undo records that name an address the undo contacts
ADDRESS_KEYS = ("api_url", "toxiproxy_url", "url", "docker_host", "api")


def key_path() -> Path:
    base = os.environ.get("AFTERSHOCK_CACHE") or os.path.join(Path.home(), ".cache", "aftershock")
    return Path(base) / "ledger.key"


def ledger_key(create: bool = True) -> bytes | None:
    """This user's ledger key (made on first use); None when absent and not `create`.

    UserError when the file is not private to this user: a key others can read or
    replace signs nothing."""
    path = key_path()
    if not path.exists():
        if not create:
            return None
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        # written whole under a temporary name, then linked into place: a run starting at
        # the same moment reads either no key or the complete one, never half of it
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".ledger-key-")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(32))
            os.link(tmp, path)
        except FileExistsError:  # another run made it just now: read theirs
            pass
        finally:
            os.unlink(tmp)
    st = path.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise UserError(f"{path}: the ledger key must belong to you and be private (chmod 600 {path}), "
                        "or delete it to make a new one")
    key = path.read_bytes()
    if len(key) < 32:
        raise UserError(f"{path}: the ledger key is truncated: delete it to make a new one")
    return key


def _mac(entry: dict[str, Any], run_id: str, key: bytes) -> str:
    body = {k: v for k, v in entry.items() if k != MAC_FIELD}
    text = run_id + "\n" + json.dumps(body, sort_keys=True, separators=(",", ":"))
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def sign_entry(entry: dict[str, Any], run_id: str, key: bytes) -> dict[str, Any]:
    """`entry` with its MAC added (what Ledger writes)."""
    return {**entry, MAC_FIELD: _mac(entry, run_id, key)}


def signed_by_us(entry: dict[str, Any], run_id: str, key: bytes | None) -> bool:
    mac = entry.get(MAC_FIELD)
    return key is not None and isinstance(mac, str) and hmac.compare_digest(mac, _mac(entry, run_id, key))


def process_refusal(entry: dict[str, Any]) -> str | None:
    """Why a leftover process group must not be killed, or None if it may be.

    Only when its leader still has the start time the run recorded: a pid without one,
    or one reused since, belongs to someone else."""
    pid, recorded = entry.get("pid"), entry.get("start_time")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 1:
        return f"not killed: {pid!r} is not a process id the harness could have started"
    if not isinstance(recorded, int) or isinstance(recorded, bool):
        return "not killed: the ledger has no start time for it, so it cannot be told apart from a reused pid"
    now = process_start_time(pid)
    if now is None:
        return "already gone"
    if now != recorded:
        return "not killed: the pid now belongs to another process (start time differs)"
    return None


def _addresses(value: Any, key: str = "") -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _addresses(v, str(k))
    elif isinstance(value, list):
        for v in value:
            yield from _addresses(v, key)
    elif isinstance(value, str) and key in ADDRESS_KEYS:
        yield value


def address_refusal(entry: dict[str, Any], allowed_hosts: Iterable[str]) -> str | None:
    """Why an entry's addresses must not be contacted, or None when all pass the safety check."""
    allowed = list(allowed_hosts)
    for address in _addresses(entry):
        try:
            check_host_allowed(address, allowed)
        except AddressRefused as exc:
            return f"not contacted: {exc}"
    return None
