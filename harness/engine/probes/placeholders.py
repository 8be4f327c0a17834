"""`{target}` and `{deps[NAME]}` in probe fields: addresses only known at run time.

The demo and `start:` targets get free ports when the run starts, so a probe says
`url: "{target}/metrics"` and the runner fills it in; the loader validates with
example values. Only these two forms are replaced, so PromQL's `{label="x"}` and
JSON bodies pass through untouched.
"""

from __future__ import annotations

import re
from typing import Any

from harness.core.fault import UserError

_PLACEHOLDER = re.compile(r"\{target\}|\{deps\[([^\]]+)\]\}")
EXAMPLE_TARGET = "http://127.0.0.1:1"
EXAMPLE_DEP = "127.0.0.1:1"


def fill_probe_placeholders(data: Any, target: str | None = None, deps: dict[str, str] | None = None,
                            example: bool = False) -> Any:
    """A copy of `data` with the placeholders filled (example values when `example`)."""

    def sub(m: re.Match[str]) -> str:
        if m.group(1) is None:
            return EXAMPLE_TARGET if example else str(target)
        if example:
            return EXAMPLE_DEP
        if deps is None or m.group(1) not in deps:
            raise UserError(f"{m.group(0)} names no declared dependency; declared: {', '.join(deps or {}) or 'none'}")
        return deps[m.group(1)]

    if isinstance(data, dict):
        return {k: fill_probe_placeholders(v, target, deps, example) for k, v in data.items()}
    if isinstance(data, list):
        return [fill_probe_placeholders(v, target, deps, example) for v in data]
    if isinstance(data, str):
        return _PLACEHOLDER.sub(sub, data)
    return data


class _ExampleDeps(dict[str, str]):
    """Every dependency name answers the example address (for validation)."""

    def __missing__(self, key: str) -> str:
        return EXAMPLE_DEP


def fill_target_url(url: str, deps: dict[str, str] | None = None, example: bool = False) -> str:
    """`target.url` with `{deps[NAME]}` filled in (example loopback values when `example`).

    The safety check reads the filled URL, never the template: a template hides where
    `http://{deps[fs]}@10.1.2.3:8080` really goes."""
    try:
        return url.format(deps=_ExampleDeps() if example else (deps or {})).rstrip("/")
    except (KeyError, IndexError, ValueError, AttributeError) as exc:
        raise UserError(f"target.url: cannot fill in {exc}: use {{deps[NAME]}} with a declared dependency") from None
