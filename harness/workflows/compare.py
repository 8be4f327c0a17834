"""`aftershock compare BASELINE CURRENT`: did resilience regress between two runs?

Two runs of the same system never measure the same figures: a scope's p95 moves by
tens of percent between two runs on a busy machine. So a change is judged from the
per-window samples both runs hold (result.json `windows`, each naming its scopes), per
SLI and scope:

- the shift is the Hodges–Lehmann estimate (the median of all current − baseline
  differences between windows), with its distribution-free confidence interval from
  the Mann–Whitney U distribution (Moses' interval); the effect size is Cliff's delta
  (P(current > baseline) − P(current < baseline), -1..1, free of units and levels).
  Rank-based, because per-window latencies are skewed and heavy-tailed, and exact
  rather than resampled, so the same two runs always give the same answer (a bootstrap
  with the 4–20 windows of a scope would be unstable and random);
- a regression is a change for the worse whose whole interval lies beyond the
  tolerance (`max(relative × baseline median, absolute)`): significant *and* large
  enough to matter. Windows of one run are not independent (a busy machine slows a
  whole run), so significance alone would flag run-to-run noise; the tolerance is the
  change worth a red build.

SLO rows show each run's verdict and its margin to the limit. An SLO that held before
and fails now is a regression when its figure moved by more than its tolerance; one
that held in both runs is never one, however its figure moved inside the limit (the
SLI rows report that movement). Tolerances are addressable by SLO name, SLI name
(`accuracy=0.05` also covers SLOs on accuracy) or class (latency, rate, throughput, time).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from statistics import NormalDist, median
from typing import Any

from harness.core.fault import UserError
from harness.engine.record.replay import RunDirError, load_run
from harness.engine.record.result import SLI_UNITS

REGRESSION, IMPROVED, OK, NEW, MISSING = "regression", "improved", "ok", "new", "missing"
DEFAULT_CONFIDENCE = 0.99


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


# figure class -> default tolerance (the class comes from the display unit). Calibrated
# with benchmarks/compare_bench.py on a shared 2-core machine, where two runs of the same
# flagship moved a scope's per-window latency by up to 2.5x (a busy neighbour slows a whole
# run): defaults for shared CI runners; tighten them (`-t latency=25%`) on a quiet one.
DEFAULT_TOLERANCES = {
    "latency": Tolerance(relative=1.00, absolute=10.0),  # twice the baseline, at least 10 ms more
    "rate": Tolerance(absolute=0.05),  # 5 percentage points
    "throughput": Tolerance(relative=0.50),  # half the baseline (closed-loop load: 1 / latency)
    "time": Tolerance(relative=0.50, absolute=2.0),  # recovery/detection: 50 % or 2 s
    "other": Tolerance(relative=0.20),
}
_CLASS_OF_UNIT = {"ms": "latency", "fraction": "rate", "req/s": "throughput", "s": "time"}
HIGHER_IS_WORSE = {"p50(latency)", "p95(latency)", "p99(latency)", "error_rate", "fallback_rate"}
LOWER_IS_WORSE = {"availability", "throughput", "accuracy"}
# result.json window row key of each SLI (availability is 1 - error_rate)
_WINDOW_KEY = {"p50(latency)": "p50_ms", "p95(latency)": "p95_ms", "p99(latency)": "p99_ms",
               "error_rate": "error_rate", "availability": "error_rate", "throughput": "throughput",
               "accuracy": "accuracy", "fallback_rate": "fallback_rate"}


class CompareError(UserError):
    """Bad input to compare (a path without a run, a malformed tolerance)."""


@dataclass(frozen=True)
class Shift:
    """How far the current run's per-window values sit from the baseline's."""

    estimate: float  # Hodges–Lehmann: median of all current - baseline differences
    low: float | None  # confidence interval; None: too few windows for this confidence
    high: float | None
    cliffs_delta: float  # P(current > baseline) - P(current < baseline)
    n_baseline: int
    n_current: int


def shift_of(base: list[float], cur: list[float], confidence: float = DEFAULT_CONFIDENCE) -> Shift | None:
    """Hodges–Lehmann shift of `cur` against `base` with Moses' Mann–Whitney interval."""
    m, n = len(base), len(cur)
    if not m or not n:
        return None
    diffs = sorted(c - b for c in cur for b in base)
    above = sum(d > 0 for d in diffs)
    below = sum(d < 0 for d in diffs)
    k = _interval_rank(m, n, 1 - confidence)  # the k-th smallest and largest difference bound it
    low, high = (diffs[k - 1], diffs[-k]) if k is not None else (None, None)
    return Shift(median(diffs), low, high, (above - below) / len(diffs), m, n)


