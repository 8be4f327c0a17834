"""Recursive-descent parser for the SLO language (grammar in harness/engine/slo/README.md).

Errors are `SloSyntaxError`: they carry the column, a caret line under the text and
what was expected there; unknown SLI and scope names get a "did you mean".  Unit and
scope checks happen here too, so a scenario is fully validated before any run.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import NamedTuple

from harness.core.fault import UserError
from harness.engine.slo.ast import (
    DISTRIBUTIONS,
    PER_FAULT,
    BinOp,
    Comparison,
    Degradation,
    DetectionTime,
    Dim,
    Expr,
    Neg,
    Number,
    Quantifier,
    RecoveryTime,
    RollbackTime,
    SliRef,
    Slo,
    StopCondition,
    measures,
)

BASE_SCOPES = ("run", "baseline", "fault", "recovery")
COMPARATORS = ("<", "<=", ">", ">=", "==", "!=")
SIMPLE_SLIS = (
    "error_rate", "availability", "throughput", "accuracy", "fallback_rate", "requests",
    "client_error_rate", "server_error_rate", "stream_error_rate", "bad_version_share", "tampered_served",
)  # fmt: skip
LATENCY_STATS = ("mean", "max", "min")
PROBE_AGGS = ("last", "min", "max", "mean")
# Names offered in "did you mean" and in the list of what was expected.
KNOWN_SLI_NAMES = (
    "p50(latency)", "p95(latency)", "p99(latency)", "mean(latency)", "max(latency)",
    "p95(ttft)", "p99(itl)", "p50(tokens_per_s)", "mean(output_tokens)",
    *SIMPLE_SLIS, "recovery_time", "detection_time", "rollback_time", "degradation", "probe.<name>",
)  # fmt: skip
_DIST_LIST = ", ".join(DISTRIBUTIONS)
_TIME_UNITS = {"us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_MAX_LENGTH = 2000
_MAX_DEPTH = 40

_TOKEN = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<number>\d+(?:\.\d+)?|\.\d+)(?:\s*(?P<unit>%|(?:ms|us|µs|s|m|h)(?![\w.])))?
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:[.:-][A-Za-z0-9_]+)*)
  | (?P<op><=|>=|==|!=|<|>)
  | (?P<punct>[()*/+,-])
    """,
    re.VERBOSE,
)


class SloSyntaxError(UserError, ValueError):
    """A malformed SLO expression; `str()` shows the message, the text and a caret."""

    def __init__(self, message: str, text: str, column: int, expected: list[str] | None = None):
        self.message = message
        self.text = text
        self.column = column  # 1-based
        self.expected = expected or []
        super().__init__(self._render())

    def _render(self) -> str:
        msg = f"{self.message} at column {self.column}"
        if self.expected:
            msg += "; expected " + _one_of(self.expected)
        shown = self.text.replace("\n", " ").replace("\t", " ")
        return f"{msg}\n  {shown}\n  {' ' * (self.column - 1)}^"


def _one_of(items: list[str]) -> str:
    return items[0] if len(items) == 1 else "one of: " + ", ".join(items)


@dataclass(frozen=True)
class Token:
    kind: str  # number | name | op | punct | end
    text: str
    col: int  # 1-based
    value: float = 0.0
    unit: str | None = None


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise SloSyntaxError(f"unexpected character {text[pos]!r}", text, pos + 1)
        kind = m.lastgroup if m.lastgroup != "unit" else "number"
        if kind != "ws":
            tok_text = m.group(0)
            if kind == "number":
                tokens.append(
                    Token("number", tok_text, pos + 1, float(m.group("number")), m.group("unit"))
                )
            else:
                tokens.append(Token(kind or "", tok_text, pos + 1))
        pos = m.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


