"""Durations (`250ms`, `10s`, `2m`, `1h`), percentages (`99.5%`) and byte sizes.

Each parser raises ValueError with a message that says what is accepted, so pydantic
turns it into a field error the loader can place at file:line:col.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$")
_DURATION_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB|KiB|MiB|GiB)?\s*$", re.I)
_SIZE_UNITS = {"b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
# beyond these a value is a typo, and a sleep or a timer would overflow (threading's
# TIMEOUT_MAX is ~292 years; a week is longer than any run or fault is meant to be)
MAX_DURATION_S = 7 * 24 * 3600.0
MAX_SIZE_BYTES = 2**50  # 1 PiB


def parse_duration(value: Any) -> float:
    """Seconds from `250ms`, `10s`, `2m`, `1h`, `500us`, or a bare number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration like 250ms, 10s or 2m, got a boolean")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"duration must not be negative, got {value}")
        return _bounded_duration(value)
    if not isinstance(value, str):
        raise ValueError(f"expected a duration like 250ms, 10s or 2m, got {type(value).__name__}")
    m = _DURATION.match(value)
    if not m:
        raise ValueError(f"invalid duration {value[:40]!r}: use a number with ms, s, m or h, e.g. 250ms, 10s, 2m")
    return _bounded_duration(float(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"])


def _bounded_duration(seconds: float) -> float:
    # compared before float(): float() of a huge int raises OverflowError, not a field error
    if not 0 <= seconds <= MAX_DURATION_S:  # NaN and infinity too
        raise ValueError(f"duration must be a finite time up to {MAX_DURATION_S / 86400:g} days: check the unit")
    return float(seconds)


def parse_percent(value: Any) -> float:
    """A fraction in [0, 1] from `99.5%` or a bare fraction like 0.995."""
    if isinstance(value, bool):
        raise ValueError("expected a percentage like 99.5% or a fraction like 0.995")
    if isinstance(value, str):
        text = value.strip()
        try:
            frac = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        except ValueError:
            raise ValueError(f"invalid percentage {value!r}: write e.g. 99.5% or 0.995") from None
    elif isinstance(value, (int, float)):
        frac = float(value)
    else:
        raise ValueError(f"expected a percentage like 99.5%, got {type(value).__name__}")
    if not 0.0 <= frac <= 1.0:
        raise ValueError(f"percentage {value!r} is outside 0%..100%")
    return frac


def parse_size(value: Any) -> int:
    """Bytes from `512MB`, `1GiB`, `100KB` or a bare number of bytes."""
    if isinstance(value, bool):
        raise ValueError("expected a size like 512MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("size must not be negative")
        return _bounded_size(value)
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return _bounded_size(float(m.group(1)) * _SIZE_UNITS[(m.group(2) or "b").lower()])
    raise ValueError(f"invalid size {str(value)[:40]!r}: use e.g. 100KB, 512MB, 1GiB")


def _bounded_size(size: float) -> int:
    if not size <= MAX_SIZE_BYTES:  # NaN too
        raise ValueError(f"size beyond {MAX_SIZE_BYTES // 2**50} PiB: check the unit")
    return int(size)


def format_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


# JSON Schema of each human form, for `aftershock schema`: an editor then accepts `10s`
# and rejects `10 parsecs` exactly as the loader does.
DURATION_PATTERN = r"^\s*\d+(\.\d+)?\s*(us|µs|ms|s|m|h)?\s*$"
PERCENT_PATTERN = r"^\s*\d+(\.\d+)?\s*%?\s*$"
SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([Bb]|[KkMmGg][Ii]?[Bb])?\s*$"
_DURATION_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": DURATION_PATTERN}],
                    "description": "a duration: 250ms, 10s, 2m, 1h, or a number of seconds"}
_PERCENT_SCHEMA = {"anyOf": [{"type": "number", "minimum": 0, "maximum": 1}, {"type": "string", "pattern": PERCENT_PATTERN}],
                   "description": "a percentage (99.5%) or a fraction (0.995)"}
_SIZE_SCHEMA = {"anyOf": [{"type": "integer", "minimum": 0}, {"type": "string", "pattern": SIZE_PATTERN}],
                "description": "a size: 100KB, 512MB, 1GiB, or a number of bytes"}

# pydantic field types: accept the human forms, hold floats (seconds / fractions) or ints.
Duration = Annotated[float, BeforeValidator(parse_duration), PlainSerializer(format_duration, when_used="json"),
                     WithJsonSchema(_DURATION_SCHEMA, mode="validation")]
Percent = Annotated[float, BeforeValidator(parse_percent), WithJsonSchema(_PERCENT_SCHEMA, mode="validation")]
ByteSize = Annotated[int, BeforeValidator(parse_size), WithJsonSchema(_SIZE_SCHEMA, mode="validation")]
