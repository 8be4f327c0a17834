"""The `aftershock` command: a thin face over the runner (the pytest plugin is the other).

Exit codes: 0 all SLOs held; 1 an SLO failed; 2 bad input; 3 aborted by a stop
condition; 4 the harness itself failed; 130 interrupted.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from harness.fault import UserError

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Chaos and resilience testing for ML systems.")
out = Console()
err = Console(stderr=True)


def _load(path: Path):
    from harness.scenario.loader import load_scenario

    return load_scenario(path)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="scenario YAML file"),
    quick: bool = typer.Option(False, "--quick", help="scale every duration down (x0.25) for CI"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="reports folder (default: the scenario's output.dir)"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="allow a non-loopback host (repeatable)"),
    toxiproxy_url: Optional[str] = typer.Option(None, "--toxiproxy-url", help="use this Toxiproxy server instead of the embedded proxy"),
) -> None:
    """Run a scenario and report every SLO's verdict."""
    from harness.runner import EXIT_BAD_INPUT, RunOptions, Runner

    try:
        loaded = _load(scenario)
        if allow_host:
            loaded.scenario.safety.allowed_hosts.extend(allow_host)
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    opts = RunOptions(quick=quick, output_dir=output, allow_hosts=list(allow_host), toxiproxy_url=toxiproxy_url)
    runner = Runner(loaded, opts)
    err.print(f"running {loaded.scenario.name}{' (quick)' if quick else ''} → {runner.run_dir}", highlight=False)
    result = runner.run()
    _print_verdicts(result.result)
    if result.message:
        err.print(result.message, highlight=False)
    err.print(f"report: {result.run_dir / 'report.html'}", highlight=False)
    raise typer.Exit(result.exit_code)


def _print_verdicts(result: dict) -> None:
    from harness.report.writers import fmt_measured, verdict_word

    table = Table(title=f"{result['scenario']}: {result['status'].upper()}")
    for col in ("SLO", "expect", "measured", "verdict"):
        table.add_column(col)
    colors = {"PASS": "green", "FAIL": "red", "NO DATA": "yellow"}
    for v in result["slos"]:
        word = verdict_word(v)
        table.add_row(v["name"], v["expect"], fmt_measured(v), f"[{colors[word]}]{word}[/]")
    out.print(table)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="scenario files")) -> None:
    """Check scenario files without running them."""
    bad = 0
    for f in files:
        try:
            s = _load(f).scenario
            out.print(f"{f}: ok ({s.name}: {len(s.timeline.faults)} faults, {len(s.slos)} SLOs)", highlight=False)
        except UserError as exc:
            bad += 1
            err.print(str(exc), highlight=False, markup=False)
    raise typer.Exit(2 if bad else 0)


@app.command()
def schema() -> None:
    """Print the scenario JSON Schema (for editor completion and checks)."""
    from harness.scenario.schema import scenario_json_schema

    sys.stdout.write(json.dumps(scenario_json_schema(), indent=2) + "\n")


@app.command()
def cleanup(
    reports: Path = typer.Option(Path("reports"), "--reports", help="the reports folder whose .ledger to replay"),
) -> None:
    """Undo what a killed run left behind (faults, processes), from its undo ledger."""
    from harness.ledger import replay, stale_ledgers

    leftovers = stale_ledgers(reports / ".ledger")
    if not leftovers:
        out.print("nothing to clean up")
        return
    for left in leftovers:
        out.print(f"{left.path}:", highlight=False)
        for line in replay(left):
            out.print(f"  {line}", highlight=False)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo(ctx: typer.Context) -> None:
    """Start the bundled demo ML system (feature store + model server) and print its URLs."""
    from harness.demo.launcher import main as demo_main

    raise typer.Exit(demo_main(list(ctx.args)))


@app.command()
def proxy(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8474, "--port"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON list of proxies to create at start"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed for reproducible jitter and toxicity"),
) -> None:
    """Run the embedded Toxiproxy-compatible proxy standalone, like toxiproxy-server."""
    from faults.proxy.server import serve

    try:
        serve(host, port, str(config) if config else None, seed)
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context) -> None:
    """Run a Locust worker for a distributed run (aftershock worker --master HOST:PORT)."""
    from harness.load.worker import main as worker_main

    raise typer.Exit(worker_main(list(ctx.args)))


def main() -> None:
    try:
        app()
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        sys.exit(2)


if __name__ == "__main__":
    main()
