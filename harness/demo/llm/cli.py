"""The generative demo's commands: ``llm`` (backend + gateway), ``llm-backend``, ``llm-gateway``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.demo.llm.config import DEFAULT_CANARY, MODE_DEFAULTS, GatewayConfig

MODES = tuple(MODE_DEFAULTS)
TOKEN_INTERVAL = 0.01


def add_commands(sub: argparse._SubParsersAction) -> None:
    b = sub.add_parser("llm-backend", help="the generative model backend (internal token stream)")
    b.add_argument("--host", default="127.0.0.1")
    b.add_argument("--port", type=int, required=True)
    b.add_argument("--state-dir", type=Path, required=True, help="weight cache folder")
    b.add_argument("--canary", default=DEFAULT_CANARY, help="the secret in the system prompt")
    b.add_argument("--token-interval", type=float, default=TOKEN_INTERVAL,
                   help=f"least seconds per token (default {TOKEN_INTERVAL:g})")

    g = sub.add_parser("llm-gateway", help="the OpenAI-compatible gateway in front of llm-backend")
    g.add_argument("--host", default="127.0.0.1")
    g.add_argument("--port", type=int, required=True)
    g.add_argument("--backend", required=True, help="the backend's URL, e.g. http://127.0.0.1:9001")
    add_gateway_flags(g)


def add_gateway_flags(g: argparse.ArgumentParser) -> None:
    flag = argparse.BooleanOptionalAction
    g.add_argument("--mode", choices=MODES, default="resilient")
    g.add_argument("--state-dir", type=Path, required=True, help="weight cache folder (the fallback's model)")
    g.add_argument("--canary", default=DEFAULT_CANARY, help="the secret in the system prompt")
    p = g.add_argument_group("resilience patterns (defaults come from --mode)")
    p.add_argument("--guardrail", action=flag, help="input screen and output redaction (resilient on)")
    p.add_argument("--max-queue", type=int, help="waiting requests before 429s; 0 = unbounded (resilient 16)")
    p.add_argument("--max-concurrent", type=int, default=8, help="generations at once (default 8)")
    p.add_argument("--first-token-timeout", type=float, help="seconds; 0 = none (resilient 0.5)")
    p.add_argument("--token-timeout", type=float, help="seconds between tokens; 0 = none (resilient 0.3)")
    p.add_argument("--fallback", action=flag, help="answer from a local copy of the model when the backend fails")
    p.add_argument("--breaker-reset", type=float, default=2.0, help="seconds of local answers after a failure")
    p.add_argument("--context-limit", type=int, default=1024, help="tokens for prompt + answer (default 1024)")
    p.add_argument("--default-max-tokens", type=int, default=64)


def gateway_config(args: argparse.Namespace, backend_url: str) -> GatewayConfig:
    defaults = MODE_DEFAULTS[args.mode]

    def pick(name: str) -> object:
        value = getattr(args, name)
        return defaults[name] if value is None else value

    return GatewayConfig(
        mode=args.mode, backend_url=backend_url, state_dir=args.state_dir, canary=args.canary,
        guardrail=bool(pick("guardrail")), max_concurrent=args.max_concurrent,
        max_queue=int(pick("max_queue")),  # type: ignore[call-overload]  # pick() returns object
        first_token_timeout=float(pick("first_token_timeout")),  # type: ignore[arg-type]
        token_timeout=float(pick("token_timeout")),  # type: ignore[arg-type]
        fallback=bool(pick("fallback")), breaker_reset=args.breaker_reset, context_limit=args.context_limit,
        default_max_tokens=args.default_max_tokens, token_interval=TOKEN_INTERVAL,
    )


def launcher_parser() -> argparse.ArgumentParser:
    from harness.demo.launcher import default_state_dir

    p = argparse.ArgumentParser(
        prog="python -m harness.demo llm",
        description="Start the generative demo (model backend + OpenAI gateway); Ctrl-C stops both. Flags not "
        "listed here go to the gateway (`python -m harness.demo llm-gateway --help`).")
    p.add_argument("--mode", choices=MODES, default="resilient")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000, help="gateway port (default 8000)")
    p.add_argument("--backend-port", type=int, default=0, help="default: any free port")
    p.add_argument("--state-dir", type=Path, default=default_state_dir(), help="weight cache folder")
    p.add_argument("--canary", default=DEFAULT_CANARY, help="the secret in the system prompt")
    p.add_argument("--ready-timeout", type=float, default=300.0, help="the first start trains the model")
    return p


def launch(argv: list[str]) -> int:
    """Backend, then gateway, each in its own process group; prints the URLs."""
    from harness.demo.launcher import free_port, supervise

    args, gateway_flags = launcher_parser().parse_known_args(argv)
    backend_port = args.backend_port or free_port(args.host)
    backend_url, gateway_url = f"http://{args.host}:{backend_port}", f"http://{args.host}:{args.port}"
    python = [sys.executable, "-m", "harness.demo"]
    backend = [*python, "llm-backend", "--host", args.host, "--port", str(backend_port),
               "--state-dir", str(args.state_dir), "--canary", args.canary]
    gateway = [*python, "llm-gateway", "--host", args.host, "--port", str(args.port), "--backend", backend_url,
               "--state-dir", str(args.state_dir), "--canary", args.canary, "--mode", args.mode, *gateway_flags]

    def banner(pids: list[int]) -> str:
        return (f"aftershock llm demo ({args.mode}) is up:\n"
                f"  model backend   {backend_url}   (pid {pids[0]})\n"
                f"  gateway         {gateway_url}   (pid {pids[1]})\n"
                f"  chat            {gateway_url}/v1/chat/completions   (model aftershock-tiny)\n"
                f"  metrics         {gateway_url}/metrics\n"
                f"Press Ctrl-C to stop.")

    return supervise([(backend, f"{backend_url}/health"), (gateway, f"{gateway_url}/health")], banner,
                     args.ready_timeout)
