"""The report's attack table: per attack its window, figures (counts and rates), failed
requests by kind and a few examples; the raw vectors (dataset rows, adversarial points)
go to a JSON attachment beside report.html, so the page stays readable."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ATTACHMENT = "attacks.json"
EXAMPLES_SHOWN = 3
# fields with a column of their own; any other field of the event is listed under details
OWN_COLUMNS = {
    "attack",
    "type",
    "start",
    "end",
    "start_s",
    "end_s",
    "t_s",
    "metrics",
    "details",
    "error",
}
CHANGES_SHOWN = 3  # per example: the features the attack moved most


@dataclass
class AttackRow:
    attack: str
    type: str
    window: str
    counts: list[tuple[str, str]]
    rates: list[tuple[str, str]]
    errors: str
    examples: list[str]
    details: list[tuple[str, str]]
    attached: list[str]  # details left to the attachment, with their size
    error: str | None = None  # the attack broke (journal event attack.error)


# figures that are shares of something (shown as %); flood_rate is requests/s, not one of them
RATE_MARKS = (
    "accuracy",
    "success_rate",
    "transfer_rate",
    "rejection_rate",
    "_share",
    "_drop",
    "agreement",
)


def is_rate(name: str, value: Any) -> bool:
    return (
        any(mark in name for mark in RATE_MARKS)
        and isinstance(value, (int, float))
        and -1.0 <= value <= 1.0
    )


def _number(v: Any) -> str:
    if isinstance(v, float) and v.is_integer():
        return f"{int(v):,}"
    if isinstance(v, dict):
        return ", ".join(f"{n} × {k}" for k, n in v.items()) or "none"
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def _is_vector(v: Any) -> bool:
    return isinstance(v, list) and (
        len(v) > EXAMPLES_SHOWN or any(isinstance(x, (list, dict)) for x in v)
    )


def _example(e: Any) -> str:
    """One evasion example: which row, its label, what the model answered after the attack, and
    the features the attack moved most; other kinds of example as they are, cut short."""
    if not isinstance(e, dict):
        text = str(e)
        return text if len(text) <= 200 else text[:200] + "…"
    head = ", ".join(
        f"{k} {_number(e[k])}" for k in ("row", "label", "adversarial_prediction") if k in e
    )
    before, after = e.get("original"), e.get("adversarial")
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        moved = sorted(
            (
                i
                for i in range(len(before))
                if isinstance(before[i], (int, float)) and before[i] != after[i]
            ),
            key=lambda i: -abs(after[i] - before[i]),
        )
        changes = ", ".join(f"x{i} {before[i]:.4g}→{after[i]:.4g}" for i in moved[:CHANGES_SHOWN])
        more = f" (+{len(moved) - CHANGES_SHOWN} more)" if len(moved) > CHANGES_SHOWN else ""
        return f"{head}; moved {changes or 'nothing'}{more}"
    return head or json.dumps(e)[:200]


def attack_rows(attacks: list[dict[str, Any]]) -> list[AttackRow]:
    out = []
    for a in attacks:
        metrics = a.get("metrics") or {}
        details = dict(a.get("details") or {})
        errors = details.pop("errors", None)
        examples = details.pop("examples", None) or details.pop("failures", None) or []
        start, end = a.get("start_s"), a.get("end_s")
        shown: list[tuple[str, str]] = []
        attached: list[str] = []
        for k, v in details.items():
            if _is_vector(v) or isinstance(v, dict) and len(json.dumps(v)) > 200:
                attached.append(f"{k} ({len(v)} items)")
            else:
                shown.append((k, ", ".join(map(_number, v)) if isinstance(v, list) else _number(v)))
        extra = {k: v for k, v in a.items() if k not in OWN_COLUMNS}
        shown += [(k, _number(v)) for k, v in extra.items()]
        if isinstance(start, (int, float)):
            window = f"{start:.1f}–{end:.1f} s" if end is not None else f"from {start:.1f} s"
        else:
            window = ""
        out.append(
            AttackRow(
                attack=str(a.get("attack", "")),
                type=str(a.get("type", "")),
                window=window,
                counts=[(k, _number(v)) for k, v in metrics.items() if not is_rate(k, v)],
                rates=[(k, f"{100 * v:.1f} %") for k, v in metrics.items() if is_rate(k, v)],
                errors=_number(errors) if isinstance(errors, dict) else "",
                examples=[_example(e) for e in examples[:EXAMPLES_SHOWN]],
                details=shown,
                error=None if a.get("error") is None else str(a["error"]),
                attached=attached
                + ([f"examples ({len(examples)})"] if len(examples) > EXAMPLES_SHOWN else []),
            )
        )
    return out


def write_attachment(run_dir: Path, attacks: list[dict[str, Any]]) -> str | None:
    """Every attack's result as journaled, raw vectors included; the file name, or None (no attack)."""
    path = run_dir / ATTACHMENT
    if not attacks:
        path.unlink(missing_ok=True)  # a report rendered again must not link a stale file
        return None
    path.write_text(json.dumps(attacks, indent=1, default=str) + "\n", encoding="utf-8")
    return ATTACHMENT
