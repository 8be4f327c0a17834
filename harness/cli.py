"""The `aftershock` command: a thin face over the runner (the pytest plugin is the other).

Exit codes: 0 all SLOs held; 1 an SLO failed; 2 bad input; 3 aborted by a stop
condition; 4 the harness itself failed; 130 interrupted.
"""

from __future__ import annotations

import json
import signal
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
    from harness.runner import EXIT_BAD_INPUT, EXIT_INTERNAL, RunOptions, Runner
    from harness.scenario.loader import load_scenario

    try:
        loaded = load_scenario(scenario, allow_hosts=allow_host)
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    opts = RunOptions(quick=quick, output_dir=output, toxiproxy_url=toxiproxy_url, live=True)
    runner = Runner(loaded, opts)
    err.print(f"running {loaded.scenario.name}{' (quick)' if quick else ''} → {runner.run_dir}", highlight=False)
    try:
        result = runner.run()
    except KeyboardInterrupt:  # Ctrl-C before the run set its handlers, or after it removed them
        err.print(f"interrupted; run folder: {runner.run_dir}", highlight=False, soft_wrap=True)
        raise typer.Exit(130) from None
    except UserError as exc:  # found before anything started (an unsafe ledger key, say): the user's to fix
        err.print(f"error: {exc}; run folder: {runner.run_dir}", highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    except Exception as exc:  # noqa: BLE001 (a harness bug: one line and the run folder, never exit 1)
        err.print(f"internal error: {type(exc).__name__}: {exc}; run folder: {runner.run_dir}",
                  highlight=False, markup=False, soft_wrap=True)
        raise typer.Exit(EXIT_INTERNAL) from None
    if _as_program:  # all is undone and written: a late Ctrl-C must not turn the outcome into a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _print_verdicts(result.result)
    for what in result.result.get("not_undone") or []:
        out.print(f"NOT UNDONE: {what}", highlight=False, markup=False, soft_wrap=True)
    if result.message:
        err.print(result.message, highlight=False, markup=False, soft_wrap=True)
    report = result.run_dir / "report.html"
    err.print(f"report: {report}" if report.is_file() else f"run folder: {result.run_dir}",
              highlight=False, soft_wrap=True)
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
def schema(
    markdown: bool = typer.Option(False, "--markdown", help="print every fault and attack type's parameters as Markdown tables"),
) -> None:
    """Print the scenario JSON Schema (for editor completion and checks)."""
    if markdown:
        from harness.scenario.param_tables import tables

        sys.stdout.write("\n\n".join(tables().values()) + "\n")
        return
    from harness.scenario.schema import scenario_json_schema

    sys.stdout.write(json.dumps(scenario_json_schema(), indent=2) + "\n")


@app.command()
def cleanup(
    reports: Path = typer.Option(Path("reports"), "--reports", help="the reports folder whose .ledger to replay"),
    allow_host: list[str] = typer.Option([], "--allow-host",
                                         help="a non-loopback host an undo may contact, besides the run's own (repeatable)"),
) -> None:
    """Undo what a killed run left behind (faults, processes), from its undo ledger.

    Only entries this user's aftershock signed for that run are acted on; the others,
    and addresses outside loopback and the allowed hosts, are reported and left alone."""
    from harness.ledger import replay, stale_ledgers

    stuck = 0
    try:
        leftovers = stale_ledgers(reports / ".ledger")
        if not leftovers:
            out.print("nothing to clean up")
            return
        for left in leftovers:
            out.print(f"{left.path}:", highlight=False)
            for line in replay(left, allow_host):
                out.print(f"  {line}", highlight=False)
            if not left.closed:
                stuck += 1
                err.print(f"  some undos failed or were left alone: they stay in {left.path}; "
                          "fix the cause and run cleanup again", highlight=False, markup=False)
    except UserError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False)
        raise typer.Exit(2) from None
    if stuck:
        raise typer.Exit(4)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo(ctx: typer.Context) -> None:
    """Start the bundled demo ML system (feature store + model server) and print its URLs."""
    from harness.extras import require_extra

    require_extra("torch", "ml", "aftershock demo")  # a UserError: main() prints it, exit 2
    from harness.demo.launcher import main as demo_main

    raise typer.Exit(demo_main(list(ctx.args)))


