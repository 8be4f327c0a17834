"""The live endpoint as a black-box classifier: counted, rate-limited and budgeted.

Every row sent is one query. A query over budget or past the deadline raises
`BudgetExhausted` before anything is sent, so an attack stops cleanly inside ART's
loops. 429s are waited out (inside the deadline), 5xx are counted as server errors.
A failed request is classified here, once, by kind (`refused`, `reset`, `timeout`,
`http_503`, `decode`, ...); the kind travels with the error into figures and journal.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from typing import Any, Self

import httpx
import numpy as np

from harness.core.attack import AttackContext
from harness.core.protocols import DecodeError


class BudgetExhausted(Exception):
    """The attack's query budget or time window is used up."""


class EndpointError(Exception):
    """The endpoint failed to answer a query (5xx, transport error, undecodable body)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind  # refused | reset | timeout | connection | http_<status> | decode


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    while exc is not None and exc not in chain:
        chain.append(exc)
        exc = exc.__cause__ or exc.__context__  # type: ignore[assignment]  # __cause__/__context__ are BaseException | None, the loop ends on None
    return chain


def transport_kind(exc: httpx.HTTPError) -> str:
    """How a request failed below HTTP: `timeout`, `refused` (nothing listening), `reset`
    (the connection was reset or closed before an answer) or `connection` (anything else)."""
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    chain = _causes(exc)
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or (
        isinstance(exc, httpx.ConnectError) and "refused" in str(exc).lower()
    ):
        return "refused"
    if any(isinstance(e, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)) for e in chain) or (
        isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError))
    ):
        return "reset"
    return "connection"


def status_kind(status: int) -> str:
    return f"http_{status}"


class QueryRefused(EndpointError):
    """The endpoint refused a well-formed query (403): a defence caught the attacker."""

    def __init__(self, message: str) -> None:
        super().__init__(message, status_kind(403))


class RateLimiter:
    """Spaces calls at most `rate` per second (None: no limit). Thread-safe."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self.next_at = time.monotonic()
        self.lock = threading.Lock()

    def wait(self, deadline: float) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            at = max(self.next_at, now)
            self.next_at = at + self.interval
        if at > deadline:
            raise BudgetExhausted("the attack's time window ends before the next allowed request")
        time.sleep(max(0.0, at - now))


def read_scores(response_json: Any, rows: int) -> np.ndarray | None:
    """Class scores [rows, k] from a response the adapter found none in: a 2-D OIP
    output it did not read, or a `probabilities` list next to the predictions."""
    candidates: list[Any] = []
    if isinstance(response_json, dict):
        outputs = response_json.get("outputs")
        if isinstance(outputs, list):
            for out in outputs:
                shape = out.get("shape") if isinstance(out, dict) else None
                if isinstance(shape, list) and len(shape) == 2:
                    candidates.append((out.get("data"), shape))
        if "probabilities" in response_json:
            candidates.append((response_json["probabilities"], None))
    for data, shape in candidates:
        try:
            arr = np.asarray(data, dtype=np.float64)
            arr = arr.reshape(shape) if shape else arr
        except (TypeError, ValueError):
            continue
        if arr.ndim == 2 and arr.shape[0] == rows:
            return arr
    return None


class CountedClient:
    """An HTTP client to the target with the counts every attack reports (requests, 5xx,
    429s, failures by kind), a rate limit and a deadline; closes as a context manager."""

    def __init__(self, base_url: str, *, deadline: float, rate_limit: float | None, request_timeout: float) -> None:
        self.deadline = deadline
        self.limiter = RateLimiter(rate_limit)
        self.http = httpx.Client(base_url=base_url, timeout=request_timeout, trust_env=False)
        self.requests = 0
        self.server_errors = 0
        self.throttled = 0
        self.errors: Counter[str] = Counter()  # failed requests by kind

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def figures(self) -> dict[str, float]:
        """The counts an attack reports. With no request sent, what the server answered
        (5xx, 429) is not measured (absent, so an SLO on it fails), never 0."""
        out = {"requests": float(self.requests)}
        if self.requests:
            out.update(server_errors=float(self.server_errors), throttled=float(self.throttled))
        return out

    def wait_out_throttling(self, response: httpx.Response) -> None:
        """A 429: wait its Retry-After, or raise BudgetExhausted when that ends past the window."""
        self.throttled += 1
        wait = retry_after(response)
        if time.monotonic() + wait >= self.deadline:
            raise BudgetExhausted("throttled (429) until the end of the window")
        time.sleep(wait)


