"""``python -m harness.demo COMMAND``: every process of the demo system."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from harness.demo.config import MODE_DEFAULTS, MODES, ServerConfig


def add_connection_timeouts(p: argparse.ArgumentParser) -> None:
    from harness.demo.timed_http import IDLE_TIMEOUT, REQUEST_TIMEOUT

    g = p.add_argument_group("slow and idle clients")
    g.add_argument(
        "--idle-timeout",
        type=float,
        default=IDLE_TIMEOUT,
        help=f"seconds a connection may wait for its next request (default {IDLE_TIMEOUT:g})",
    )
    g.add_argument(
        "--request-timeout",
        type=float,
        default=REQUEST_TIMEOUT,
        help="seconds from a request's first byte until its headers and body are in "
        f"(default {REQUEST_TIMEOUT:g})",
    )


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="the model server (OIP v2 + KServe v1)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--feature-store", required=True, help="e.g. http://127.0.0.1:8081")
    p.add_argument(
        "--mode",
        choices=MODES,
        default="resilient",
        help="resilient: every pattern on; fragile: every pattern off",
    )
    p.add_argument("--state-dir", type=Path, required=True, help="model cache folder")
    p.add_argument("--model-name", default="fraud")
    p.add_argument("--seed", type=int, default=0, help="world seed (as the feature store's)")
    add_connection_timeouts(p)
    flag = argparse.BooleanOptionalAction
    g = p.add_argument_group("resilience patterns (defaults come from --mode)")
    g.add_argument(
        "--feature-timeout",
        type=float,
        help="seconds per feature-store attempt; 0 = no timeout (resilient 0.1, fragile 30)",
    )
    g.add_argument("--retries", type=int, help="extra attempts (resilient 1, fragile 0)")
    g.add_argument("--backoff-base", type=float, default=0.02, help="seconds (default 0.02)")
    g.add_argument("--backoff-max", type=float, default=0.2, help="seconds (default 0.2)")
    g.add_argument("--breaker", action=flag, help="circuit breaker on the feature store")
    g.add_argument(
        "--breaker-failures",
        type=int,
        default=5,
        help="consecutive failures that open it (default 5)",
    )
    g.add_argument(
        "--breaker-reset",
        type=float,
        default=2.0,
        help="seconds open before a half-open trial (default 2)",
    )
    g.add_argument("--cache", action=flag, help="feature cache")
    g.add_argument("--cache-ttl", type=float, default=5.0, help="seconds (default 5)")
    g.add_argument("--fallback", action=flag, help="request-only fallback model")
    g.add_argument(
        "--max-inflight",
        type=int,
        help="429 above this many requests in flight; 0 = off (resilient 64)",
    )
    p.add_argument(
        "--max-body-bytes",
        type=int,
        default=8 * 1024 * 1024,
        help="larger request bodies get a 413 (default 8 MiB, both modes)",
    )
    t = p.add_argument_group("defences against poisoning and evasion (defaults come from --mode)")
    t.add_argument(
        "--ingest-guard",
        action=flag,
        help="refuse ingested rows whose label the current model confidently contradicts",
    )
    t.add_argument(
        "--ingest-guard-confidence",
        type=float,
        default=0.9,
        help="model probability of another class that refuses a row (default 0.9)",
    )
    t.add_argument(
        "--promotion-gate",
        action=flag,
        help="keep the current model when a retrain scores worse on the holdout set",
    )
    t.add_argument(
        "--promotion-max-drop",
        type=float,
        default=0.01,
        help="holdout accuracy a retrain may lose and still be promoted (default 0.01)",
    )
    t.add_argument(
        "--input-guard",
        action=flag,
        help="clip features to the training range and round the discrete ones before inference",
    )
    t.add_argument(
        "--robust-model",
        action=flag,
        help="serve an adversarially trained main model (cached as model.pt; "
        "the plain one as model-plain.pt)",
    )
    t.add_argument(
        "--query-guard",
        action=flag,
        help="refuse (403) a query with 8 or more recent near-duplicate queries: the boundary "
        "probing of black-box evasion attacks (HopSkipJump, Boundary, SimBA, Square)",
    )
    r = p.add_argument_group("model rollouts (POST /admin/deploy, /admin/rollback)")
    r.add_argument("--canary-analysis", action=flag,
                   help="judge a canary against the stable version (errors, p95 latency, accuracy on "
                   "labelled shadow traffic) and roll a worse one back; off: promote blindly")
    r.add_argument("--canary-interval", type=float, default=1.0, help="seconds per analysis interval (default 1)")
    r.add_argument("--canary-promote-after", type=float, default=10.0,
                   help="seconds a canary stays healthy (or bakes, without analysis) before promotion (default 10)")
    r.add_argument(
        "--verify-artifacts",
        action=flag,
        help="check an artifact's Ed25519 signature, digest and version before a deploy loads "
        "it; refuse it (422) and keep serving otherwise",
    )
    d = p.add_argument_group("drift monitor")
    d.add_argument("--drift-window", type=int, default=500, help="rows (default 500)")
    d.add_argument("--drift-threshold", type=float, default=0.2, help="PSI (default 0.2)")
    d.add_argument("--drift-min-rows", type=int, default=250)
    d.add_argument("--drift-webhook", help="URL POSTed when the alert turns on or off")


def server_config(args: argparse.Namespace) -> ServerConfig:
    from harness.demo.feature_client import FeatureClientConfig

    defaults = MODE_DEFAULTS[args.mode]

    def pick(name: str) -> object:
        value = getattr(args, name)
        return defaults[name] if value is None else value

    timeout = float(pick("feature_timeout"))  # type: ignore[arg-type]  # pick() returns object: each option has its own type
    features = FeatureClientConfig(
        url=args.feature_store,
        timeout=timeout if timeout > 0 else None,
        retries=int(pick("retries")),  # type: ignore[call-overload]  # pick() returns object: each option has its own type
        backoff_base=args.backoff_base,
        backoff_max=args.backoff_max,
        breaker=bool(pick("breaker")),
        breaker_failures=args.breaker_failures,
        breaker_reset=args.breaker_reset,
        cache=bool(pick("cache")),
        cache_ttl=args.cache_ttl,
    )
    return ServerConfig(
        state_dir=args.state_dir,
        features=features,
        mode=args.mode,
        model_name=args.model_name,
        world_seed=args.seed,
        fallback=bool(pick("fallback")),
        max_inflight=int(pick("max_inflight")),  # type: ignore[call-overload]  # pick() returns object: each option has its own type
        max_body_bytes=args.max_body_bytes,
        ingest_guard=bool(pick("ingest_guard")),
        ingest_guard_confidence=args.ingest_guard_confidence,
        promotion_gate=bool(pick("promotion_gate")),
        promotion_max_drop=args.promotion_max_drop,
        input_guard=bool(pick("input_guard")),
        robust_model=bool(pick("robust_model")),
        query_guard=bool(pick("query_guard")),
        canary_analysis=bool(pick("canary_analysis")),
        canary_interval=args.canary_interval,
        canary_promote_after=args.canary_promote_after,
        verify_artifacts=bool(pick("verify_artifacts")),
        drift_window=args.drift_window,
        drift_threshold=args.drift_threshold,
        drift_min_rows=args.drift_min_rows,
        drift_webhook=args.drift_webhook,
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m harness.demo", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    fs = sub.add_parser("feature-store", help="the feature store (HTTP)")
    fs.add_argument("--host", default="127.0.0.1")
    fs.add_argument("--port", type=int, default=8081)
    fs.add_argument("--seed", type=int, default=0, help="world seed")
    add_connection_timeouts(fs)

    add_serve(sub)

    ex = sub.add_parser("export-data", help="write the labelled evaluation set (.npz)")
    ex.add_argument("--out", type=Path, required=True)
    ex.add_argument("--n", type=int, default=2000)
    ex.add_argument("--seed", type=int, default=1, help="sample seed (training uses 0)")
    ex.add_argument("--world-seed", type=int, default=0)

    tr = sub.add_parser("train", help="checkpointed training job that resumes after a kill")
    tr.add_argument("--state-dir", type=Path, required=True)
    tr.add_argument("--steps", type=int, required=True)
    tr.add_argument("--checkpoint-every", type=int, required=True)
    tr.add_argument("--progress", type=Path, required=True, help="JSONL progress file")
    tr.add_argument("--step-time", type=float, default=0.05, help="extra seconds per step")
    tr.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    tr.add_argument("--seed", type=int, default=0)

    ev = sub.add_parser("evaluate", help="accuracy of the cached models on an export set")
    ev.add_argument("--state-dir", type=Path, required=True)
    ev.add_argument("--n", type=int, default=2000)
    ev.add_argument("--seed", type=int, default=1)
    ev.add_argument("--world-seed", type=int, default=0)
    ev.add_argument(
        "--variant", choices=("robust", "plain"), default="robust", help="which cached models"
    )

    pb = sub.add_parser("publish", help="a model version as a signed artifact (model, manifest, signature)")
    pb.add_argument("--version", required=True, help="the version label, e.g. v2")
    pb.add_argument("--out", type=Path, required=True, help="the artifact folder to write")
    pb.add_argument(
        "--state-dir",
        type=Path,
        help="model cache and signing key (default: $AFTERSHOCK_CACHE/demo or "
        "~/.cache/aftershock/demo, the folder aftershock's runs give the server)",
    )
    pb.add_argument(
        "--variant", choices=("robust", "plain"), default="robust", help="which cached models"
    )
    pb.add_argument(
        "--train-seed",
        type=int,
        help="train a new model with this seed instead of copying the cached one",
    )

    sub.add_parser("all", help="feature store + model server; see `all --help`", add_help=False)
    sub.add_parser("llm", help="the generative demo: model backend + OpenAI gateway; see `llm --help`",
                   add_help=False)
    from harness.demo.llm.cli import add_commands

    add_commands(sub)
    return p


def export_data(out: Path, n: int, seed: int, world_seed: int) -> None:
    from harness.demo.data import sample

    if n < 1:
        raise ValueError("--n must be at least 1")
    rows = sample(n, world_seed, seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as f:  # np.savez would add ".npz" to a name without it
        np.savez(f, features=rows.features, entity_id=rows.entity_id, label=rows.label)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "all":
        from harness.demo import launcher

        return launcher.main(argv[1:])
    if argv and argv[0] == "llm":
        from harness.demo.llm.cli import launch

        return launch(argv[1:])
    from harness.demo.storage import ChecksumMismatch

    args = parser().parse_args(argv)
    try:
        if args.command == "feature-store":
            from harness.demo import feature_store

            return feature_store.run(
                args.host, args.port, args.seed, args.idle_timeout, args.request_timeout
            )
        if args.command == "serve":
            from harness.demo import server

            return server.run(
                server_config(args), args.host, args.port, args.idle_timeout, args.request_timeout
            )
        if args.command == "llm-backend":
            from harness.demo.llm import backend

            return backend.run(args.host, args.port, args.state_dir, args.canary, args.token_interval)
        if args.command == "llm-gateway":
            from harness.demo.llm import gateway
            from harness.demo.llm.cli import gateway_config

            return gateway.run(gateway_config(args, args.backend), args.host, args.port)
        if args.command == "export-data":
            export_data(args.out, args.n, args.seed, args.world_seed)
            print(f"wrote {args.n} labelled rows to {args.out}")
            return 0
        if args.command == "train":
            from harness.demo.train_job import TrainingJob

            return TrainingJob(
                args.state_dir,
                args.steps,
                args.checkpoint_every,
                args.progress,
                step_time=args.step_time,
                device=args.device,
                seed=args.seed,
            ).run()
        if args.command == "publish":
            from harness.demo.publish import harness_state_dir, publish

            done = publish(
                args.state_dir or harness_state_dir(),
                args.out,
                args.version,
                args.variant,
                args.train_seed,
            )
            print(f"published {done['version']} ({done['variant']} models) in {done['out']}")
            return 0
        if args.command == "evaluate":
            from harness.demo.data import sample
            from harness.demo.model import accuracy
            from harness.demo.model_cache import load_models

            try:
                models = load_models(args.state_dir, args.variant)
            except FileNotFoundError:
                raise ValueError(
                    f"no cached model in {args.state_dir}; start `serve` with this "
                    "--state-dir once to train one"
                ) from None
            main_acc, fallback_acc = accuracy(
                models,
                sample(args.n, args.world_seed, args.seed),
                args.world_seed,
            )
            print(f"main model accuracy {main_acc:.4f}, fallback accuracy {fallback_acc:.4f}")
            return 0
    except (ValueError, OSError, ChecksumMismatch) as exc:
        print(f"harness.demo {args.command}: {exc}", file=sys.stderr)
        return 2
    return 2