class _Parser:
    def __init__(self, text: str, known_scopes: set[str] | None, known_probes: set[str] | None):
        if len(text) > _MAX_LENGTH:
            raise SloSyntaxError(f"expression longer than {_MAX_LENGTH} characters", text[:80], 1)
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.depth = 0
        self.known_scopes = None if known_scopes is None else set(known_scopes) | set(BASE_SCOPES)
        self.known_probes = None if known_probes is None else set(known_probes)

    # --- token helpers ---------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, offset: int = 1) -> Token:
        return self.tokens[min(self.i + offset, len(self.tokens) - 1)]

    def advance(self) -> Token:
        t = self.tok
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return t

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.tok.kind == kind and (text is None or self.tok.text == text)

    def at_word(self, word: str) -> bool:
        return self.tok.kind == "name" and self.tok.text.lower() == word

    def error(
        self, message: str | None, expected: list[str], tok: Token | None = None
    ) -> SloSyntaxError:
        tok = tok or self.tok
        found = "end of expression" if tok.kind == "end" else repr(tok.text)
        return SloSyntaxError(message or f"unexpected {found}", self.text, tok.col, expected)

    def expect(self, kind: str, text: str, what: str | None = None) -> Token:
        if not self.at(kind, text):
            raise self.error(None, [what or repr(text)])
        return self.advance()

    def expect_word(self, word: str) -> Token:
        if not self.at_word(word):
            raise self.error(None, [repr(word)])
        return self.advance()

    # --- grammar ---------------------------------------------------------------------

    def comparison(self) -> Comparison:
        col = self.tok.col
        left = self.expr()
        if not self.at("op"):
            raise self.error(
                None, ["a comparison (" + " ".join(COMPARATORS) + ")", "an operator (+ - * /)"]
            )
        op = self.advance().text
        right = self.expr()
        return Comparison(left, op, right, col)

    def expr(self) -> Expr:
        node = self.term()
        while self.at("punct", "+") or self.at("punct", "-"):
            op = self.advance()
            node = BinOp(op.text, node, self.term(), op.col)
        return node

    def term(self) -> Expr:
        node = self.unary()
        while self.at("punct", "*") or self.at("punct", "/"):
            op = self.advance()
            node = BinOp(op.text, node, self.unary(), op.col)
        return node

    def unary(self) -> Expr:
        if self.at("punct", "-"):
            col = self.advance().col
            return Neg(self.unary(), col)
        return self.primary()

    def primary(self) -> Expr:
        tok = self.tok
        if tok.kind == "number":
            self.advance()
            value = tok.value
            if tok.unit == "%":
                value /= 100
            elif tok.unit:
                value *= _TIME_UNITS[tok.unit]
            if not math.isfinite(value):
                raise self.error(f"number {tok.text[:20]}... is too large", [], tok)
            return Number(value, tok.unit, tok.text.replace(" ", ""), tok.col)
        if self.at("punct", "("):
            self.depth += 1
            if self.depth > _MAX_DEPTH:
                raise self.error("too deeply nested", [])
            self.advance()
            node = self.expr()
            self.expect("punct", ")", "')'")
            self.depth -= 1
            return node
        if tok.kind == "name" and tok.text.lower() not in ("during", "for", "in", "of", "and"):
            return self.measure()
        raise self.error(
            None,
            ["a number (e.g. 250ms, 99.5%, 0.9)", "an SLI (e.g. p95(latency), error_rate)", "'('"],
        )

    def measure(self) -> Expr:
        tok = self.advance()
        name = tok.text.lower()
        if name in ("recovery_time", "detection_time"):
            conditions = None
            if self.at("punct", "("):
                self.advance()
                conditions = self.conditions()
                self.expect("punct", ")", "')' or 'and'")
            fault = None
            if self.at_word("of"):
                self.advance()
                fault = self.scope_name(fault_only=True)
            cls = RecoveryTime if name == "recovery_time" else DetectionTime
            node: Expr = cls(conditions, fault, tok.col)
        elif name == "rollback_time":
            fault = None
            if self.at_word("of"):
                self.advance()
                fault = self.scope_name(fault_only=True)
            node = RollbackTime(fault, tok.col)
        elif name == "degradation":
            self.expect(
                "punct", "(", "'(' (degradation takes an SLI, e.g. degradation(p95(latency)))"
            )
            inner = self.tok
            sli = self.measure()
            if not isinstance(sli, SliRef) or sli.scope:
                raise self.error("degradation takes a plain SLI such as p95(latency)", [], inner)
            self.expect("punct", ")", "')'")
            node = Degradation(sli, tok.col)
        else:
            node = self.sli(tok)
        if self.at_word("during"):
            self.advance()
            scope = self.scope_name()
            if isinstance(node, PER_FAULT):
                raise self.error(f"{name} takes `of <fault name>`, not `during`", ["'of'"], tok)
            node = replace(node, scope=scope)
        return node

    def sli(self, tok: Token) -> SliRef:
        name = tok.text.lower()
        pct = re.fullmatch(r"p(\d+(?:\.\d+)?)", name)
        if pct or name in LATENCY_STATS or name == "last":
            if not self.at("punct", "("):
                raise self.error(None, [f"'(' ({name} takes an argument, e.g. {name}(latency))"])
            self.advance()
            arg = self.tok
            if arg.kind != "name":
                raise self.error(None, [_DIST_LIST if pct else f"{_DIST_LIST} or probe.<name>"])
            self.advance()
            self.expect("punct", ")", "')'")
            dist = arg.text.lower()
            if dist in DISTRIBUTIONS and name != "last":
                if pct:
                    p = float(pct.group(1))
                    if not 0 < p <= 100:
                        raise self.error(
                            f"percentile {pct.group(1)} is outside 0..100 (write p99.9 for the 99.9th)",
                            [],
                            tok,
                        )
                    return SliRef(f"{dist}_pct", tok.col, percentile=p)
                return SliRef(f"{dist}_{name}", tok.col)
            if pct:
                raise self.error(f"{name}() applies to {_DIST_LIST} only{_did_you_mean(arg.text, list(DISTRIBUTIONS))}",
                                 [_DIST_LIST], arg)
            probe = self.probe_name(arg, allow_bare=True)
            return SliRef("probe", tok.col, probe=probe, agg=name)
        if name in SIMPLE_SLIS:
            return SliRef(name, tok.col)
        if name.startswith("probe."):
            return SliRef("probe", tok.col, probe=self.probe_name(tok, allow_bare=False))
        if name in DISTRIBUTIONS:
            raise self.error(
                f"{name} needs a statistic", [f"p95({name})", f"mean({name})", f"max({name})"], tok
            )
        return SliRef("probe", tok.col, probe=self.probe_name(tok, allow_bare=True))

    def probe_name(self, tok: Token, allow_bare: bool) -> str:
        """A probe reference: `probe.NAME`, or a bare NAME that is not an SLI name."""
        text = tok.text
        explicit = text.lower().startswith("probe.")
        name = text[len("probe.") :] if explicit else text
        if not name:
            raise self.error("empty probe name", ["probe.<name>"], tok)
        plain_slis = [*SIMPLE_SLIS, "recovery_time", "detection_time", "rollback_time", "degradation", *DISTRIBUTIONS]
        if self.known_probes is not None:
            if name in self.known_probes:
                return name
            pool = [*(f"probe.{p}" for p in self.known_probes), *plain_slis]
            raise self.error(
                f"unknown {'probe' if explicit else 'SLI or probe'} {text!r}{_did_you_mean(text, pool)}",
                [],
                tok,
            )
        if not explicit:
            hint = _did_you_mean(
                text, plain_slis + [f"p{n}" for n in (50, 90, 95, 99)], cutoff=0.75
            )
            if hint:
                raise self.error(
                    f"unknown SLI {text!r}{hint} (write probe.{text} for a probe)", [], tok
                )
        return name

    def scope_name(self, fault_only: bool = False) -> str:
        tok = self.tok
        if tok.kind != "name":
            raise self.error(
                None,
                [
                    "a fault name"
                    if fault_only
                    else "a scope: " + ", ".join(BASE_SCOPES) + " or a fault name"
                ],
            )
        self.advance()
        name = tok.text
        if fault_only and name in ("baseline", "recovery", "run"):
            raise self.error(f"{name!r} is not a fault", ["a fault name"], tok)
        if self.known_scopes is not None and name not in self.known_scopes:
            pool = sorted(
                self.known_scopes - ({"baseline", "recovery", "run"} if fault_only else set())
            )
            raise self.error(
                f"unknown {'fault' if fault_only else 'scope'} {name!r}{_did_you_mean(name, pool)}",
                [],
                tok,
            )
        return name

    def conditions(self) -> tuple[Comparison, ...]:
        conds = [self.condition()]
        while self.at_word("and"):
            self.advance()
            conds.append(self.condition())
        return tuple(conds)

    def condition(self) -> Comparison:
        cmp = self.comparison()
        for m in measures(cmp):
            if isinstance(m, (*PER_FAULT, Degradation)):
                raise SloSyntaxError(
                    f"{str(m).split('(')[0]} cannot appear inside a condition", self.text, m.col
                )
        return _checked(cmp, self.text)

    def tail(self, allow: tuple[str, ...]) -> tuple[Quantifier | None, str | None]:
        """Trailing `for D`, `in every window`, `in N% of windows`, `during X`, in any order."""
        quantifier: Quantifier | None = None
        scope: str | None = None
        while not self.at("end"):
            tok = self.tok
            if self.at_word("during") and scope is None:
                self.advance()
                scope = self.scope_name()
            elif self.at_word("for") and quantifier is None and "for" in allow:
                self.advance()
                d = self.tok
                if d.kind != "number" or d.unit not in (None, *_TIME_UNITS):
                    raise self.error(None, ["a duration (e.g. 5s, 500ms, 2m)"])
                self.advance()
                seconds = d.value * _TIME_UNITS[d.unit or "s"]
                if seconds <= 0:
                    raise self.error("the duration must be positive", [], d)
                quantifier = Quantifier(
                    "for", seconds=seconds, text=f"for {d.text.replace(' ', '')}"
                )
            elif self.at_word("in") and quantifier is None and "in" in allow:
                self.advance()
                if self.at_word("every"):
                    self.advance()
                    self.expect_word("window")
                    quantifier = Quantifier("every", text="in every window")
                else:
                    n = self.tok
                    if n.kind != "number" or n.unit != "%":
                        raise self.error(
                            None, ["'every window'", "a percentage (e.g. 95% of windows)"]
                        )
                    self.advance()
                    self.expect_word("of")
                    self.expect_word("windows")
                    if not 0 < n.value <= 100:
                        raise self.error("the share of windows must be in 0%..100%", [], n)
                    quantifier = Quantifier(
                        "share",
                        share=n.value / 100,
                        text=f"in {n.text.replace(' ', '')} of windows",
                    )
            else:
                expected = ([] if scope else ["'during <scope>'"]) + (
                    []
                    if quantifier
                    else [
                        f"'{w}'"
                        for w in ("for <duration>", "in every window", "in N% of windows")
                        if w.split()[0] in allow
                    ]
                )
                if self.at("op") or self.at("punct"):
                    expected.append("an operator only between two values")
                raise self.error(None, expected + ["the end of the expression"], tok)
        return quantifier, scope