@cache
def _u_counts(m: int, n: int) -> list[int]:
    """How many orderings of m baseline and n current values give U = 0..mn (no ties):
    the coefficients of the Gaussian binomial [m+n choose m](q)."""
    size = m * n + 1
    counts = [1] + [0] * (size - 1)
    for i in range(1, m + 1):  # times (1 - q^(n+i)), divided by (1 - q^i)
        counts = [c - (counts[u - n - i] if u >= n + i else 0) for u, c in enumerate(counts)]
        for u in range(i, size):
            counts[u] += counts[u - i]
    return counts


def _interval_rank(m: int, n: int, alpha: float) -> int | None:
    """Moses' rank k: [k-th smallest, k-th largest] of the mn differences covers the shift
    with probability >= 1 - alpha. Exact U distribution for small samples, normal beyond.
    None: too few windows for that confidence."""
    if m * n <= 2_500:
        counts, total = _u_counts(m, n), math.comb(m + n, m)
        below, c = 0, -1
        while below + counts[c + 1] <= alpha / 2 * total:
            c += 1
            below += counts[c]
        k = c + 1
    else:
        z = NormalDist().inv_cdf(1 - alpha / 2)
        k = math.floor(m * n / 2 - z * math.sqrt(m * n * (m + n + 1) / 12))
    return k if k >= 1 else None


@dataclass
class Row:
    kind: str  # "slo" | "sli"
    name: str
    scope: str
    unit: str
    baseline: float | None  # the scope's figure (SLI rows) or the SLO's measured figure
    current: float | None
    flag: str
    note: str = ""
    shift: Shift | None = None  # SLI rows with per-window samples in both runs
    tolerance: float | None = None  # the allowed worsening, display unit
    passed: tuple[bool | None, bool | None] | None = None  # SLO rows: verdict before, now
    margin: tuple[float | None, float | None] | None = None  # SLO rows: room to the limit, before, now

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
    confidence: float = DEFAULT_CONFIDENCE

    @property
    def regressions(self) -> list[Row]:
        return [r for r in self.rows if r.flag == REGRESSION]


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """`KEY=VALUE`: KEY an SLI name, SLO name or class (latency, rate, throughput, time);
    VALUE `10%` (relative) or a number in the figure's unit (`5ms`, `0.5s`, `0.01`)."""
    key, sep, value = text.rpartition("=")
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


def _slo_sli(expect: str) -> tuple[int, str | None]:
    """(+1 when a higher figure is worse, -1 when lower is, 0 unknown; the SLO's SLI name)."""
    from harness.engine.slo import SloSyntaxError, parse_slo

    try:
        cmp = parse_slo(expect).comparison
    except SloSyntaxError:
        return 0, None
    direction = 1 if cmp.op in ("<", "<=") else -1 if cmp.op in (">", ">=") else 0
    left = cmp.left
    name = getattr(left, "name", None) or str(left).split(" ", 1)[0]
    return direction, name


class Tolerances:
    def __init__(self, overrides: dict[str, Tolerance] | None = None) -> None:
        self.overrides = overrides or {}

    def of(self, keys: list[str | None], unit: str) -> Tolerance:
        """The first override among `keys` (SLO name, SLI name), else the class's default."""
        cls = _CLASS_OF_UNIT.get(unit, "other")
        found = next((self.overrides[k] for k in keys if k in self.overrides), None)
        return (found or self.overrides.get(cls) or DEFAULT_TOLERANCES[cls]).in_unit(unit)


def _window_scopes(result: dict[str, Any]) -> list[list[str]]:
    """Each window's scopes: as recorded, or (result.json before they were) from the timeline."""
    windows = result.get("windows") or []
    if all("scopes" in w for w in windows):
        return [w["scopes"] for w in windows]
    tl = result.get("timeline") or {}
    spans = [("baseline", tl.get("baseline")), ("recovery", tl.get("recovery"))]
    spans += [(f["name"], {"start_s": f.get("injected_at_s"), "end_s": f.get("reverted_at_s")})
              for f in tl.get("faults") or []]
    out = []
    for w in windows:
        mid = w["t_s"] + w["size_s"] / 2
        inside = [name for name, s in spans if s and s.get("start_s") is not None
                  and s["start_s"] <= mid and (s.get("end_s") is None or mid < s["end_s"])]
        fault = [n for n in inside if n not in ("baseline", "recovery")]
        out.append(["run", *(["fault"] if fault else []), *inside])
    return out


