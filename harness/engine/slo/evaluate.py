"""Judge parsed SLOs against a run's windows and timeline.

`evaluate()` gives a `Verdict`: passed (None = not measured, which fails a run like False
does), the measured figure and threshold in display units (ms for latency, seconds for
recovery/detection times and `for` stretches, fractions 0..1 for rates and window shares),
and a sentence a person can read.  Stop conditions are judged as a run goes, window by
window: `harness.engine.slo.stop`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from harness.core.fault import UserError
from harness.core.windows import Window
from harness.engine.phases import RunTimeline, Span
from harness.engine.slo.ast import (
    BinOp,
    Comparison,
    Degradation,
    DetectionTime,
    Expr,
    Neg,
    Number,
    RecoveryTime,
    SliRef,
    Slo,
    measures,
)
from harness.engine.slo.parser import dimension
from harness.engine.slo.series import Series
from harness.engine.slo.settings import SloSettings
from harness.engine.slo.sli import Missing, Value, compute

_EPS = 1e-9


@dataclass
class WindowPoint:
    index: int
    start: float  # Unix seconds
    value: float | None  # the left-hand side in this window, display units
    ok: bool | None  # the condition held / failed / no data


@dataclass(frozen=True)
class Judgement:
    """A comparison judged once: held / failed / None (no data), with both sides' values."""

    ok: bool | None
    left: Value
    right: Value


@dataclass(frozen=True)
class ConditionsCheck:
    """Conditions judged together in one window: `why` says why there was no data (ok None)."""

    ok: bool | None
    why: str = ""


@dataclass(frozen=True)
class Horizon:
    """Where judging one fault stops, and why (the next fault started, the run ended)."""

    at: float
    why: str


@dataclass
class Verdict:
    expression: str
    passed: bool | None  # None: not measured (no data to judge); a run counts it as failed
    measured: float | None  # display units (see `unit`); None: undefined or never reached
    threshold: float | None
    unit: str  # ms | s | fraction | ratio | req/s | requests | "" (probe values)
    scope: str
    detail: str
    comparator: str
    per_window: list[WindowPoint] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class RecoveryResult:
    """One fault's recovery: seconds from its end until the steady state held, or None."""

    fault: Span
    recovered_after: float | None
    horizon: float  # judging stopped here: the next fault's start or the run's end
    horizon_why: str  # "<fault> started" | "the run ended"
    unmeasured: str  # why the steady state could not be judged at all ("" if it could)
    points: list[WindowPoint]

    @property
    def within(self) -> float:
        return max(0.0, self.horizon - (self.fault.end or self.horizon))


@dataclass
class DetectionResult:
    """One fault's detection: seconds from its start until the condition turned true, or None."""

    fault: Span
    detected_after: float | None
    horizon: float
    horizon_why: str
    already_on_at: float | None  # the condition held in the window before the start (false alarm)
    points: list[WindowPoint]

    @property
    def within(self) -> float:
        return max(0.0, self.horizon - self.fault.start)


# --- display -----------------------------------------------------------------------------


def display_unit(node: Expr) -> str:
    dim = dimension(node, "")
    ms = measures(node)
    if dim == "time":
        return "ms" if any(isinstance(m, SliRef) and m.is_latency for m in ms) else "s"
    if dim == "fraction":
        return "fraction"
    if any(isinstance(m, Degradation) for m in ms):
        return "ratio"
    kinds = {m.distribution or m.kind for m in ms if isinstance(m, SliRef)}
    return {"throughput": "req/s", "requests": "requests", "tokens_per_s": "tokens/s",
            "output_tokens": "tokens"}.get(kinds.pop(), "") if len(kinds) == 1 else ""


def _display(v: float, unit: str) -> float:
    return v * 1000 if unit == "ms" else v


def format_value(v: float | None, unit: str) -> str:
    if v is None:
        return "undefined"
    if math.isinf(v):
        return "infinite"
    if unit == "ms":
        return f"{_trim(f'{v * 1000:.1f}')} ms"
    if unit == "s":
        return f"{_trim(f'{v:.2f}')} s"
    if unit == "fraction":
        return f"{v * 100:.4g}%"
    if unit == "ratio":
        return f"{v:.3g}x"
    if unit == "req/s":
        return f"{v:.1f} req/s"
    return f"{v:.6g}"


