"""HTTP probe: a response's status code, its latency in seconds, or a number in its JSON body."""

from __future__ import annotations

import time
from typing import Any, Literal

import httpx
from pydantic import Field, field_validator, model_validator

from harness.core.json_query import check_json_query
from harness.core.probe import Probe, ProbeConfig, check_http_url, json_value


class HttpProbeConfig(ProbeConfig):
    type: Literal["http"] = "http"
    url: str
    method: Literal["GET", "POST", "HEAD", "PUT"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: Any = None
    measure: Literal["status", "latency", "json"] = "status"
    json_path: str | None = None  # for measure: json, a JMESPath, e.g. model.drift_score
    expect_status: int | None = None  # when set, any other status is a failed sample

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        return check_http_url(v, "http://127.0.0.1:8080/health")

    @field_validator("json_path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else check_json_query(v)

    @model_validator(mode="after")
    def _needs_path(self) -> HttpProbeConfig:
        if self.measure == "json" and not self.json_path:
            raise ValueError("measure: json needs json_path, e.g. json_path: drift_score")
        return self


class HttpProbe(Probe):
    type = "http"
    Config = HttpProbeConfig
    config: HttpProbeConfig

    def __init__(self, config: HttpProbeConfig) -> None:
        super().__init__(config)
        self._client = httpx.Client(timeout=config.timeout, follow_redirects=False, trust_env=False)

    def read(self) -> float:
        c = self.config
        started = time.perf_counter()
        resp = self._client.request(c.method, c.url, headers=c.headers, json=c.json_body)
        elapsed = time.perf_counter() - started
        if c.expect_status is not None and resp.status_code != c.expect_status:
            raise ValueError(f"status {resp.status_code}, expected {c.expect_status}")
        if c.measure == "status":
            return float(resp.status_code)
        if c.measure == "latency":
            return elapsed
        if resp.status_code >= 400:
            raise ValueError(f"status {resp.status_code} from {c.url}")
        return json_value(resp.json(), c.json_path or "@")

    @classmethod
    def addresses_of(cls, config: Any) -> list[str]:
        return [config.url]  # the whole URL: the safety check reads its host as every client does

    def close(self) -> None:
        self._client.close()
