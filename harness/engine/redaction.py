"""Secrets out of everything a run writes: `${env:NAME}` values become `***` in the values.

Redaction happens on values (strings inside dicts and lists, keys included), before they
are serialized, never on the serialized text: JSON writes a quote in a secret as `\\"` and
non-ASCII as `\\uXXXX`, HTML writes `&` as `&amp;`, so a text search misses those forms,
and a short secret (`"`, `1`, `e`) replaced in serialized text breaks its syntax. Every
sink (journal, result, report, summary, load config, stdout, pytest) redacts its values
with the one Redactor made from the scenario's secrets.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

MASK = "***"
# Keys the harness writes (`event`, `expect`, `p95(latency)`) are never masked, or a secret
# such as "e" would break every reader of the records; other keys are data (SLO, fault and
# dependency names, header names) and are masked like values.
SCHEMA_KEY = re.compile(r"[a-z][a-z0-9_]*(\([a-z0-9_]*\))?")


class Redactor:
    """Replaces each secret inside every string of a value; a no-op without secrets."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # the longest first: a secret that contains another is masked whole
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self.secrets)

    def text(self, text: str) -> str:
        """`text` with every secret masked. Masks already there are kept as they are, so
        masking twice (a value written into the journal and later into the report) changes
        nothing, even for a secret such as `*` that is a piece of the mask."""
        return MASK.join(self._mask(piece) for piece in text.split(MASK))

    def _mask(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, MASK)
        return text

    def key(self, key: Any) -> Any:
        if not isinstance(key, str) or SCHEMA_KEY.fullmatch(key):
            return key
        return self.text(key)

    def value(self, value: Any) -> Any:
        """A copy of a JSON-like value with every secret masked; other objects become the
        redacted text that `json.dumps(..., default=str)` would have written."""
        if not self.secrets or value is None or isinstance(value, (bool, int, float)):
            return value
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            return {self.key(k): self.value(v) for k, v in value.items()}
        if isinstance(value, (list, tuple, set, frozenset)):
            return [self.value(v) for v in value]
        return self.text(str(value))
