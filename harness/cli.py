"""The `aftershock` command: a thin face over the runner (the pytest plugin is the other).

Exit codes: 0 all SLOs held; 1 an SLO failed; 2 bad input; 3 aborted by a stop
condition; 4 the harness itself failed; 130 interrupted.
"""

from __future__ import annotations

import json
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from harness.engine.console import make_console
from harness.core.fault import UserError

if TYPE_CHECKING:
    from harness.engine.scenario.loader import LoadedScenario

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Chaos and resilience testing for ML systems.")
out = make_console()
err = make_console(stderr=True)


def _load(path: Path):
    from harness.engine.scenario.loader import load_scenario

    return load_scenario(path)


@app.command()
def run(
    scenario: Path = typer.Argument(..., help="Scenario YAML file"),
    quick: bool = typer.Option(False, "--quick", help="Scale every duration down (x0.25) for CI"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Reports folder (default: the scenario's output.dir)"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Allow a non-loopback host (repeatable)"),
    toxiproxy_url: Optional[str] = typer.Option(None, "--toxiproxy-url", help="Use this Toxiproxy server instead of the embedded proxy"),
    metrics_port: Optional[str] = typer.Option(None, "--metrics-port", help="Serve Prometheus metrics on [HOST:]PORT (127.0.0.1 by default)"),
    pushgateway: Optional[str] = typer.Option(None, "--pushgateway", help="Push the final verdicts to this Prometheus Pushgateway URL"),
    otlp_endpoint: Optional[str] = typer.Option(None, "--otlp-endpoint", envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
                                                help="Send the run's trace and SLI metrics to this OTLP/HTTP endpoint"),
    web: bool = typer.Option(False, "--web", help="Serve a live dashboard of the run (charts, SLOs, a Stop button)"),
    web_port: int = typer.Option(8089, "--web-port", help="The dashboard's port (0: a free one)"),
    web_host: str = typer.Option("127.0.0.1", "--web-host", help="The dashboard's address (loopback unless --allow-host names it)"),
) -> None:
    """Run a scenario and report every SLO's verdict."""
    from harness.engine.runner import EXIT_BAD_INPUT, EXIT_INTERNAL, Runner, RunOptions
    from harness.engine.scenario.loader import load_scenario

    try:
        loaded = load_scenario(scenario, allow_hosts=allow_host)
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        _annotate_problems(exc)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    opts = RunOptions(quick=quick, output_dir=output, toxiproxy_url=toxiproxy_url, live=True)
    runner = Runner(loaded, opts)
    exporters = _start_exporters(runner, allow_host, metrics_port, pushgateway, otlp_endpoint)
    dashboard = None
    if web:
        try:
            dashboard = _live_dashboard(runner, web_host, web_port, allow_host)
        except UserError as exc:
            err.print(f"error: {exc}", markup=False, highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
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
    finally:
        if dashboard is not None:
            dashboard.stop()
    if _as_program:  # all is undone and written: a late Ctrl-C must not turn the outcome into a traceback
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    export_problems = exporters.close() if exporters else []
    _print_verdicts(result.result)
    for what in result.result.get("not_undone") or []:
        out.print(f"NOT UNDONE: {what}", highlight=False, markup=False, soft_wrap=True)
    if result.message:
        err.print(result.message, highlight=False, markup=False, soft_wrap=True)
    report = result.run_dir / "report.html"
    _print_failures(result.result)
    err.print(f"report: {report}" if report.is_file() else f"run folder: {result.run_dir}",
              highlight=False, soft_wrap=True)
    _github_outputs(result.result, loaded, report if report.is_file() else result.run_dir)
    for problem in export_problems:  # the verdicts stand; a run that passed still fails the job
        err.print(f"error: {problem}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_INTERNAL if export_problems and result.exit_code == 0 else result.exit_code)


def _start_exporters(runner, allow_host: list[str], metrics_port: Optional[str], pushgateway: Optional[str],
                     otlp_endpoint: Optional[str]):
    """The Prometheus / OTLP exporters asked for (harness.export), listening to the run's journal."""
    if metrics_port is None and pushgateway is None and not otlp_endpoint:
        return None
    from harness.export import RunExporters
    from harness.engine.runner import EXIT_BAD_INPUT

    try:
        exporters = RunExporters.start(runner.scenario, runner.loaded.slos, allow_host, metrics_port,
                                       pushgateway, otlp_endpoint or None)
    except UserError as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(EXIT_BAD_INPUT) from None
    runner.options.listeners.extend(exporters.listeners)
    return exporters


def _print_failures(result: dict) -> None:
    """Each SLO that did not hold, once, with the failure kinds seen in its scope."""
    from harness.reports.failures import slo_failure

    for v in result.get("slos") or []:
        if v.get("passed") is not True:
            err.print(f"{'FAIL' if v['passed'] is False else 'NO DATA'} {v['name']}: {slo_failure(v, result)}",
                      highlight=False, markup=False, soft_wrap=True)


def _github_outputs(result: dict, loaded: LoadedScenario, report: Path) -> None:
    """In a GitHub Actions job: `::error` annotations on the failed SLOs' lines, and summary.md
    appended to the job summary."""
    from harness.workflows.ci_output import append_step_summary, github_actions, write_annotations

    if not github_actions():
        return
    write_annotations(sys.stdout, result, loaded.path, loaded.slo_lines, report)
    append_step_summary(report.parent / "summary.md" if report.is_file() else report / "summary.md")


def _live_dashboard(runner, host: str, port: int, allow_host: list[str]):
    """Start the web dashboard of `runner`'s run, fed by its journal, its Stop button wired to
    `runner.request_stop`; prints the URL."""
    from harness.dashboard.feed import SloSpec
    from harness.dashboard.server import STOPPED_FROM_DASHBOARD, Dashboard

    s = runner.scenario
    specs = [SloSpec(slo.name, slo.expect, parsed) for slo, parsed in zip(s.slos, runner.loaded.slos)]
    dashboard = Dashboard(host, port, on_stop=lambda: runner.request_stop(STOPPED_FROM_DASHBOARD), slos=specs,
                          settings=s.settings, planned_faults=len(s.timeline.faults),
                          allowed_hosts=[*allow_host, *s.safety.allowed_hosts], title=f"aftershock: {s.name}")
    runner.options.listeners.append(dashboard.feed.on_event)
    url = dashboard.start()
    err.print(f"dashboard: {url}", highlight=False, soft_wrap=True)
    return dashboard


def _print_verdicts(result: dict) -> None:
    from harness.reports.writers import fmt_measured, verdict_word

    table = Table(title=f"{result['scenario']}: {result['status'].upper()}")
    for col in ("SLO", "expect", "measured", "verdict"):
        table.add_column(col)
    colors = {"PASS": "green", "FAIL": "red", "NO DATA": "yellow"}
    for v in result["slos"]:
        word = verdict_word(v)
        table.add_row(v["name"], v["expect"], fmt_measured(v), f"[{colors[word]}]{word}[/]")
    out.print(table)


@app.command()
def validate(files: list[Path] = typer.Argument(..., help="Scenario files")) -> None:
    """Check scenario files without running them."""
    bad = 0
    for f in files:
        try:
            s = _load(f).scenario
            out.print(f"{f}: ok ({s.name}: {len(s.timeline.faults)} faults, {len(s.slos)} SLOs)", highlight=False)
        except UserError as exc:
            bad += 1
            err.print(str(exc), highlight=False, markup=False)
            _annotate_problems(exc)
    raise typer.Exit(2 if bad else 0)


def _annotate_problems(exc: UserError) -> None:
    """In a GitHub Actions job, each located problem of a scenario is an `::error` on its line and column."""
    from harness.workflows.ci_output import github_actions, problem_annotation

    if github_actions():
        for problem in getattr(exc, "problems", []):
            sys.stdout.write(problem_annotation(problem.file, problem.line, problem.col, problem.path, problem.message)
                             + "\n")


@app.command()
def schema(
    markdown: bool = typer.Option(False, "--markdown", help="Print every fault and attack type's parameters as Markdown tables"),
) -> None:
    """Print the scenario JSON Schema (for editor completion and checks)."""
    if markdown:
        from harness.engine.scenario.param_tables import tables

        sys.stdout.write("\n\n".join(tables().values()) + "\n")
        return
    from harness.engine.scenario.schema import scenario_json_schema

    sys.stdout.write(json.dumps(scenario_json_schema(), indent=2) + "\n")


@app.command()
def cleanup(
    reports: Path = typer.Option(Path("reports"), "--reports", help="The reports folder whose .ledger to replay"),
    allow_host: list[str] = typer.Option([], "--allow-host",
                                         help="A non-loopback host an undo may contact, besides the run's own (repeatable)"),
) -> None:
    """Undo what a killed run left behind (faults, processes), from its undo ledger.

    Only entries this user's aftershock signed for that run are acted on; the others,
    and addresses outside loopback and the allowed hosts, are reported and left alone."""
    from harness.engine.ledger import replay, stale_ledgers

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


class DemoSystem(str, Enum):
    fraud = "fraud"
    llm = "llm"


class DemoMode(str, Enum):
    resilient = "resilient"
    fragile = "fragile"


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def demo(
    ctx: typer.Context,
    system: DemoSystem = typer.Argument(DemoSystem.fraud, help="Which system: fraud (feature store + model server) or llm (model backend + OpenAI gateway)"),
    mode: DemoMode = typer.Option(DemoMode.resilient, "--mode", help="Resilience patterns on (resilient) or off (fragile)"),
    host: str = typer.Option("127.0.0.1", "--host", help="Address both servers listen on"),
    port: int = typer.Option(8080, "--port", help="Model server port"),
    feature_store_port: int = typer.Option(0, "--feature-store-port", help="Feature store port (0: any free port)"),
    state_dir: Optional[Path] = typer.Option(None, "--state-dir", help="Model cache folder (default: ~/.cache/aftershock/demo)"),
    seed: int = typer.Option(0, "--seed", help="World seed of the synthetic data"),
    ready_timeout: float = typer.Option(120.0, "--ready-timeout", help="Seconds to wait for both servers"),
) -> None:
    """Start a bundled demo ML system and print its URLs.

    `fraud` is a feature store and a model server; `llm` a generative model backend and
    an OpenAI-compatible gateway in front of it.

    Other flags go to the model server (`python -m harness.demo serve --help` lists them),
    or to the llm gateway (`python -m harness.demo llm-gateway --help`)."""
    from harness.core.extras import require_extra

    require_extra("torch", "ml", "aftershock demo")  # a UserError: main() prints it, exit 2
    if system is DemoSystem.llm:
        from harness.demo.llm.cli import launch

        argv = ["--mode", mode.value, "--host", host, "--port", str(port), "--ready-timeout", str(ready_timeout)]
        if state_dir is not None:
            argv += ["--state-dir", str(state_dir)]
        raise typer.Exit(launch(argv + list(ctx.args)))
    from harness.demo.launcher import main as demo_main

    argv = ["--mode", mode.value, "--host", host, "--port", str(port), "--feature-store-port", str(feature_store_port),
            "--seed", str(seed), "--ready-timeout", str(ready_timeout)]
    if state_dir is not None:
        argv += ["--state-dir", str(state_dir)]
    raise typer.Exit(demo_main(argv + list(ctx.args)))


@app.command()
def proxy(
    host: str = typer.Option("127.0.0.1", "--host", help="Address the proxy's HTTP API listens on"),
    port: int = typer.Option(8474, "--port", help="Port of the HTTP API (Toxiproxy's is 8474)"),
    config: Optional[Path] = typer.Option(None, "--config", help="JSON list of proxies to create at start"),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed for reproducible jitter and toxicity"),
    allow_host: list[str] = typer.Option([], "--allow-host",
                                         help="A non-loopback host proxies may listen on or relay to (repeatable)"),
    allow_privileged_ports: bool = typer.Option(False, "--allow-privileged-ports", help="Allow listen ports below 1024"),
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


@app.command()
def worker(
    master: str = typer.Option(..., "--master", metavar="<host:port>", help="The run's master, HOST:PORT"),
    locustfile: Optional[Path] = typer.Option(None, "--locustfile", help="Your own locustfile (the same one the master runs)"),
    processes: int = typer.Option(1, "--processes", help="Worker processes on this machine"),
) -> None:
    """Run a Locust worker for a distributed run (aftershock worker --master HOST:PORT)."""
    from harness.engine.load.worker import main as worker_main

    argv = ["--master", master, "--processes", str(processes)]
    raise typer.Exit(worker_main(argv + (["--locustfile", str(locustfile)] if locustfile else [])))


# --- reports, compare, game days, schedules (harness/reports, harness/workflows) ---


def _user_error(exc: Exception) -> None:
    """A user error on one unwrapped line per problem (file:line:col stays greppable)."""
    err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A run folder, e.g. reports/<scenario>/<timestamp>"),
    serve: bool = typer.Option(False, "--serve", help="Show the run in the live dashboard's page instead (until Ctrl-C)"),
    web_port: int = typer.Option(8089, "--web-port", help="The page's port with --serve (0: a free one)"),
    web_host: str = typer.Option("127.0.0.1", "--web-host", help="The page's address (loopback unless --allow-host names it)"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Allow a non-loopback --web-host (repeatable)"),
) -> None:
    """Render report.html and summary.md again from a run's journal (works for crashed runs too)."""
    from harness.engine.record.replay import RunDirError
    from harness.reports.writers import render_run

    if serve:
        _serve_run(run_dir, web_host, web_port, allow_host)
        return
    try:
        data = render_run(run_dir)
    except RunDirError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    out.print(f"{data['scenario']}: {data['status']} → {run_dir / 'report.html'}", highlight=False)


def _serve_run(run_dir: Path, host: str, port: int, allow_host: list[str]) -> None:
    """`report --serve`: the dashboard's page for a finished (or crashed) run, from its journal."""
    import threading

    from harness.dashboard.server import Dashboard
    from harness.engine.journal import read_journal

    journal = run_dir / "journal.jsonl"
    if not journal.is_file():
        _user_error(UserError(f"{run_dir}: no journal.jsonl here: give a run folder, e.g. reports/<scenario>/<timestamp>"))
        raise typer.Exit(2)
    try:
        dashboard = Dashboard(host, port, allowed_hosts=allow_host, title=f"aftershock: {run_dir.name}")
        for event in read_journal(journal):
            dashboard.feed.on_event(event)
        dashboard.feed.drain()
        url = dashboard.start()
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    err.print(f"dashboard: {url} (Ctrl-C to stop)", highlight=False, soft_wrap=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        dashboard.stop()


@app.command()
def compare(
    baseline: Path = typer.Argument(..., help="Baseline result.json, run folder, or folder of runs (newest)"),
    current: Path = typer.Argument(..., help="Current result.json, run folder, or folder of runs (newest)"),
    tolerance: list[str] = typer.Option([], "--tolerance", "-t",
                                        help="KEY=VALUE, KEY an SLI, SLO name or class: p95(latency)=15%, accuracy=0.02, latency=10ms (repeatable)"),
    markdown_out: Optional[Path] = typer.Option(None, "--markdown", help="Also write the Markdown table to this file"),
    confidence: float = typer.Option(0.99, "--confidence", min=0.5, max=0.999,
                                     help="Confidence of the shift intervals (default 0.99)"),
) -> None:
    """Compare two runs; exit 1 on a regression (a change for the worse beyond tolerance, with confidence).

    Per-SLO verdicts and margins, per-SLI shifts with confidence intervals from the per-window samples."""
    from harness.workflows.compare import Tolerances, compare as compare_runs, load_result, markdown, parse_tolerance

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
    plan: Path = typer.Argument(..., help="Game-day plan YAML"),
    unattended: bool = typer.Option(False, "--unattended", help="Don't prompt at checkpoints (CI, schedules)"),
    quick: bool = typer.Option(False, "--quick", help="Run every scenario in quick mode (x0.25)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Reports folder (default: the plan's output.dir)"),
) -> None:
    """Run a game day: ordered scenarios with hypotheses, roles, runbook checkpoints and observations."""
    from harness.workflows.gameday import GameDay, load_plan

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
    plan: Path = typer.Argument(..., help="Schedule plan YAML"),
    export: Optional[str] = typer.Option(None, "--export", help="Print the equivalent: crontab | kubernetes | github"),
    job: Optional[str] = typer.Option(None, "--job", help="Run this one job now (what an exported schedule calls)"),
    max_runs: Optional[int] = typer.Option(None, "--max-runs", help="Stop after this many runs"),
    until: Optional[str] = typer.Option(None, "--until", help="Stop at this time: a duration from now (2h) or ISO time"),
    lock_timeout: float = typer.Option(0.0, "--lock-timeout", help="Seconds to wait for a running job to finish"),
) -> None:
    """Run scenarios and game days on cron schedules, one at a time, with history under reports/."""
    from harness.workflows.schedule import Scheduler, export_plan, load_schedule, parse_until

    try:
        sched = load_schedule(plan)
        if export:
            sys.stdout.write(export_plan(sched, export, plan))
            return
        scheduler = Scheduler(sched, lock_timeout=lock_timeout, console=err)
        if job:
            entry = scheduler.run_job_now(job)
            if entry.get("kind") == "scenario" and entry.get("run_dir"):  # what `run` shows a CI job, too
                from harness.engine.scenario.loader import load_scenario

                run_dir = Path(entry["run_dir"])
                if (run_dir / "result.json").is_file():
                    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
                    report = run_dir / "report.html"
                    _github_outputs(result, load_scenario(sched.file_of(sched.job(job))),
                                    report if report.is_file() else run_dir)
            raise typer.Exit(0 if entry["status"] in ("passed", "skipped") else 1)
        scheduler.loop(max_runs=max_runs, until=parse_until(until) if until else None)
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None


@app.command("drift-test")
def drift_test(
    url: Optional[str] = typer.Option(None, "--url", help="A running target, e.g. http://127.0.0.1:8080"),
    demo: bool = typer.Option(False, "--demo", help="Start the demo fraud service and use its data"),
    mode: DemoMode = typer.Option(DemoMode.resilient, "--mode", help="Demo mode"),
    dataset: Optional[Path] = typer.Option(None, "--dataset", help="Labelled NPZ/CSV/JSONL/Parquet (required with --url)"),
    label: str = typer.Option("label", "--label", help="The label column"),
    protocol: str = typer.Option("oip-v2", "--protocol", help="The target's protocol"),
    model: Optional[str] = typer.Option(None, "--model", help="Model name (default: fraud with --demo, else model)"),
    corruptions: Optional[str] = typer.Option(None, "--corruptions", help="Comma-separated (default: all that fit the data)"),
    severities: str = typer.Option("1,2,3,4,5", "--severities", help="Comma-separated, 1..5"),
    rows: int = typer.Option(500, "--rows", help="Rows of the dataset to send (0: all)"),
    batch_size: int = typer.Option(50, "--batch-size", help="Rows per request"),
    seed: int = typer.Option(0, "--seed", help="Seed of the corruptions"),
    timeout: float = typer.Option(10.0, "--timeout", help="Seconds per request"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="A non-loopback host the target may be on (repeatable)"),
    out_dir: Path = typer.Option(Path("reports/drift-test"), "--out", "-o", help="Folder for the tables (md, csv, json)"),
) -> None:
    """Accuracy under each corruption x severity 1..5, no load (RobustBench style)."""
    from harness.workflows.drift_test import main as drift_test_main

    if (url is None) == (not demo):
        raise UserError("drift-test needs one of --url URL (with --dataset FILE) or --demo")
    argv = ["--demo"] if demo else []
    for flag, value in (("--url", url), ("--dataset", dataset), ("--model", model), ("--corruptions", corruptions)):
        if value is not None:
            argv += [flag, str(value)]
    argv += ["--mode", mode.value, "--label", label, "--protocol", protocol, "--severities", severities,
             "--rows", str(rows), "--batch-size", str(batch_size), "--seed", str(seed), "--timeout", str(timeout),
             "-o", str(out_dir)]
    for host in allow_host:
        argv += ["--allow-host", host]
    raise typer.Exit(drift_test_main(argv))


class CapacitySearchKind(str, Enum):
    bisect = "bisect"
    linear = "linear"


@app.command()
def capacity(
    scenario: Path = typer.Argument(..., help="Scenario YAML file (its SLOs judge each level; its faults make the second sweep)"),
    max_users: int | None = typer.Option(None, "--max-users", help="Highest number of users to try"),
    max_rate: float | None = typer.Option(None, "--max-rate", help="Highest arrival rate to try, requests/s (each trial sets load.rate)"),
    budget: str = typer.Option("10m", "--budget", help="Time for the whole search, e.g. 10m; trial durations are planned from it"),
    step: float | None = typer.Option(None, "--step", help="Distance between the levels tried (default: the maximum / 16; users: at least 1)"),
    seed: int | None = typer.Option(None, "--seed", help="Seed of every trial (default: the scenario's)"),
    search: CapacitySearchKind = typer.Option(CapacitySearchKind.bisect, "--search", help="Bisect the levels, or step up through them (linear)"),
    confirm: bool = typer.Option(True, "--confirm/--no-confirm", help="Repeat both ends of the final bracket (a third trial where they flip)"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Folder for capacity.html/json, summary.md and the trials"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Allow a non-loopback host (repeatable)"),
) -> None:
    """Find the highest load at which every SLO holds, healthy and with the scenario's faults."""
    from harness.workflows.capacity.workflow import CapacityRequest, CapacitySearch

    req = CapacityRequest(scenario, max_users, max_rate, budget, step, seed, search.value, confirm, output, allow_host)
    try:
        searcher = CapacitySearch(req, log=lambda line: err.print(line, highlight=False, markup=False, soft_wrap=True))
    except UserError as exc:
        _user_error(exc)
        raise typer.Exit(2) from None
    code = searcher.run()
    sys.stdout.write((searcher.out_dir / "summary.md").read_text(encoding="utf-8"))
    err.print(f"report: {searcher.out_dir / 'capacity.html'}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


# --- probe-target / init (harness/engine/probe_target.py) ------------------------------------


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
    url: str = typer.Argument(..., help="Base URL of the model server, e.g. http://127.0.0.1:8080"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="The server's protocol: oip-v2, kserve-v1, torchserve, bentoml, seldon-v1, http-json"),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Model name (default: the one model the server lists, else \"model\")"),
    data: Optional[Path] = typer.Option(None, "--data", help="Rows to send (.npz/.csv/.jsonl/.parquet); default: from metadata"),
    option: list[str] = typer.Option([], "--option", "-o", help="Adapter option key=value (repeatable)"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Allow a non-loopback host (repeatable)"),
) -> None:
    """Check readiness, send one batch, and print what aftershock understood of the answer."""
    from harness.engine.probe_target import probe_target

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
    url: str = typer.Argument(..., help="Base URL of the running model server"),
    protocol: str = typer.Option(..., "--protocol", "-p", help="The server's protocol (see probe-target)"),
    model: Optional[str] = typer.Option(None, "--model", "-m",
                                        help="Model name (default: the one model the server lists, else \"model\")"),
    data: Path = typer.Option(..., "--data", help="The rows the scenario's load sends (labels in a `label` column)"),
    out: Path = typer.Option(Path("scenario.yaml"), "--out", help="Scenario file to write"),
    name: Optional[str] = typer.Option(None, "--name", help="Scenario name (default: the file's stem)"),
    force: bool = typer.Option(False, "--force", help="Overwrite --out if it exists"),
    allow_host: list[str] = typer.Option([], "--allow-host", help="Allow a non-loopback host (repeatable)"),
) -> None:
    """Probe the server, then write a starter scenario for it."""
    from harness.engine.probe_target import probe_target, write_starter

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