def _trim(number: str) -> str:
    return number.rstrip("0").rstrip(".") if "." in number else number


def _compare(op: str, a: float, b: float) -> bool:
    tol = _EPS * max(1.0, abs(a), abs(b))
    return {
        "<": a < b - tol, "<=": a <= b + tol, ">": a > b + tol, ">=": a >= b - tol,
        "==": abs(a - b) <= tol, "!=": abs(a - b) > tol,
    }[op]  # fmt: skip


def _where(scope: str) -> str:
    return "over the run" if scope == "run" else f"during {scope}"


# --- the evaluator -------------------------------------------------------------------------


class Evaluator:
    """Judges SLOs and conditions over one `Series`; values are cached per (SLI, window, scope)."""

    def __init__(self, series: Series, settings: SloSettings):
        self.series = series
        self.settings = settings
        self.timeline = series.timeline
        self._cache: dict[tuple[SliRef, int | None, str], Value] = {}

    def scope_value(self, sli: SliRef, scope: str) -> Value:
        """`sli` over every window of `scope`."""
        where = (
            _where(scope)
            if self.timeline.scope(scope)
            else f"(no span named {scope!r} in this run)"
        )
        return compute(sli, self.series, self.series.in_scope(scope), where)

    def since_start(self, when: float | None) -> str:
        """`when` as seconds into the run (`+12.5 s`), as messages show times."""
        return "+? s" if when is None else f"+{when - self.timeline.run.start:.1f} s"

    def constant(self, node: Expr) -> float:
        """The number a per-fault SLO is compared with (the parser allows only a number there)."""
        v = self.value(node, None, "run")
        if isinstance(v, Missing):
            raise TypeError(f"{node} is not a number: {v.reason}")
        return v

    def judged(self, scope: str) -> list[int]:
        return [i for i in self.series.in_scope(scope) if self.series.status[i] != "empty"]

    def value(self, node: Expr, window: int | None, scope: str) -> Value:
        """`node` in one window (window given) or over `scope`; own-scoped SLIs stay scope-wide."""
        if isinstance(node, Number):
            return node.value
        if isinstance(node, SliRef):
            if node.scope:
                window, scope = None, node.scope
            key = (node, window, scope)
            if key not in self._cache:
                if window is None:
                    self._cache[key] = self.scope_value(node, scope)
                else:
                    self._cache[key] = compute(node, self.series, [window], "in this window")
            return self._cache[key]
        if isinstance(node, Neg):
            v = self.value(node.operand, window, scope)
            return v if isinstance(v, Missing) else -v
        if isinstance(node, BinOp):
            a, b = self.value(node.left, window, scope), self.value(node.right, window, scope)
            if isinstance(a, Missing) or isinstance(b, Missing):
                missing = [m for m in (a, b) if isinstance(m, Missing)]
                return Missing(missing[0].reason, any(m.failing for m in missing))
            if node.op == "/" and b == 0:
                return Missing(f"{node.right} is zero", failing=False)
            return {"+": a + b, "-": a - b, "*": a * b, "/": a / b if b else 0.0}[node.op]
        raise TypeError(f"{node} cannot be evaluated per window")

    def judge(self, cmp: Comparison, window: int | None, scope: str) -> Judgement:
        """`cmp` in one window (window given) or over `scope`; a failing Missing side fails it."""
        a, b = self.value(cmp.left, window, scope), self.value(cmp.right, window, scope)
        if isinstance(a, Missing) or isinstance(b, Missing):
            missing = [m for m in (a, b) if isinstance(m, Missing)]
            return Judgement(False if any(m.failing for m in missing) else None, a, b)
        return Judgement(_compare(cmp.op, a, b), a, b)

    def check_all(self, conds: tuple[Comparison, ...], window: int) -> ConditionsCheck:
        """All conditions in one window: True, False, or None with the reason there is no data."""
        results = [self.judge(c, window, "run") for c in conds]
        if any(r.ok is False for r in results):
            return ConditionsCheck(False)
        for r in results:
            if r.ok is None:
                return ConditionsCheck(None, next(m.reason for m in (r.left, r.right) if isinstance(m, Missing)))
        return ConditionsCheck(True)

    # --- plain and windowed comparisons ---------------------------------------------------

    def verdict(
        self,
        slo: Slo,
        passed: bool | None,
        measured: float | None,
        threshold: float | None,
        unit: str,
        scope: str,
        detail: str,
        points: list[WindowPoint] | None = None,
    ) -> Verdict:
        disp = lambda v: None if v is None or math.isinf(v) else _display(v, unit)
        return Verdict(
            slo.text,
            passed,
            disp(measured),
            disp(threshold),
            unit,
            scope,
            detail,
            slo.comparison.op,
            points or [],
        )

    def points(
        self, cmp: Comparison | Expr, idx: list[int], scope: str, unit: str
    ) -> list[WindowPoint]:
        """Per-window values of a comparison's left side (and whether it held), or of an expression."""
        out = []
        for i in idx:
            if isinstance(cmp, Comparison):
                judged = self.judge(cmp, i, scope)
                ok, a = judged.ok, judged.left
            else:
                ok, a = None, self.value(cmp, i, scope)
            w = self.series.windows[i]
            out.append(
                WindowPoint(
                    w.index, w.start, None if isinstance(a, Missing) else _display(a, unit), ok
                )
            )
        return out

    def aggregate(self, slo: Slo) -> Verdict:
        cmp, scope = slo.comparison, slo.scope or "run"
        unit = display_unit(cmp.left)
        per_window = any(isinstance(m, SliRef) and m.scope is None for m in measures(cmp.left))
        points = self.points(cmp, self.judged(scope), scope, unit) if per_window else []
        judged = self.judge(cmp, None, scope)
        a, b = judged.left, judged.right
        lhs = str(cmp.left) + ("" if not per_window else " " + _where(scope))
        a_val = None if isinstance(a, Missing) else a
        b_val = None if isinstance(b, Missing) else b
        expected = f"expected {cmp.op} {self.rhs_text(cmp.right, b, unit)}"
        missing = a if isinstance(a, Missing) else b if isinstance(b, Missing) else None
        if missing is not None:
            verb = "failed" if judged.ok is False else "not measured"
            detail = f"{lhs} is undefined ({missing.reason}): {verb}; {expected}"
        else:
            detail = f"{lhs} was {format_value(a_val, unit)}; {expected}"
        return self.verdict(slo, judged.ok, a_val, b_val, unit, scope, detail, points)

    def rhs_text(self, rhs: Expr, b: Value, unit: str) -> str:
        shown = "undefined" if isinstance(b, Missing) else format_value(b, unit)
        return shown if isinstance(rhs, Number) else f"{rhs} = {shown}"

    def windowed(self, slo: Slo) -> Verdict:
        cmp, scope, q = slo.comparison, slo.scope or "run", slo.quantifier
        assert q is not None
        unit = display_unit(cmp.left)
        idx = self.judged(scope)
        pts = self.points(cmp, idx, scope, unit)
        judged = [p for p in pts if p.ok is not None]
        cond = f"`{cmp}`"
        if not judged:
            return self.verdict(
                slo,
                None,
                None,
                None,
                unit,
                scope,
                f"not measured: no window with data {_where(scope)} to judge {cond}",
                pts,
            )
        failed = [p for p in judged if not p.ok]
        if q.kind == "every":
            b = (
                self.value(cmp.right, None, scope)
                if not any(isinstance(m, SliRef) and m.scope is None for m in measures(cmp.right))
                else None
            )
            threshold = b if isinstance(b, float) else None
            values = [p.value for p in judged if p.value is not None]
            worst = (max(values) if cmp.op in ("<", "<=") else min(values)) if values else None
            worst_base = None if worst is None else (worst / 1000 if unit == "ms" else worst)
            stalls = sum(1 for p in failed if p.value is None)
            if failed:
                detail = (
                    f"{cond} failed in {len(failed)} of {len(judged)} windows {_where(scope)}"
                    f" (first at {self.since_start(failed[0].start)}; worst {format_value(worst_base, unit)}"
                    + (f"; {stalls} with no completed request" if stalls else "")
                    + ")"
                )
            else:
                detail = f"{cond} held in every one of {len(judged)} windows {_where(scope)} (worst {format_value(worst_base, unit)})"
            return self.verdict(slo, not failed, worst_base, threshold, unit, scope, detail, pts)
        if q.kind == "share":
            assert q.share is not None  # the parser sets it for `in N% of windows`
            share = (len(judged) - len(failed)) / len(judged)
            passed = share >= q.share - _EPS
            detail = (
                f"{cond} held in {share * 100:.4g}% of windows {_where(scope)} "
                f"({len(judged) - len(failed)} of {len(judged)}); expected at least {q.share * 100:.4g}%"
            )
            return self.verdict(slo, passed, share, q.share, "fraction", scope, detail, pts)
        # `for D`: fails only when the condition is violated for D or longer without a break.
        size = self.series.windows[0].size
        longest, run, run_start, longest_start, prev = 0, 0, 0.0, 0.0, None
        for p in pts:
            if p.ok is False and prev is not None and p.index == prev + 1 and run:
                run += 1
            elif p.ok is False:
                run, run_start = 1, p.start
            else:
                run = 0
            prev = p.index
            if run > longest:
                longest, longest_start = run, run_start
        assert q.seconds is not None  # the parser sets it for `for D`
        seconds = longest * size
        passed = seconds < q.seconds - _EPS
        if longest:
            detail = (
                f"{cond} was violated for {seconds:g} s in a row at most (from {self.since_start(longest_start)})"
                f" {_where(scope)}; allowed less than {q.seconds:g} s"
            )
        else:
            detail = f"{cond} held in every window {_where(scope)}"
        return Verdict(slo.text, passed, seconds, q.seconds, "s", scope, detail, cmp.op, pts)

    # --- recovery, detection, degradation ---------------------------------------------------

    def faults(self, chosen: str | None, scope: str | None) -> list[Span]:
        name = chosen or (scope if scope not in (None, "run", "fault") else None)
        return [s for s in self.timeline.faults if name is None or s.name == name]

    def steady_state(self) -> tuple[Comparison, ...]:
        """The settings' steady state, with accuracy / fallback rate where this run measures them."""
        labelled = compute(SliRef("accuracy", 0), self.series, self.series.in_scope("baseline"), "")
        return self.settings.steady_state_conditions(
            accuracy=not isinstance(labelled, Missing),
            fallback_rate=any(w.fallback_flagged for w in self.series.windows),
        )

    def horizon(self, span: Span, after: float) -> Horizon:
        """Where judging `span` stops: the next other fault starting at or after `after`, or the
        run's end (one fault's recovery or detection must not absorb the next fault)."""
        later = sorted(
            (f.start, f.name) for f in self.timeline.faults if f is not span and f.start >= after
        )
        run_end = self.timeline.run.end
        if run_end is None and self.series.windows:
            run_end = self.series.windows[-1].end
        if later and (run_end is None or later[0][0] < run_end):
            start, name = later[0]
            return Horizon(start, f"{name} started")
        return Horizon(run_end if run_end is not None else after, "the run ended")

    def recovery_of(self, span: Span, conds: tuple[Comparison, ...]) -> RecoveryResult:
        """From `span`'s end until `conds` hold for N consecutive windows, up to the horizon.
        Windows inside another fault's span break the streak (that fault is not the steady state)."""
        assert span.end is not None
        n = self.settings.recovery_windows
        horizon = self.horizon(span, span.end)
        others = [f for f in self.timeline.faults if f is not span]
        streak, prev, reasons, pts = 0, None, [], []
        u = display_unit(conds[0].left)
        for i in self.series.after(span.end):
            mid = self.series.midpoint(i)
            if mid >= horizon.at:
                break
            w = self.series.windows[i]
            if any(f.contains(mid) for f in others):
                ok: bool | None = None
            else:
                check = self.check_all(conds, i)
                ok = check.ok
                reasons.append(check.why)
            first = self.value(conds[0].left, i, "run")
            pts.append(
                WindowPoint(
                    w.index, w.start, None if isinstance(first, Missing) else _display(first, u), ok
                )
            )
            streak = streak + 1 if ok and streak and prev == w.index - 1 else (1 if ok else 0)
            prev = w.index
            if streak == n:
                after = max(0.0, self.series.windows[i - n + 1].start - span.end)
                return RecoveryResult(span, after, horizon.at, horizon.why, "", pts)
        unmeasured = ""
        if reasons and all(p.ok is None for p in pts):
            unmeasured = next((r for r in reasons if r), "no window with data after it ended")
        return RecoveryResult(span, None, horizon.at, horizon.why, unmeasured, pts)

    def recovery(self, slo: Slo) -> Verdict:
        node = slo.comparison.left
        assert isinstance(node, RecoveryTime)
        conds = node.conditions or self.steady_state()
        n = self.settings.recovery_windows
        scope = node.fault or slo.scope or "fault"
        spans = [s for s in self.faults(node.fault, slo.scope) if s.end is not None]
        cond_text = " and ".join(f"`{c}`" for c in conds)
        threshold = self.constant(slo.comparison.right)
        op = slo.comparison.op
        if not spans:
            named = f"named {node.fault!r} " if node.fault else ""
            why = f"not measured: no fault {named}ended in this run; recovery_time needs one"
            return self.verdict(slo, None, None, threshold, "s", scope, why)
        results = [self.recovery_of(s, conds) for s in sorted(spans, key=lambda s: s.start)]
        never = [r for r in results if r.recovered_after is None and not r.unmeasured]
        if never:
            r = never[0]
            detail = (
                f"{r.fault.name} not recovered within {format_value(r.within, 's')}: {cond_text} did not hold "
                f"for {n} consecutive windows between its end at {self.since_start(r.fault.end)} and "
                f"{self.since_start(r.horizon)} ({r.horizon_why}); expected {op} {format_value(threshold, 's')}"
            )
            if len(never) > 1:
                detail += "; also not recovered: " + ", ".join(x.fault.name for x in never[1:])
            return self.verdict(slo, False, None, threshold, "s", scope, detail, r.points)
        unmeasured = [r for r in results if r.unmeasured]
        if unmeasured:
            r = unmeasured[0]
            detail = f"not measured: recovery from {r.fault.name}: {r.unmeasured}"
            return self.verdict(slo, None, None, threshold, "s", scope, detail, r.points)
        recovered = [(r.recovered_after, r) for r in results if r.recovered_after is not None]
        worst_after, worst = max(recovered, key=lambda pair: pair[0])
        passed = _compare(op, worst_after, threshold)
        others = "; ".join(
            f"{r.fault.name} {format_value(r.recovered_after, 's')}"
            for r in results
            if r is not worst
        )
        detail = (
            f"recovery_time of {worst.fault.name} was {format_value(worst.recovered_after, 's')} (from its end "
            f"at {self.since_start(worst.fault.end)} until {cond_text} held for {n} consecutive windows); "
            f"expected {op} {format_value(threshold, 's')}"
            + (f"; other faults: {others}" if others else "")
        )
        return self.verdict(
            slo, passed, worst.recovered_after, threshold, "s", scope, detail, worst.points
        )

    def detection_of(self, span: Span, conds: tuple[Comparison, ...]) -> DetectionResult:
        """Only a change from false to true at or after `span`'s start counts: the window
        before the start must not hold already (that is a false alarm)."""
        horizon = self.horizon(span, span.start + _EPS)
        run = self.timeline.run
        pts: list[WindowPoint] = []
        for i, w in enumerate(self.series.windows):
            if not run.contains(w.start) and not run.contains((w.start + w.end) / 2):
                continue
            if w.end <= span.start + _EPS:
                if w.end > span.start - w.size:  # the window right before the start
                    on = self.check_all(conds, i).ok
                    if on:
                        return DetectionResult(
                            span, None, horizon.at, horizon.why, w.start, [WindowPoint(w.index, w.start, None, on)]
                        )
                continue
            if w.start >= horizon.at:
                break
            ok = self.check_all(conds, i).ok
            pts.append(WindowPoint(w.index, w.start, None, ok))
            if ok:
                return DetectionResult(
                    span, max(0.0, w.end - span.start), horizon.at, horizon.why, None, pts
                )
        return DetectionResult(span, None, horizon.at, horizon.why, None, pts)

    def detection(self, slo: Slo) -> Verdict:
        node = slo.comparison.left
        assert isinstance(node, DetectionTime)
        conds = node.conditions or self.settings.detection_conditions()
        if not conds:
            raise UserError(
                f"`{slo.text}`: detection_time needs a condition, e.g. "
                "detection_time(probe.alert >= 1) < 20s, or set the scenario's slo settings `detection:`"
            )
        scope = node.fault or slo.scope or "fault"
        spans = sorted(self.faults(node.fault, slo.scope), key=lambda s: s.start)
        threshold = self.constant(slo.comparison.right)
        op = slo.comparison.op
        cond_text = " and ".join(f"`{c}`" for c in conds)
        if not spans:
            why = "not measured: no fault ran in this run; detection_time needs one"
            return self.verdict(slo, None, None, threshold, "s", scope, why)
        results = [self.detection_of(s, conds) for s in spans]
        alarms = [r for r in results if r.already_on_at is not None]
        if alarms:
            r = alarms[0]
            detail = (
                f"false alarm: {cond_text} already held in the window from {self.since_start(r.already_on_at)} "
                f"before {r.fault.name} started at {self.since_start(r.fault.start)}; only a change from false "
                f"to true after a fault starts counts as its detection"
            )
            return self.verdict(slo, False, None, threshold, "s", scope, detail, r.points)
        never = [r for r in results if r.detected_after is None]
        if never:
            r = never[0]
            detail = (
                f"{r.fault.name} not detected within {format_value(r.within, 's')}: {cond_text} did not hold "
                f"between its start at {self.since_start(r.fault.start)} and {self.since_start(r.horizon)} ({r.horizon_why})"
            )
            return self.verdict(slo, False, None, threshold, "s", scope, detail, r.points)
        detected = [(r.detected_after, r) for r in results if r.detected_after is not None]
        worst_after, worst = max(detected, key=lambda pair: pair[0])
        passed = _compare(op, worst_after, threshold)
        detail = (
            f"detection_time of {worst.fault.name} was {format_value(worst.detected_after, 's')} (from its start "
            f"at {self.since_start(worst.fault.start)} until {cond_text} held); expected {op} {format_value(threshold, 's')}"
        )
        return self.verdict(
            slo, passed, worst.detected_after, threshold, "s", scope, detail, worst.points
        )

    def degradation(self, slo: Slo) -> Verdict:
        node = slo.comparison.left
        assert isinstance(node, Degradation)
        sli, scope = node.sli, node.scope or slo.scope or "fault"
        threshold = self.constant(slo.comparison.right)
        base = self.value(sli, None, "baseline")
        unit = display_unit(sli)
        pts = self.points(sli, self.judged(scope), scope, unit)

        def not_measured(why: str) -> Verdict:
            return self.verdict(slo, None, None, threshold, "ratio", scope, f"not measured: {why}", pts)

        if isinstance(base, Missing):
            return not_measured(f"no baseline for degradation({sli.name}): {base.reason}")
        lower_is_worse = sli.kind in ("availability", "accuracy", "throughput", "requests") or sli.distribution == "tokens_per_s"
        values = []
        for i in self.judged(scope):
            v = self.value(sli, i, scope)
            if isinstance(v, Missing):
                if v.failing:
                    values.append(0.0 if lower_is_worse else math.inf)
                continue
            values.append(v)
        if not values:
            return not_measured(f"no window with data {_where(scope)} for degradation({sli.name})")
        worst = min(values) if lower_is_worse else max(values)
        num, den = (base, worst) if lower_is_worse else (worst, base)
        ratio = 1.0 if num == den else (math.inf if den == 0 else num / den)
        passed = _compare(slo.comparison.op, ratio, threshold)
        detail = (
            f"worst window of {sli.name} {_where(scope)} was {format_value(worst, unit)} against "
            f"{format_value(base, unit)} over the baseline: degradation {format_value(ratio, 'ratio')}; "
            f"expected {slo.comparison.op} {format_value(threshold, 'ratio')}"
        )
        return self.verdict(slo, passed, ratio, threshold, "ratio", scope, detail, pts)


def evaluate(
    slo: Slo, windows: list[Window], timeline: RunTimeline, settings: SloSettings | None = None
) -> Verdict:
    """Judge one parsed SLO over a run's merged windows (one per index) and its timeline."""
    ev = Evaluator(Series.build(windows, timeline), settings or SloSettings())
    lhs = slo.comparison.left
    if isinstance(lhs, RecoveryTime):
        return ev.recovery(slo)
    if isinstance(lhs, DetectionTime):
        return ev.detection(slo)
    if isinstance(lhs, Degradation):
        return ev.degradation(slo)
    return ev.windowed(slo) if slo.quantifier else ev.aggregate(slo)