def window_samples(result: dict[str, Any]) -> dict[tuple[str, str], list[float]]:
    """Per-window values by (SLI, scope), display units; windows without the figure are left out."""
    samples: dict[tuple[str, str], list[float]] = {}
    for w, scopes in zip(result.get("windows") or [], _window_scopes(result), strict=True):
        for sli, key in _WINDOW_KEY.items():
            v = w.get(key)
            if v is None or (isinstance(v, float) and math.isnan(v)):
                continue
            v = 1.0 - v if sli == "availability" else v
            for scope in scopes:
                samples.setdefault((sli, scope), []).append(v)
    return samples


def _judge_shift(shift: Shift | None, base_median: float, direction: int, tol: Tolerance) -> tuple[str, str, float]:
    allowed = tol.allowed(base_median)
    if shift is None or direction == 0:
        return OK, "no per-window samples: not judged", allowed
    if shift.low is None or shift.high is None:
        return OK, f"too few windows ({shift.n_baseline} vs {shift.n_current}) to judge", allowed
    worse_low, worse_high = sorted((shift.low * direction, shift.high * direction))
    if worse_low > allowed:
        return REGRESSION, "worse beyond tolerance", allowed
    if worse_high < -allowed:
        return IMPROVED, "", allowed
    if worse_low > 0:
        return OK, "worse, within tolerance", allowed
    return OK, "", allowed


def _slo_rows(baseline: dict[str, Any], current: dict[str, Any], tol: Tolerances) -> list[Row]:
    rows = []
    base_slos = {v["name"]: v for v in baseline.get("slos", [])}
    cur_slos = {v["name"]: v for v in current.get("slos", [])}
    for name in dict.fromkeys([*base_slos, *cur_slos]):
        b, c = base_slos.get(name), cur_slos.get(name)
        either = c or b or {}
        unit, scope = either.get("unit") or "", either.get("scope") or "run"
        direction, sli = _slo_sli(either.get("expect", ""))
        passed = (None if b is None else b.get("passed"), None if c is None else c.get("passed"))
        margin = tuple(_margin(v, direction) for v in (b, c))
        row = Row("slo", name, scope, unit, (b or {}).get("measured"), (c or {}).get("measured"), OK,
                  passed=passed, margin=margin)  # type: ignore[arg-type]  # tuple() of a generator is typed variable-length; margin is a pair
        tolerance = tol.of([name, sli], unit)
        if b is None:
            row.flag, row.note = (NEW, "new SLO") if passed[1] is True else (REGRESSION, "new SLO, failing")
        elif c is None:
            row.flag, row.note = MISSING, "SLO not in the current run"
        elif passed == (True, None):
            row.flag, row.note = REGRESSION, "held before, no data now"
        elif passed == (True, False):
            row.tolerance = tolerance.allowed(row.baseline or 0.0)
            worse = None if row.delta is None or direction == 0 else row.delta * direction
            if worse is not None and worse <= row.tolerance:
                row.note = (f"fails now, but moved {_fmt(abs(row.delta), unit, points=True)} "
                            f"(within tolerance {_fmt(row.tolerance, unit, points=True)})")
            else:
                row.flag, row.note = REGRESSION, "held before, fails now"
        elif passed[0] is not True and passed[1] is True:
            row.flag, row.note = IMPROVED, "fixed: holds now"
        elif passed == (False, False):
            row.note = "fails in both runs"
        rows.append(row)
    return rows


def _margin(verdict: dict[str, Any] | None, direction: int) -> float | None:
    """Room left to the SLO's limit (display unit; negative: beyond it)."""
    if not verdict or verdict.get("measured") is None or verdict.get("threshold") is None or direction == 0:
        return None
    return (verdict["threshold"] - verdict["measured"]) * direction