def _did_you_mean(word: str, pool: list[str] | set[str], cutoff: float = 0.6) -> str:
    close = difflib.get_close_matches(word, list(pool), n=3, cutoff=cutoff)
    if not close:
        close = difflib.get_close_matches(
            word.lower(), [p.lower() for p in pool], n=3, cutoff=cutoff
        )
    return "; did you mean " + " or ".join(repr(c) for c in close) + "?" if close else ""


# --- unit (dimension) checks ---------------------------------------------------------


def dimension(node: Expr, text: str) -> Dim:
    if isinstance(node, Number):
        return "fraction" if node.unit == "%" else "time" if node.unit else "number"
    if isinstance(node, SliRef):
        if node.is_latency:
            return "time"
        if node.kind in ("error_rate", "availability", "accuracy", "fallback_rate",
                         "client_error_rate", "server_error_rate", "stream_error_rate",
                         "bad_version_share"):  # fmt: skip
            return "fraction"
        return "any" if node.kind == "probe" else "number"
    if isinstance(node, PER_FAULT):
        return "time"
    if isinstance(node, Degradation):
        return "number"
    if isinstance(node, Neg):
        return dimension(node.operand, text)
    a, b = dimension(node.left, text), dimension(node.right, text)
    if "any" in (a, b):
        return b if a == "any" else a
    if node.op in "+-":
        if a == b:
            return a
        if {a, b} == {"fraction", "number"}:
            return "number"
        raise SloSyntaxError(
            f"cannot {'add' if node.op == '+' else 'subtract'} a {b} {'to' if node.op == '+' else 'from'} a {a}"
            " (give plain numbers a unit, e.g. 5ms)",
            text,
            node.col,
        )
    if node.op == "*":
        if a == "time" and b == "time":
            raise SloSyntaxError("cannot multiply a time by a time", text, node.col)
        return "time" if "time" in (a, b) else "number" if "number" in (a, b) else "fraction"
    if a == b:
        return "number"
    if b == "time":
        raise SloSyntaxError(f"cannot divide a {a} by a time", text, node.col)
    return a


