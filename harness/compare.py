"""`aftershock compare BASELINE CURRENT`: did resilience regress between two runs?

Compares per SLO (verdict and measured figure) and per SLI per scope (p50/p95/p99
latency, error rate, availability, throughput, accuracy, fallback rate). A change for
the worse larger than its tolerance is a regression; so is an SLO that held before and
does not now. Tolerances: `max(relative × |baseline|, absolute)`, per class of figure,
overridable per SLI name, SLO name or class.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.fault import UserError
from harness.report.replay import RunDirError, load_run
from harness.report.result import SLI_UNITS

REGRESSION, IMPROVED, OK, NEW, MISSING = "regression", "improved", "ok", "new", "missing"


@dataclass(frozen=True)
class Tolerance:
    relative: float = 0.0  # share of the baseline's value
    absolute: float = 0.0  # in the figure's display unit (ms, fraction, s, req/s), or in `unit`
    unit: str = ""  # "ms" or "s" when the absolute part was written with a time unit

    def allowed(self, base: float) -> float:
        return max(self.relative * abs(base), self.absolute)

    def in_unit(self, unit: str) -> Tolerance:
        """This tolerance with a time-typed absolute part converted to `unit` (ms or s)."""
        scale = {("ms", "s"): 0.001, ("s", "ms"): 1000.0}.get((self.unit, unit), 1.0)
        return Tolerance(self.relative, self.absolute * scale, unit if self.unit else "")

    def __str__(self) -> str:
        parts = [f"{self.relative * 100:g}%"] if self.relative else []
        parts += [f"{self.absolute:g}"] if self.absolute else []
        return " or ".join(parts) or "0"


# figure class -> default tolerance; the class comes from the display unit
DEFAULT_TOLERANCES = {
    "latency": Tolerance(relative=0.10, absolute=5.0),  # 10 % or 5 ms, whichever is larger
    "rate": Tolerance(absolute=0.005),  # half a percentage point
    "throughput": Tolerance(relative=0.10),
    "time": Tolerance(relative=0.10, absolute=0.5),  # recovery/detection: 10 % or 0.5 s
    "other": Tolerance(relative=0.10),
}
_CLASS_OF_UNIT = {"ms": "latency", "fraction": "rate", "req/s": "throughput", "s": "time"}
HIGHER_IS_WORSE = {"p50(latency)", "p95(latency)", "p99(latency)", "error_rate", "fallback_rate"}
LOWER_IS_WORSE = {"availability", "throughput", "accuracy"}


class CompareError(UserError):
    """Bad input to compare (a path without a run, a malformed tolerance)."""


@dataclass
class Row:
    kind: str  # "slo" | "sli"
    name: str
    scope: str
    unit: str
    baseline: float | None
    current: float | None
    flag: str
    note: str = ""

    @property
    def delta(self) -> float | None:
        if self.baseline is None or self.current is None:
            return None
        return self.current - self.baseline


@dataclass
class Comparison:
    baseline_label: str
    current_label: str
    rows: list[Row]
    notes: list[str]

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.flag == REGRESSION]


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """`KEY=VALUE`: KEY an SLI name, SLO name or class (latency, rate, throughput, time);
    VALUE `10%` (relative) or a number in the figure's unit (`5ms`, `0.5s`, `0.01`)."""
    key, sep, value = text.partition("=")
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(%|ms|s)?\s*", value)
    if not sep or not key.strip() or not m:
        raise CompareError(
            f"--tolerance {text!r}: write KEY=VALUE, e.g. p95(latency)=15% or error_rate=0.01 "
            "or latency=10ms (KEY: an SLI, an SLO name, or latency/rate/throughput/time)"
        )
    number, unit = float(m.group(1)), m.group(2)
    if unit == "%":
        return key.strip(), Tolerance(relative=number / 100)
    return key.strip(), Tolerance(absolute=number, unit=unit or "")


def load_result(path: Path) -> dict[str, Any]:
    """A run's figures from a result.json file, a run folder, or a scenario's folder of runs (newest)."""
    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CompareError(f"{path}: not a readable result.json ({exc})") from None
    if not path.is_dir():
        raise CompareError(f"{path}: no such file or folder; pass a result.json or a run folder")
    if not (path / "result.json").exists() and not (path / "journal.jsonl").exists():
        runs = sorted(p for p in path.iterdir() if (p / "result.json").is_file())
        if not runs:
            raise CompareError(f"{path}: holds no result.json, journal.jsonl or run folders")
        path = runs[-1]
    try:
        return load_run(path)
    except RunDirError as exc:
        raise CompareError(str(exc)) from None


def _direction_of_slo(expect: str) -> int:
    """+1 when a higher measured value is worse (`<`), -1 when lower is worse (`>`), 0 unknown."""
    from harness.slo import SloSyntaxError, parse_slo

    try:
        op = parse_slo(expect).comparison.op
    except SloSyntaxError:
        return 0
    return 1 if op in ("<", "<=") else -1 if op in (">", ">=") else 0