class EndpointClient(CountedClient):
    """Sends batches through the protocol adapter; counts queries, errors and throttling."""

    def __init__(
        self,
        ctx: AttackContext,
        *,
        max_queries: int,
        deadline: float,
        rate_limit: float | None = None,
        batch_size: int = 64,
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__(ctx.base_url, deadline=deadline, rate_limit=rate_limit, request_timeout=request_timeout)
        self.ctx = ctx
        self.max_queries = max_queries
        self.batch_size = batch_size
        self.url = ctx.adapter.infer_path(ctx.model)
        self.queries = 0
        self.refused = 0  # queries (rows) the endpoint refused with 403

    @classmethod
    def for_attack(cls, ctx: AttackContext, params: Any, deadline: float,
                   max_queries: int | None = None) -> Self:
        """A client with an attack's common budget params (AttackParams)."""
        return cls(ctx, max_queries=params.max_queries if max_queries is None else max_queries,
                   deadline=deadline, rate_limit=params.rate_limit, batch_size=params.batch_size,
                   request_timeout=params.request_timeout)

    def figures(self) -> dict[str, float]:
        """The counts, with queries (rows) and those the endpoint refused (403)."""
        out = {"queries": float(self.queries), **super().figures()}
        if self.requests:
            out["refused_queries"] = float(self.refused)
        return out

    def predict(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        """(labels [n] int, scores [n, k] or None) for a batch of named input arrays."""
        n = len(next(iter(batch.values())))
        labels: list[np.ndarray] = []
        scores: list[np.ndarray | None] = []
        for start in range(0, n, self.batch_size):
            part = {k: v[start : start + self.batch_size] for k, v in batch.items()}
            lab, sc = self._one_request(part)
            labels.append(lab)
            scores.append(sc)
        all_scores = None if any(s is None for s in scores) else np.vstack(scores)  # type: ignore[arg-type]  # no None left in scores on this branch
        return np.concatenate(labels), all_scores

    def _one_request(self, batch: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
        rows = len(next(iter(batch.values())))
        if self.queries + rows > self.max_queries:
            raise BudgetExhausted(f"query budget of {self.max_queries} used up")
        body = self.ctx.adapter.encode(batch)
        while True:
            if time.monotonic() >= self.deadline:
                raise BudgetExhausted("the attack's time window is over")
            self.limiter.wait(self.deadline)
            self.requests += 1
            try:
                response = self.http.post(self.url, json=body)
            except httpx.HTTPError as exc:
                raise self._failed(f"no answer from {self.url}: {exc!r}", transport_kind(exc)) from exc
            if response.status_code == 429:
                self.wait_out_throttling(response)
                continue
            break
        status = response.status_code
        if status >= 500:
            self.server_errors += 1
            raise self._failed(f"{self.url} answered {status}: {response.text[:200]}", status_kind(status))
        if status == 403:
            self.refused += rows
            self.errors[status_kind(status)] += 1
            raise QueryRefused(f"{self.url} refused the attacker's query: {response.text[:200]}")
        if status >= 400:
            raise self._failed(f"{self.url} refused a query ({status}): {response.text[:200]}", status_kind(status))
        self.queries += rows
        try:
            payload = response.json()
            decoded = self.ctx.adapter.decode(payload)
        except (ValueError, DecodeError) as exc:
            raise self._failed(f"cannot read the answer of {self.url}: {exc}", "decode") from exc
        if decoded.predictions is None or len(decoded.predictions) != rows:
            raise self._failed(f"{self.url} did not return one prediction per row", "decode")
        labels = np.array([int(float(p)) for p in decoded.predictions], dtype=np.int64)
        scores = (
            np.asarray(decoded.scores, dtype=np.float64)
            if decoded.scores is not None and len(decoded.scores) == rows
            else read_scores(payload, rows)
        )
        return labels, scores

    def _failed(self, message: str, kind: str) -> EndpointError:
        self.errors[kind] += 1
        return EndpointError(f"{message} [{kind}]", kind)


def retry_after(response: httpx.Response) -> float:
    try:
        return min(max(float(response.headers.get("Retry-After", "0.2")), 0.05), 5.0)
    except ValueError:
        return 0.2


def alive(ctx: AttackContext, timeout: float) -> bool:
    """The target's liveness path answers 2xx (the attack did not take it down)."""
    try:
        return (
            httpx.get(ctx.base_url.rstrip("/") + ctx.adapter.live_path, timeout=timeout).status_code
            < 300
        )
    except httpx.HTTPError:
        return False