def _compatible(a: Dim, b: Dim) -> bool:
    return a == b or "any" in (a, b) or {a, b} == {"fraction", "number"}


def _checked(cmp: Comparison, text: str) -> Comparison:
    """Check units; put the side holding a measure on the left (`250ms > p95(latency)` flips)."""
    a, b = dimension(cmp.left, text), dimension(cmp.right, text)
    if not _compatible(a, b):
        side = cmp.right if a == "time" else cmp.left
        hint = (
            " (write the threshold with a unit, e.g. 250ms)"
            if "time" in (a, b) and "number" in (a, b)
            else ""
        )
        raise SloSyntaxError(
            f"cannot compare a {a} with a {b}{hint}", text, getattr(side, "col", cmp.col)
        )
    if not measures(cmp):
        raise SloSyntaxError(
            "this compares two numbers; an SLO needs an SLI such as p95(latency)", text, cmp.col
        )
    if not measures(cmp.left):
        flipped = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[cmp.op]
        cmp = Comparison(cmp.right, flipped, cmp.left, cmp.col)
    for m in measures(cmp):
        if isinstance(m, (*PER_FAULT, Degradation)) and (
            m is not cmp.left or measures(cmp.right)
        ):
            raise SloSyntaxError(
                f"{str(m).split('(')[0].split(' ')[0]} must stand alone on one side, "
                "compared with a number (e.g. recovery_time < 10s)",
                text,
                m.col,
            )
    _check_satisfiable(cmp, text)
    return cmp