def _judge(
    base: float | None, cur: float | None, direction: int, tol: Tolerance
) -> tuple[str, str]:
    if base is None or cur is None or direction == 0:
        return OK, ""
    worse_by = (cur - base) * direction
    allowed = tol.allowed(base)
    if worse_by > allowed:
        return REGRESSION, f"worse by {abs(cur - base):.4g} (tolerance {allowed:.4g})"
    if -worse_by > allowed:
        return IMPROVED, ""
    return OK, ""


class Tolerances:
    def __init__(self, overrides: dict[str, Tolerance] | None = None) -> None:
        self.overrides = overrides or {}

    def of(self, name: str, unit: str) -> Tolerance:
        cls = _CLASS_OF_UNIT.get(unit, "other")
        found = self.overrides.get(name) or self.overrides.get(cls) or DEFAULT_TOLERANCES[cls]
        return found.in_unit(unit)


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    tolerances: Tolerances | None = None,
    baseline_label: str = "baseline",
    current_label: str = "current",
) -> Comparison:
    tol = tolerances or Tolerances()
    rows: list[Row] = []
    notes: list[str] = []
    if baseline.get("scenario") != current.get("scenario"):
        notes.append(
            f"different scenarios: {baseline.get('scenario')!r} vs {current.get('scenario')!r}"
        )
    base_slos = {v["name"]: v for v in baseline.get("slos", [])}
    cur_slos = {v["name"]: v for v in current.get("slos", [])}
    for name in dict.fromkeys([*base_slos, *cur_slos]):
        b, c = base_slos.get(name), cur_slos.get(name)
        unit = (c or b or {}).get("unit") or ""
        scope = (c or b or {}).get("scope") or "run"
        if b is None:
            flag = REGRESSION if c.get("passed") is not True else NEW
            rows.append(
                Row(
                    "slo",
                    name,
                    scope,
                    unit,
                    None,
                    c.get("measured"),
                    flag,
                    "new SLO, failing" if flag == REGRESSION else "new SLO",
                )
            )
            continue
        if c is None:
            rows.append(
                Row(
                    "slo",
                    name,
                    scope,
                    unit,
                    b.get("measured"),
                    None,
                    MISSING,
                    "SLO not in the current run",
                )
            )
            continue
        if b.get("passed") is True and c.get("passed") is not True:
            flag, note = (
                REGRESSION,
                "held before, fails now"
                if c.get("passed") is False
                else "held before, no data now",
            )
        elif b.get("passed") is not True and c.get("passed") is True:
            flag, note = IMPROVED, "fixed: holds now"
        else:
            flag, note = _judge(
                b.get("measured"),
                c.get("measured"),
                _direction_of_slo(c["expect"]),
                tol.of(name, unit),
            )
        rows.append(Row("slo", name, scope, unit, b.get("measured"), c.get("measured"), flag, note))

    base_slis, cur_slis = baseline.get("slis") or {}, current.get("slis") or {}
    if not base_slis or not cur_slis:
        notes.append(
            "per-SLI deltas skipped: a run has no `slis` section (older result.json without a journal)"
        )
    for scope in [s for s in base_slis if s in cur_slis]:
        for name, unit in SLI_UNITS.items():
            b, c = base_slis[scope].get(name), cur_slis[scope].get(name)
            if b is None and c is None:
                continue
            direction = 1 if name in HIGHER_IS_WORSE else -1 if name in LOWER_IS_WORSE else 0
            flag, note = _judge(b, c, direction, tol.of(name, unit))
            rows.append(Row("sli", name, scope, unit, b, c, flag, note))
    return Comparison(baseline_label, current_label, rows, notes)


def _fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "fraction":
        return f"{v * 100:.2f}%"
    return f"{v:.4g} {unit}".strip()


def _fmt_delta(r: Row) -> str:
    d = r.delta
    if d is None:
        return "—"
    if r.unit == "fraction":
        return f"{d * 100:+.2f} pp"
    return f"{d:+.4g} {r.unit}".strip()


_FLAG_TEXT = {
    REGRESSION: "❌ regression",
    IMPROVED: "✅ improved",
    OK: "ok",
    NEW: "new",
    MISSING: "missing",
}


def markdown(cmp: Comparison) -> str:
    n = len(cmp.regressions)
    head = f"## aftershock compare: {'REGRESSION' if n else 'no regression'}"
    lines = [
        head,
        "",
        f"baseline `{cmp.baseline_label}` → current `{cmp.current_label}`"
        + (f"; {n} regression{'s' if n != 1 else ''}" if n else ""),
        "",
    ]
    lines += [f"> {note}" for note in cmp.notes]
    if cmp.notes:
        lines.append("")
    for kind, title in (("slo", "SLOs"), ("sli", "SLIs by scope")):
        rows = [r for r in cmp.rows if r.kind == kind]
        if not rows:
            continue
        lines += [
            f"### {title}",
            "",
            "| name | scope | baseline | current | delta | flag | note |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r.name} | {r.scope} | {_fmt(r.baseline, r.unit)} | {_fmt(r.current, r.unit)} | "
                f"{_fmt_delta(r)} | {_FLAG_TEXT[r.flag]} | {r.note} |"
            )
        lines.append("")
    return "\n".join(lines)
