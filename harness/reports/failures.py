"""The fact of an SLO that did not hold, stated once, with the failure kinds seen in its
scope (`212 × http_503, 3 × timeout`): the same words in summary.md, the terminal, pytest
and CI annotations."""

from __future__ import annotations

from collections import Counter
from typing import Any


def failure_kinds(result: dict[str, Any], scope: str) -> Counter[str]:
    """Failed requests by kind (http_503, timeout, ...) over the windows of `scope`."""
    seen: Counter[str] = Counter()
    for w in result.get("windows") or []:
        if scope in (w.get("scopes") or ()):
            seen.update(w.get("failure_kinds") or {})
    return seen


def fmt_kinds(kinds: Counter[str]) -> str:
    """`212 × http_503, 3 × timeout`, most frequent first."""
    return ", ".join(f"{n} × {kind}" for kind, n in kinds.most_common())


def slo_failure(v: dict[str, Any], result: dict[str, Any]) -> str:
    """The fact of one failed (or unjudged) SLO, once: what was measured against what was
    expected, and the failure kinds seen in its scope."""
    if v["passed"] is None:
        text = f"no data to judge `{v['expect']}`: {v['detail']}"
    else:
        text = v["detail"] or f"`{v['expect']}` failed"
    kinds = failure_kinds(result, v["scope"])
    return f"{text}; failures seen: {fmt_kinds(kinds)}" if kinds else text
