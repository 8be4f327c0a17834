"""Prometheus probe: a metric scraped from a /metrics text endpoint, or a PromQL instant query.

Scrape mode (`metric:`) parses the exposition text with prometheus_client's parser and
combines the samples that match the label matchers (`aggregate`, sum by default).
Query mode (`query:`) asks a Prometheus server's HTTP API (`GET /api/v1/query`).
"""

from __future__ import annotations

from typing import Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field, field_validator, model_validator

from harness.core.probe import Probe, ProbeConfig, check_http_url, to_number


class PrometheusProbeConfig(ProbeConfig):
    type: Literal["prometheus"] = "prometheus"
    url: str  # the /metrics endpoint (scrape) or the Prometheus server's base URL (query)
    metric: str | None = (
        None  # sample name, e.g. http_requests_total (a counter's base name works too)
    )
    labels: dict[str, str] = Field(default_factory=dict)  # exact label matchers for `metric`
    query: str | None = None  # PromQL, e.g. sum(rate(http_requests_total{code=~"5.."}[30s]))
    aggregate: Literal["sum", "max", "min", "mean", "first"] = "sum"  # over matching series

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v, "http://127.0.0.1:9090")

    @model_validator(mode="after")
    def _one_source(self) -> PrometheusProbeConfig:
        if (self.metric is None) == (self.query is None):
            raise ValueError(
                "give exactly one of `metric:` (scrape a /metrics page) or `query:` (PromQL)"
            )
        if self.query is not None and self.labels:
            raise ValueError(
                "`labels:` applies to `metric:`; put matchers inside the PromQL `query:`"
            )
        return self


def _combine(values: list[float], how: str) -> float:
    if how == "sum":
        return sum(values)
    if how == "max":
        return max(values)
    if how == "min":
        return min(values)
    if how == "mean":
        return sum(values) / len(values)
    return values[0]


class PrometheusProbe(Probe):
    type = "prometheus"
    Config = PrometheusProbeConfig
    config: PrometheusProbeConfig

    def __init__(self, config: PrometheusProbeConfig) -> None:
        super().__init__(config)
        self._client = httpx.Client(timeout=config.timeout, trust_env=False)

    def read(self) -> float:
        return self._scrape() if self.config.metric else self._query()

    def _scrape(self) -> float:
        c = self.config
        resp = self._client.get(c.url)
        resp.raise_for_status()
        names = {c.metric, f"{c.metric}_total"}
        values, seen = [], set()
        for family in text_string_to_metric_families(resp.text):
            for s in family.samples:
                seen.add(s.name)
                if s.name in names and all(s.labels.get(k) == v for k, v in c.labels.items()):
                    values.append(float(s.value))
        if not values:
            close = sorted(n for n in seen if c.metric and (c.metric in n or n in c.metric))[:5]
            raise LookupError(
                f"no sample of {c.metric}{c.labels or ''} at {c.url}"
                + (f" (similar: {', '.join(close)})" if close else "")
            )
        return _combine(values, c.aggregate)

    def _query(self) -> float:
        c = self.config
        resp = self._client.get(c.url.rstrip("/") + "/api/v1/query", params={"query": c.query})
        body = resp.json()
        if body.get("status") != "success":
            raise ValueError(
                f"Prometheus query failed: {body.get('errorType', '')} {body.get('error', resp.text[:200])}"
            )
        data = body["data"]
        if data["resultType"] in ("scalar", "string"):
            return to_number(data["result"][1], "query result")
        if data["resultType"] != "vector":
            raise ValueError(
                f"query returned a {data['resultType']}; use an instant vector or scalar"
            )
        if not data["result"]:
            raise LookupError(f"query {c.query!r} returned no series")
        return _combine(
            [to_number(r["value"][1], "query result") for r in data["result"]], c.aggregate
        )

    @classmethod
    def addresses_of(cls, config: Any) -> list[str]:
        return [config.url]  # the whole URL: the safety check reads its host as every client does

    def close(self) -> None:
        self._client.close()