# --- comparisons that can never hold ---------------------------------------------------
# Each side's possible values as an interval: a rate lies in 0..100 %, a latency, time,
# throughput or count is never negative, a probe can be anything.  If the intervals say
# the comparison is false for every value, the SLO could never pass: refuse it now
# rather than fail every run.  A constant divisor of zero is refused the same way.

class Interval(NamedTuple):
    """The smallest and largest value an expression can take (base units)."""

    lo: float
    hi: float


ANYTHING = Interval(-math.inf, math.inf)

_NEVER: dict[str, Callable[[Interval, Interval], bool]] = {
    "<": lambda a, b: a.lo >= b.hi,
    "<=": lambda a, b: a.lo > b.hi,
    ">": lambda a, b: a.hi <= b.lo,
    ">=": lambda a, b: a.hi < b.lo,
    "==": lambda a, b: a.hi < b.lo or b.hi < a.lo,
    "!=": lambda a, b: a.lo == a.hi == b.lo == b.hi,
}


def _bounds(node: Expr, text: str) -> Interval:
    """The smallest and largest value `node` can take (base units)."""
    if isinstance(node, Number):
        return Interval(node.value, node.value)
    if isinstance(node, SliRef):
        if node.kind == "probe":
            return ANYTHING
        return Interval(0.0, 1.0) if dimension(node, text) == "fraction" else Interval(0.0, math.inf)
    if isinstance(node, (*PER_FAULT, Degradation)):
        return Interval(0.0, math.inf)
    if isinstance(node, Neg):
        lo, hi = _bounds(node.operand, text)
        return Interval(-hi, -lo)
    (a, b), (c, d) = _bounds(node.left, text), _bounds(node.right, text)
    if node.op == "+":
        ends = [a + c, b + d]
    elif node.op == "-":
        ends = [a - d, b - c]
    elif node.op == "*":
        ends = [0.0 if 0 in (x, y) else x * y for x in (a, b) for y in (c, d)]
    else:
        if c == d == 0:
            raise SloSyntaxError(f"division by zero: `{node}`", text, node.col)
        if c <= 0 <= d:
            return ANYTHING
        ends = [
            x / y if not (math.isinf(x) and math.isinf(y)) else math.nan
            for x in (a, b)
            for y in (c, d)
        ]
    if any(math.isnan(e) for e in ends):
        return ANYTHING
    return Interval(min(ends), max(ends))