@app.command()
def proxy(
    host: str = typer.Option("127.0.0.1", "--host"),
    port: int = typer.Option(8474, "--port"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON list of proxies to create at start"),
    seed: Optional[int] = typer.Option(None, "--seed", help="seed for reproducible jitter and toxicity"),
    allow_host: list[str] = typer.Option([], "--allow-host",
                                         help="a non-loopback host proxies may listen on or relay to (repeatable)"),
    allow_privileged_ports: bool = typer.Option(False, "--allow-privileged-ports", help="allow listen ports below 1024"),
) -> None:
    """Run the embedded Toxiproxy-compatible proxy standalone, like toxiproxy-server.

    Listen and upstream addresses are loopback only, and listen ports 1024 and up,
    unless --allow-host / --allow-privileged-ports say otherwise."""
    import os

    # exec (same process id) into the lean `python -m faults.proxy`: the proxy process then
    # holds none of the CLI's libraries (idle RSS about half)
    argv = [sys.executable, "-m", "faults.proxy", "--host", host, "--port", str(port)]
    argv += ["--config", str(config)] if config else []
    argv += ["--seed", str(seed)] if seed is not None else []
    argv += [arg for h in allow_host for arg in ("--allow-host", h)]
    argv += ["--allow-privileged-ports"] if allow_privileged_ports else []
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, argv)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def worker(ctx: typer.Context) -> None:
    """Run a Locust worker for a distributed run (aftershock worker --master HOST:PORT)."""
    from harness.load.worker import main as worker_main

    raise typer.Exit(worker_main(list(ctx.args)))


# --- reports, compare, game days, schedules (harness/report, compare.py, gameday/, schedule/) ---


def _user_error(exc: Exception) -> None:
    """A user error on one unwrapped line per problem (file:line:col stays greppable)."""
    err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def report(run_dir: Path = typer.Argument(..., help="a run folder, e.g. reports/<scenario>/<timestamp>")) -> None:
    """Render report.html and summary.md again from a run's journal (works for crashed runs too)."""
    from harness.report.replay import RunDirError
    from harness.report.writers import render_run

    try:
        data = render_run(run_dir)
    except RunDirError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    out.print(f"{data['scenario']}: {data['status']} → {run_dir / 'report.html'}", highlight=False)


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="baseline result.json, run folder, or folder of runs (newest)"),
    current: Path = typer.Argument(..., help="current result.json, run folder, or folder of runs (newest)"),
    tolerance: list[str] = typer.Option([], "--tolerance", "-t",
                                        help="KEY=VALUE, KEY an SLI, SLO name or class: p95(latency)=15%, accuracy=0.02, latency=10ms (repeatable)"),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="also write the Markdown table to this file"),
    confidence: float = typer.Option(0.99, "--confidence", min=0.5, max=0.999,
                                     help="confidence of the shift intervals (default 0.99)"),
) -> None:
    """Per-SLO verdicts and margins, per-SLI shifts with confidence intervals from the per-window
    samples; exit 1 on a regression (a change for the worse beyond tolerance, with confidence)."""
    from harness.compare import Tolerances, compare as compare_runs, load_result, markdown, parse_tolerance

    try:
        tols = Tolerances(dict(parse_tolerance(t) for t in tolerance))
        cmp = compare_runs(load_result(baseline), load_result(current), tols, str(baseline), str(current),
                           confidence)
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    text = markdown(cmp)
    sys.stdout.write(text + "\n")
    if markdown_out:
        markdown_out.write_text(text + "\n", encoding="utf-8")
    raise typer.Exit(1 if cmp.regressions else 0)