def compare(
    baseline: dict[str, Any],
    current: dict[str, Any],
    tolerances: Tolerances | None = None,
    baseline_label: str = "baseline",
    current_label: str = "current",
    confidence: float = DEFAULT_CONFIDENCE,
) -> Comparison:
    tol = tolerances or Tolerances()
    notes: list[str] = []
    if baseline.get("scenario") != current.get("scenario"):
        notes.append(
            f"different scenarios: {baseline.get('scenario')!r} vs {current.get('scenario')!r}"
        )
    rows = _slo_rows(baseline, current, tol)
    base_slis, cur_slis = baseline.get("slis") or {}, current.get("slis") or {}
    if not base_slis or not cur_slis:
        notes.append(
            "per-SLI deltas skipped: a run has no `slis` section (older result.json without a journal)"
        )
    base_w, cur_w = window_samples(baseline), window_samples(current)
    if base_slis and cur_slis and (not base_w or not cur_w):
        notes.append("SLI rows not judged: a run's result.json has no per-window samples (`windows`)")
    for scope in [s for s in base_slis if s in cur_slis]:
        for name, unit in SLI_UNITS.items():
            b, c = base_slis[scope].get(name), cur_slis[scope].get(name)
            if b is None and c is None:
                continue
            direction = 1 if name in HIGHER_IS_WORSE else -1 if name in LOWER_IS_WORSE else 0
            bs, cs = base_w.get((name, scope), []), cur_w.get((name, scope), [])
            shift = shift_of(bs, cs, confidence)
            flag, note, allowed = _judge_shift(shift, median(bs) if bs else (b or 0.0), direction,
                                               tol.of([name], unit))
            rows.append(Row("sli", name, scope, unit, b, c, flag, note, shift, allowed))
    return Comparison(baseline_label, current_label, rows, notes, confidence)


def _fmt(v: float | None, unit: str, signed: bool = False, points: bool = False) -> str:
    """A figure in its unit; `signed` for changes, `points` for a difference of fractions (pp)."""
    if v is None:
        return "—"
    sign = "+" if signed else ""
    if unit == "fraction":
        return f"{v * 100:{sign}.2f}{' pp' if signed or points else '%'}"
    return f"{v:{sign}.4g} {unit}".strip()


def _fmt_shift(r: Row) -> str:
    s = r.shift
    if s is None:
        return "—"
    interval = "" if s.low is None else f" [{_fmt(s.low, r.unit, True)}, {_fmt(s.high, r.unit, True)}]"
    return f"{_fmt(s.estimate, r.unit, True)}{interval}"


def _fmt_verdict(passed: bool | None) -> str:
    return {True: "PASS", False: "FAIL", None: "NO DATA"}[passed]


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
    slos = [r for r in cmp.rows if r.kind == "slo"]
    if slos:
        lines += ["### SLOs", "", "| name | scope | baseline | current | margin to limit | flag | note |",
                  "|---|---|---|---|---|---|---|"]
        for r in slos:
            before, now = r.passed or (None, None)
            mb, mc = r.margin or (None, None)
            lines.append(
                f"| {r.name} | {r.scope} | {_fmt_verdict(before)} {_fmt(r.baseline, r.unit)} | "
                f"{_fmt_verdict(now)} {_fmt(r.current, r.unit)} | {_fmt(mb, r.unit, points=True)} → {_fmt(mc, r.unit, points=True)} | "
                f"{_FLAG_TEXT[r.flag]} | {r.note} |"
            )
        lines.append("")
    slis = [r for r in cmp.rows if r.kind == "sli"]
    if slis:
        pct = f"{cmp.confidence * 100:g}%"
        lines += ["### SLIs by scope", "",
                  (f"shift: Hodges–Lehmann shift of the per-window values [{pct} Mann–Whitney interval]; "
                  "δ: Cliff's delta (-1..1); tolerance: the worsening that counts"), "",
                  "| name | scope | baseline | current | shift | δ | tolerance | flag | note |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for r in slis:
            delta = "—" if r.shift is None else f"{r.shift.cliffs_delta:+.2f}"
            lines.append(
                f"| {r.name} | {r.scope} | {_fmt(r.baseline, r.unit)} | {_fmt(r.current, r.unit)} | "
                f"{_fmt_shift(r)} | {delta} | {_fmt(r.tolerance, r.unit, points=True)} | {_FLAG_TEXT[r.flag]} | {r.note} |"
            )
        lines.append("")
    return "\n".join(lines)
