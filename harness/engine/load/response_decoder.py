"""ResponseDecoder: the adapter's reading of a response body, remembered by its bytes.

A model service answers with few distinct bodies (the same label, the same version),
so the load keeps what each body decoded to: a dict lookup instead of `json.loads`
plus the adapter, on every request. This is what keeps the plugin's per-request cost
small next to bare Locust's (benchmarks/README-load.md).
"""

from __future__ import annotations

import json

from harness.core.protocols import Decoded, ProtocolAdapter

MAX_BODY_BYTES = 4096  # larger bodies (long batches) are decoded every time
MAX_ENTRIES = 1024  # the memory is dropped whole when full: cheap, and rare


class ResponseDecoder:
    def __init__(self, adapter: ProtocolAdapter) -> None:
        self.adapter = adapter
        self._known: dict[bytes, Decoded] = {}

    def decode(self, content: bytes | None) -> Decoded:
        """Raises ValueError (not JSON) or DecodeError (not the protocol), like the adapter."""
        body = content or b""
        decoded = self._known.get(body)
        if decoded is not None:
            return decoded
        decoded = self.adapter.decode(json.loads(body))
        if len(body) <= MAX_BODY_BYTES:
            if len(self._known) >= MAX_ENTRIES:
                self._known.clear()
            self._known[body] = decoded
        return decoded