def _show(bounds: Interval, dim: Dim) -> str:
    def one(v: float) -> str:
        if math.isinf(v):
            return "infinity" if v > 0 else "-infinity"
        if dim == "fraction":
            return f"{v * 100:g}%"
        return f"{v:g} s" if dim == "time" else f"{v:g}"

    lo, hi = bounds
    return one(lo) if lo == hi else f"{one(lo)}..{one(hi)}"


def _check_satisfiable(cmp: Comparison, text: str) -> None:
    a, b = _bounds(cmp.left, text), _bounds(cmp.right, text)
    if _NEVER[cmp.op](a, b):
        dim = dimension(cmp.left, text)
        raise SloSyntaxError(
            f"`{cmp}` can never hold: {cmp.left} lies in {_show(a, dim)}, "
            f"so it is never {cmp.op} {_show(b, dim)}",
            text,
            getattr(cmp.right, "col", cmp.col),
        )


def _per_window(cmp: Comparison) -> bool:
    return any(isinstance(m, SliRef) and m.scope is None for m in measures(cmp))


# --- entry points ----------------------------------------------------------------------


def _parse_text(text: object) -> str:
    if not isinstance(text, str):
        raise SloSyntaxError(
            f"expected an SLO expression as text, got {type(text).__name__}", "", 1
        )
    if not text.strip():
        raise SloSyntaxError(
            "empty SLO expression", text, 1, ["an SLI such as p95(latency) < 250ms"]
        )
    return text


def parse_slo(
    text: str, known_scopes: set[str] | None = None, known_probes: set[str] | None = None
) -> Slo:
    """Parse and check one SLO. `known_scopes`: fault names (base scopes are always known);
    `known_probes`: probe names. Either left None skips that check."""
    p = _Parser(_parse_text(text), known_scopes, known_probes)
    cmp = _checked(p.comparison(), text)
    quantifier, scope = p.tail(("for", "in"))
    lhs = cmp.left
    if isinstance(lhs, (*PER_FAULT, Degradation)) and quantifier:
        raise SloSyntaxError(
            f"`{quantifier}` does not apply to {str(lhs).split('(')[0]}", text, lhs.col
        )
    if quantifier and not _per_window(cmp):
        raise SloSyntaxError(
            f"`{quantifier}` needs an SLI without its own `during` to judge per window",
            text,
            cmp.col,
        )
    if isinstance(lhs, PER_FAULT) and scope in ("baseline", "recovery"):
        raise SloSyntaxError(
            f"{str(lhs).split('(')[0]} is measured per fault: use `of <fault>` or `during fault`",
            text,
            lhs.col,
        )
    return Slo(text, cmp, quantifier, scope)


def parse_sli(text: str) -> SliRef:
    """One SLI by name (`p99.9(latency)`, `error_rate`, `probe.queue`), e.g. for a report column."""
    p = _Parser(text, None, None)
    node = p.measure()
    if not isinstance(node, SliRef) or not p.at("end"):
        raise SloSyntaxError("expected one SLI such as p95(latency) or error_rate", text, 1)
    return node


def parse_condition(
    text: str, known_scopes: set[str] | None = None, known_probes: set[str] | None = None
) -> Comparison:
    """A bare condition (no quantifier, no trailing scope), e.g. a steady-state entry."""
    p = _Parser(_parse_text(text), known_scopes, known_probes)
    cmp = p.condition()
    if not p.at("end"):
        raise p.error(None, ["the end of the condition"])
    return cmp


def parse_stop(
    text: str, known_scopes: set[str] | None = None, known_probes: set[str] | None = None
) -> StopCondition:
    """A `stop_when` entry: a per-window condition, optionally `for <duration>` and `during <scope>`."""
    p = _Parser(_parse_text(text), known_scopes, known_probes)
    cmp = p.condition()
    if not _per_window(cmp):
        raise SloSyntaxError(
            "a stop condition needs an SLI without its own `during`, judged per window",
            text,
            cmp.col,
        )
    quantifier, scope = p.tail(("for",))
    return StopCondition(text, cmp, quantifier.seconds if quantifier else None, scope)
