"""Abuse of the serving API: property-based fuzzing, a request flood, model extraction.

- `abuse.fuzz`: hypothesis generates malformed requests from a valid one (mutated
  JSON trees, wrong dtypes and shapes, NaN/Inf, huge batches, deeply nested JSON, bad
  text encodings, truncated bodies) and asserts the property "a bad request gets a
  4xx, never a 5xx or a dropped connection". Every case is checked (the run does not
  stop at the first violation); the smallest violation of each kind is reported.
- `abuse.flood`: valid requests at a rate and concurrency above the server's limit;
  a server that protects itself answers 429 instead of queueing until it times out.
- `abuse.extraction`: a surrogate trained from N answers, and its agreement with the
  target on rows it never saw (model-stealing risk).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any, ClassVar

import httpx
import numpy as np
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import Field

from attacks.endpoint import (
    BudgetExhausted,
    EndpointClient,
    RateLimiter,
    alive,
    status_kind,
    transport_kind,
)
from attacks.flood import FloodParams, flood
from attacks.space import FeatureSpace, take_rows
from attacks.surrogate import predict, query_points, train_surrogate
from harness.core.attack import (
    Attack,
    AttackContext,
    AttackParams,
    AttackResult,
    attacked_input,
    pick_rows,
)


@dataclass(frozen=True)
class FuzzCase:
    kind: str  # what was broken, for the report
    body: bytes
    content_type: str = "application/json"

    @property
    def payload(self) -> bytes:
        """The bytes to send."""
        return self.body

    def __repr__(self) -> str:
        shown = self.payload[:120] + (b"..." if len(self.payload) > 120 else b"")
        return f"FuzzCase({self.kind}, {len(self.payload)} bytes: {shown!r})"


_json_leaf = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=12)
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


def _paths(node: Any, here: tuple = ()) -> list[tuple]:
    out = [here]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, here + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node[:8]):
            out += _paths(v, here + (i,))
    return out


def _replace(node: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(node, dict):
        return {**node, head: _replace(node[head], rest, value)}
    copy = list(node)
    copy[head] = _replace(node[head], rest, value)
    return copy


def _dumps(tree: Any) -> bytes:
    return json.dumps(tree, allow_nan=True).encode()


def fuzz_cases(valid: dict[str, Any], batch: Callable[[int], Any], huge_rows: int) -> st.SearchStrategy[FuzzCase]:
    """Malformed variants of the valid request body `valid`, and real batches of 2 to
    `huge_rows` rows (`batch(n)`: the body of n dataset rows, encoded by the adapter)."""
    valid_bytes = _dumps(valid)

    @st.composite
    def mutated(draw: st.DrawFn) -> FuzzCase:
        paths = _paths(valid)
        path = draw(st.sampled_from(paths))
        return FuzzCase(
            f"replace {'/'.join(map(str, path)) or 'body'}",
            _dumps(_replace(valid, path, draw(_json_value))),
        )

    @st.composite
    def special_number(draw: st.DrawFn) -> FuzzCase:
        number_paths = [
            p
            for p in _paths(valid)
            if isinstance(_get(valid, p), (int, float)) and not isinstance(_get(valid, p), bool)
        ]
        path = draw(st.sampled_from(number_paths or [()]))
        value = draw(
            st.sampled_from(
                [
                    float("nan"),
                    float("inf"),
                    float("-inf"),
                    1e309,
                    -0.0,
                    2**64,
                    -(2**63) - 1,
                    1e-320,
                    3.4e39,
                ]
            )
        )
        return FuzzCase("special number", _dumps(_replace(valid, path, value)))

    deep = st.integers(min_value=10, max_value=200_000).map(
        lambda d: FuzzCase(f"nested {d} deep", b"[" * d + b"]" * d)
    )
    deep_obj = st.integers(min_value=10, max_value=50_000).map(
        lambda d: FuzzCase(f"object nested {d} deep", b'{"a":' * d + b"1" + b"}" * d)
    )
    rows = st.integers(min_value=2, max_value=min(64, huge_rows)) | st.integers(
        min_value=max(2, huge_rows // 2), max_value=huge_rows
    )  # ordinary batches, and oversized ones
    # built when sent, not when drawn: hypothesis draws every example, also those past the
    # deadline, and encoding thousands of rows for nothing starves the rest of the run
    huge = rows.map(lambda n: BatchCase(f"{n}-row batch", b"", rows=n, encode=batch))
    encodings = st.sampled_from(
        [
            FuzzCase("utf-16 body", valid_bytes.decode().encode("utf-16")),
            FuzzCase("utf-32 body", valid_bytes.decode().encode("utf-32")),
            FuzzCase("BOM + body", b"\xef\xbb\xbf" + valid_bytes),
            FuzzCase("invalid utf-8", valid_bytes[:10] + b"\xff\xfe\xc3\x28" + valid_bytes[10:]),
            FuzzCase("latin-1 text", '{"inputs": "caf\u00e9"}'.encode("latin-1")),
            FuzzCase("empty body", b""),
            FuzzCase("not json", b"hello"),
            FuzzCase("form content type", valid_bytes, "application/x-www-form-urlencoded"),
        ]
    )
    truncated = st.integers(min_value=1, max_value=max(1, len(valid_bytes) - 1)).map(
        lambda n: FuzzCase("truncated", valid_bytes[:n])
    )
    junk = st.binary(max_size=256).map(lambda b: FuzzCase("random bytes", b))
    return st.one_of(mutated(), special_number(), deep, deep_obj, huge, encodings, truncated, junk)


@dataclass(frozen=True, repr=False)
class BatchCase(FuzzCase):
    """A real batch of `rows` dataset rows, encoded by `encode` on first use."""

    rows: int = 0
    encode: Callable[[int], Any] | None = None

    @cached_property
    def payload(self) -> bytes:  # type: ignore[override]  # a cached_property stands in for the base class's property
        assert self.encode is not None
        return _dumps(self.encode(self.rows))


def _get(node: Any, path: tuple) -> Any:
    for k in path:
        node = node[k]
    return node


class FuzzParams(AttackParams):
    samples: int = Field(
        1, ge=1, le=64, description="rows in the valid request the cases start from"
    )
    examples: int = Field(200, ge=1, le=100_000, description="generated requests at most")
    huge_rows: int = Field(20_000, ge=2, description="rows in the largest generated batch")


# Hypothesis's first run in a process builds its unicode tables and scans the local
# source for constants: seconds on a busy box, a whole quick-mode window. `prepare` pays
# that before the run's clock starts, on this many cases that are drawn but not sent.
WARM_UP_EXAMPLES = 50


def check_each(strategy: st.SearchStrategy[FuzzCase], examples: int, at_seed: int,
               check: Callable[[FuzzCase], None]) -> None:
    """`check` on up to `examples` cases drawn from `strategy` (generation only: every case
    is checked and none is shrunk or replayed)."""

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.generate],
    )
    @seed(at_seed)
    @given(case=strategy)
    def bad_requests_get_4xx(case: FuzzCase) -> None:
        check(case)

    bad_requests_get_4xx()


class ApiFuzz(Attack):
    type = "abuse.fuzz"
    Params: ClassVar[type[AttackParams]] = FuzzParams
    params: FuzzParams

    def _cases(self, ctx: AttackContext) -> st.SearchStrategy[FuzzCase]:
        p = self.params
        n_rows = len(next(iter(ctx.dataset.values())))
        order = pick_rows(n_rows, n_rows, ctx.seed)
        valid = ctx.adapter.encode(take_rows(ctx.dataset, order[: p.samples]))

        def batch(n: int) -> Any:
            return ctx.adapter.encode(take_rows(ctx.dataset, np.take(order, np.arange(n), mode="wrap")))

        return fuzz_cases(valid, batch, p.huge_rows)

    def prepare(self, ctx: AttackContext) -> None:
        check_each(self._cases(ctx), WARM_UP_EXAMPLES, ctx.seed, lambda case: None)

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        started = time.monotonic()
        url = ctx.base_url.rstrip("/") + ctx.adapter.infer_path(ctx.model)
        limiter = RateLimiter(p.rate_limit)
        counts = {
            "fuzz_cases": 0,
            "server_errors": 0,
            "crashes": 0,
            "client_errors": 0,
            "accepted": 0,
        }
        failures: list[tuple[FuzzCase, str]] = []
        crash_kinds: Counter[str] = Counter()  # requests that got no answer, by kind
        first_case_at: list[float] = []  # seconds into the window when a case was first drawn
        http = httpx.Client(timeout=p.request_timeout, trust_env=False)

        def send(case: FuzzCase) -> None:
            # Every case is checked (no stop at the first failure): violations are
            # recorded, and the smallest one per kind goes to the report.
            if not first_case_at:
                first_case_at.append(time.monotonic() - started)
            if time.monotonic() >= deadline or counts["fuzz_cases"] >= p.max_queries:
                return
            try:
                limiter.wait(deadline)
            except BudgetExhausted:
                return
            counts["fuzz_cases"] += 1
            headers = {"content-type": case.content_type}
            try:
                try:
                    response = http.post(url, content=case.payload, headers=headers)
                except httpx.TransportError:
                    # a kept-alive connection the server closed after the previous case:
                    # retry once on a fresh connection before calling it a crash
                    with httpx.Client(timeout=p.request_timeout, trust_env=False) as fresh:
                        response = fresh.post(url, content=case.payload, headers=headers)
            except httpx.TransportError as exc:
                kind = transport_kind(exc)
                counts["crashes"] += 1
                crash_kinds[kind] += 1
                why = f"no answer within {p.request_timeout:g}s" if kind == "timeout" else repr(exc)
                failures.append((case, f"{kind}: {why}"))
                return
            code = response.status_code
            if code >= 500:
                counts["server_errors"] += 1
                failures.append((case, f"{status_kind(code)}: {response.text[:200]}"))
            elif code >= 400:
                counts["client_errors"] += 1
            else:
                counts["accepted"] += 1

        try:
            check_each(self._cases(ctx), p.examples, ctx.seed, send)
        finally:
            http.close()
        is_alive = alive(ctx, p.request_timeout)
        if not counts["fuzz_cases"]:
            # nothing was tried: what the cases would have got is not measured (an SLO on
            # it fails), never "0 server errors"
            window = deadline - started
            drawn = f"the first case was drawn {first_case_at[0]:.1f}s in" if first_case_at else "no case was drawn"
            stopped = f"sent no case in its {window:.3g}s window ({drawn}); give the attack a longer duration"
            ctx.journal("attack.error", attack=self.name, error=stopped, kind="no_cases")
            return AttackResult(metrics={"fuzz_cases": 0.0, "alive": float(is_alive)}, details={"stopped": stopped})
        metrics = {k: float(v) for k, v in counts.items()}
        metrics["alive"] = float(is_alive)
        smallest: dict[str, tuple[FuzzCase, str]] = {}
        for case, what in failures:
            kind = re.sub(r"\d+", "N", case.kind)
            if kind not in smallest or len(case.payload) < len(smallest[kind][0].payload):
                smallest[kind] = (case, what)
        details: dict[str, Any] = {
            "failures": [f"{what} on {case!r}" for case, what in smallest.values()][:20],
            "crash_kinds": dict(crash_kinds),
        }
        return AttackResult(metrics=metrics, details=details)


class RowFloodParams(FloodParams):
    samples: int = Field(1, ge=1, le=4096, description="rows per request")


class RequestFlood(Attack):
    type = "abuse.flood"
    Params: ClassVar[type[AttackParams]] = RowFloodParams
    params: RowFloodParams

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        return asyncio.run(self._flood(ctx, deadline))

    async def _flood(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        order = pick_rows(len(next(iter(ctx.dataset.values()))), 10**9, ctx.seed)
        bodies = [
            ctx.adapter.encode(
                take_rows(ctx.dataset, np.take(order, np.arange(i, i + p.samples), mode="wrap"))
            )
            for i in range(0, min(len(order), 512 * p.samples), p.samples)
        ]  # varied rows: no cache hits
        url = ctx.base_url.rstrip("/") + ctx.adapter.infer_path(ctx.model)
        metrics, details = await flood(url, bodies, rate=p.rate, concurrency=p.concurrency, max_queries=p.max_queries,
                                       request_timeout=p.request_timeout, deadline=deadline)
        metrics["alive"] = float(alive(ctx, p.request_timeout))
        return AttackResult(metrics=metrics, details=details)


class ExtractionParams(AttackParams):
    samples: int = Field(200, ge=10, description="held-out rows to measure agreement on")
    max_queries: int = Field(1000, ge=10, description="answers the surrogate is trained on")
    jitter: float = Field(
        0.05, ge=0, le=1, description="noise added to queried rows (attack space)"
    )
    bounds: list[tuple[float, float]] | None = None


class ModelExtraction(Attack):
    type = "abuse.extraction"
    Params: ClassVar[type[AttackParams]] = ExtractionParams
    params: ExtractionParams

    def run(self, ctx: AttackContext, deadline: float) -> AttackResult:
        p = self.params
        name = attacked_input(ctx, p.input)
        x = ctx.dataset[name]
        space = FeatureSpace.from_data(name, x, p.bounds)
        order = np.random.default_rng(ctx.seed).permutation(len(x))
        holdout, pool = order[: p.samples], order[p.samples :]
        train_rows = np.random.default_rng(ctx.seed + 1).choice(
            pool, size=p.max_queries, replace=len(pool) < p.max_queries
        )
        budget = p.max_queries + p.samples
        with EndpointClient.for_attack(ctx, p, deadline, max_queries=budget) as client:
            try:
                z, y = query_points(client, space, ctx.dataset, train_rows, p.jitter, ctx.seed)
                target, _ = client.predict(take_rows(ctx.dataset, holdout))
            except BudgetExhausted as exc:
                return AttackResult(
                    metrics={"extraction_queries": float(client.queries)},
                    details={"stopped": str(exc)},
                )
            classes = int(max(y.max(), target.max())) + 1
            net = train_surrogate(z, y, max(classes, 2), seed=ctx.seed)
            copy = predict(net, space.encode(x[holdout]))
            metrics = {
                "extraction_agreement": float(np.mean(copy == target)),
                "extraction_queries": float(len(y)),
                **client.figures(),
            }
            if ctx.labels is not None:
                metrics["surrogate_accuracy"] = float(
                    np.mean(copy == np.asarray(ctx.labels)[holdout])
                )
        return AttackResult(metrics=metrics, details={"stopped": "done", "errors": dict(client.errors)})
