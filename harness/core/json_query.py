"""JMESPath: the one JSON query language of scenarios.

Probes (`json_path`, `field`), protocols (`predictions`, `fallback`, `model_version`) and
attacks (`file_accepted`) all point into JSON with it. A JSONPath (`$.a.b`), which probes
once took, is refused at load with the JMESPath to write instead.
"""

from __future__ import annotations

import jmespath
from jmespath.exceptions import JMESPathError


def jsonpath_hint(query: str) -> str:
    """The JMESPath for a simple JSONPath (`$.a.b[0]` -> `a.b[0]`), for the error message."""
    return query.removeprefix("$").lstrip(".") or "@"


def check_json_query(query: str | None) -> str | None:
    """Validator: `query` (if given) is a JMESPath expression; ValueError says what to write."""
    if query is None:
        return None
    if query.startswith("$"):
        raise ValueError(f"{query!r} is JSONPath, which scenarios no longer use: write the JMESPath "
                         f"{jsonpath_hint(query)!r} instead (no leading `$`)")
    try:
        jmespath.compile(query)
    except JMESPathError as exc:
        raise ValueError(f"invalid JMESPath {query!r}: {exc}") from None
    return query