@app.command()
def gameday(
    plan: Path = typer.Argument(..., help="game-day plan YAML"),
    unattended: bool = typer.Option(False, "--unattended", help="don't prompt at checkpoints (CI, schedules)"),
    quick: bool = typer.Option(False, "--quick", help="run every scenario in quick mode (x0.25)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="reports folder (default: the plan's output.dir)"),
) -> None:
    """Run a game day: ordered scenarios with hypotheses, roles, runbook checkpoints and observations."""
    from harness.gameday import GameDay, load_plan

    try:
        gd = GameDay(load_plan(plan), unattended=unattended, quick=quick, output_dir=output, console=err)
        outcome = gd.run()
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    err.print(f"game-day report: {outcome.report_dir / 'gameday.html'}", highlight=False)
    raise typer.Exit(outcome.exit_code)


@app.command()
def schedule(
    plan: Path = typer.Argument(..., help="schedule plan YAML"),
    export: Optional[str] = typer.Option(None, "--export", help="print the equivalent: crontab | kubernetes | github"),
    job: Optional[str] = typer.Option(None, "--job", help="run this one job now (what an exported schedule calls)"),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", help="stop after this many runs"),
    until: Optional[str] = typer.Option(None, "--until", help="stop at this time: a duration from now (2h) or ISO time"),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="seconds to wait for a running job to finish"),
) -> None:
    """Run scenarios and game days on cron schedules, one at a time, with history under reports/."""
    from harness.schedule import Scheduler, export_plan, load_schedule, parse_until

    try:
        sched = load_schedule(plan)
        if export:
            sys.stdout.write(export_plan(sched, export, plan))
            return
        scheduler = Scheduler(sched, lock_timeout=lock_timeout, console=err)
        if job:
            entry = scheduler.run_job_now(job)
            raise typer.Exit(0 if entry["status"] in ("passed", "skipped") else 1)
        scheduler.loop(max_runs=max_runs, until=parse_until(until) if until else None)
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None


@app.command("drift-test", context_settings={"allow_extra_args": True, "ignore_unknown_options": True,
                                             "help_option_names": []})
def drift_test(ctx: typer.Context) -> None:
    """Accuracy under each corruption x severity 1..5, no load (RobustBench style); --help for options."""
    from harness.drift_test import main as drift_test_main

    raise typer.Exit(drift_test_main(list(ctx.args)))


# --- probe-target / init (harness/probe_target.py) ------------------------------------


def _protocol_options(option: list[str]) -> dict:
    """`--option key=value` pairs (values read as YAML: numbers, booleans, lists)."""
    import yaml

    out = {}
    for item in option:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--option {item!r}: write key=value, e.g. --option model_version=meta.version")
        out[key.strip()] = yaml.safe_load(value) if value else ""
    return out


def _print_probe(report) -> None:
    out = Console()
    table = Table(title=f"{report.protocol} at {report.url} (model {report.model})", show_header=False)
    for what, check in (("liveness", report.live), ("readiness", report.ready)):
        table.add_row(what, f"GET {check.path} -> {check.status or check.error}")
    if isinstance(report.metadata, dict):
        for key in ("name", "versions", "platform", "inputs", "outputs"):
            if report.metadata.get(key) not in (None, [], ""):
                table.add_row(f"metadata {key}", json.dumps(report.metadata[key])[:200])
    elif report.metadata is not None:
        table.add_row("metadata", json.dumps(report.metadata)[:200])
    table.add_row("batch", report.batch_source or "-")
    for name, (shape, dtype) in report.inputs.items():
        table.add_row(f"input {name}", f"shape {shape}, dtype {dtype}")
    if report.status is not None:
        table.add_row("inference", f"HTTP {report.status} in {report.latency_ms:.1f} ms")
    if report.predictions is not None:
        table.add_row("predictions", json.dumps(report.predictions)[:200])
        table.add_row("classes seen", ", ".join(map(str, report.classes)))
    table.add_row("model version", str(report.model_version) if report.model_version is not None else "not reported")
    table.add_row("fallback flag", str(report.fallback) if report.fallback is not None else "not reported")
    if report.accuracy is not None:
        table.add_row("accuracy on the batch", f"{report.accuracy:.0%}")
    out.print(table)
    for problem in report.problems:
        err.print(f"[yellow]problem:[/yellow] {problem}")


@app.command("probe-target")
def probe_target_cmd(
    url: str = typer.Argument(..., help="base URL of the model server, e.g. http://127.0.0.1:8080"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="oip-v2, kserve-v1, torchserve, bentoml, seldon-v1, http-json"),
    model: str = typer.Option("model", "--model", "-m", help="model name (in the URL paths that have one)"),
    data: Optional[Path] = typer.Option(None, "--data", help="rows to send (.npz/.csv/.jsonl/.parquet); default: from metadata"),
    option: list[str] = typer.Option([], "--option", "-o", help="adapter option key=value (repeatable)"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="allow a non-loopback host (repeatable)"),
) -> None:
    """Check readiness, send one batch, and print what aftershock understood of the answer."""
    from harness.probe_target import probe_target

    try:
        report = probe_target(url, protocol, model, dataset=data, options=_protocol_options(option),
                              allowed_hosts=allow_host)
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    _print_probe(report)
    raise typer.Exit(0 if report.ok else 1)


@app.command()
def init(
    url: str = typer.Argument(..., help="base URL of the running model server"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="the server's protocol (see probe-target)"),
    model: str = typer.Option("model", "--model", "-m", help="model name"),
    data: Path = typer.Option(..., "--data", help="the rows the scenario's load sends (labels in a `label` column)"),
    out: Path = typer.Option(Path("scenario.yaml"), "--out", help="scenario file to write"),
    name: Optional[str] = typer.Option(None, "--name", help="scenario name (default: the file's stem)"),
    force: bool = typer.Option(False, "--force", help="overwrite --out if it exists"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="allow a non-loopback host (repeatable)"),
) -> None:
    """Probe the server, then write a starter scenario for it."""
    from harness.probe_target import probe_target, write_starter

    try:
        report = probe_target(url, protocol, model, dataset=data, allowed_hosts=allow_host)
        _print_probe(report)
        if not report.ok:
            raise UserError("the probe found problems (above): fix them before writing a scenario")
        written = write_starter(report, out, name, data, force)
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    err.print(f"wrote {written}: run it with `aftershock run {written}`")



_as_program = False  # main() runs: the process is ours (not a test's CliRunner) and ends with the command


def main() -> None:
    global _as_program
    _as_program = True
    try:
        app()
    except UserError as exc:
        _user_error(exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
