"""The model server's Prometheus metrics, in a registry of their own."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class Metrics:
    """Every series the server exports on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "demo_requests",
            "Requests answered, by endpoint and status code",
            ["endpoint", "code"],
            registry=r,
        )
        self.latency = Histogram(
            "demo_request_latency_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inflight = Gauge("demo_inflight_requests", "Inference requests in flight", registry=r)
        self.shed = Counter("demo_shed_requests", "Requests refused with 429", registry=r)
        self.refused_queries = Counter(
            "demo_refused_queries", "Rows refused with 403 as boundary probing (query guard)", registry=r
        )
        self.fallbacks = Counter(
            "demo_fallbacks",
            "Responses served by the fallback model, by reason",
            ["reason"],
            registry=r,
        )
        self.predictions = Counter(
            "demo_predictions", "Rows predicted, by model", ["model"], registry=r
        )
        self.breaker_state = Gauge(
            "demo_circuit_breaker_state",
            "Feature-store breaker: 0 closed, 1 open, 2 half-open",
            registry=r,
        )
        self.breaker_transitions = Counter(
            "demo_circuit_breaker_transitions",
            "Breaker state changes, by new state",
            ["state"],
            registry=r,
        )
        self.feature_requests = Counter(
            "demo_feature_store_requests",
            "Feature-store calls, by outcome",
            ["outcome"],
            registry=r,
        )
        self.feature_cache = Counter(
            "demo_feature_cache_lookups",
            "Feature cache lookups, by result",
            ["result"],
            registry=r,
        )
        self.drift_score = Gauge(
            "drift_score", "Largest per-feature PSI of the input window vs training", registry=r
        )
        self.drift_alert = Gauge("drift_alert", "1 while input drift is over threshold", registry=r)
        self.drift_feature = Gauge(
            "drift_feature_psi", "PSI of one input feature vs training", ["feature"], registry=r
        )
        self.ingested_rows = Counter(
            "demo_ingested_rows",
            "Labelled rows posted for training, by result",
            ["result"],
            registry=r,
        )
        self.ingest_guard_rejections = Counter(
            "demo_ingest_guard_rejections",
            "Ingested rows refused because the model confidently contradicts their label",
            registry=r,
        )
        self.retrains = Counter(
            "demo_retrains", "Retrain jobs, by outcome", ["outcome"], registry=r
        )
        self.checksum_failures = Counter(
            "demo_model_checksum_failures",
            "Cached models rejected for a bad checksum",
            registry=r,
        )
        self.version_requests = Counter(
            "demo_version_requests", "Inference requests by the model version that answered, and outcome",
            ["version", "outcome"], registry=r,
        )
        self.rollouts = Counter(
            "demo_rollouts", "Rollout actions: deployed, promoted, rolled_back", ["action"], registry=r
        )
        self.canary_share = Gauge("demo_canary_share", "Share of requests routed to the canary", registry=r)
        self.artifacts_refused = Counter(
            "demo_artifacts_refused",
            "Model artifacts refused at deploy or reload, by the check that failed",
            ["reason"],
            registry=r,
        )
        self.artifacts_loaded = Counter(
            "demo_artifacts_loaded",
            "Model artifacts loaded at deploy or reload, by whether they were verified",
            ["verified"],
            registry=r,
        )
        self.model_ready = Gauge("demo_model_ready", "1 when the main model is loaded", registry=r)
