"""Runs one scenario for real and returns its verdicts.

Order: undo what a crashed earlier run left → fault proxy → dependencies → target →
load (baseline, fault windows, recovery, all under load) → verdicts → reports.
Everything started is stopped and every fault reverted on every path out: normal
end, exception, stop condition, Ctrl-C and SIGTERM (turned into task cancellation).
"""

from __future__ import annotations

import asyncio
import math
import signal
import threading
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.core.fault import FaultContext, FaultFailed, UserError
from harness.core.payload.delivered import delivered_events
from harness.core.windows import Window
from harness.engine.attack_schedule import AttackTimeline
from harness.engine.journal import Journal, Listener
from harness.engine.ledger import Ledger, describe_entry, replay, stale_ledgers
from harness.engine.phases import RunTimeline, Span
from harness.engine.probe_sampler import ProbeSampler, build_probes
from harness.engine.record.events import journal_window
from harness.engine.record.result import environment
from harness.engine.scenario.loader import LoadedScenario
from harness.engine.target import SystemUnderTest
from harness.engine.timeline import FaultTimeline, sleep_until

if TYPE_CHECKING:  # imported when a scenario has `ingest:` (httpx, numpy)
    from harness.engine.ingest.stream import IngestStream

EXIT_OK, EXIT_SLO_FAILED, EXIT_BAD_INPUT, EXIT_ABORTED, EXIT_INTERNAL = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130

QUICK_FACTOR = 0.25
LOAD_END_SLACK_S = 30.0


@dataclass
class RunOptions:
    quick: bool = False
    output_dir: Path | None = None  # overrides the scenario's output.dir
    toxiproxy_url: str | None = None  # an external Toxiproxy server instead of the embedded one
    live: bool = False  # a live terminal view (rich) while the run goes
    listeners: list[Listener] = field(default_factory=list)  # get every journal event (exporters, live views)


@dataclass
class RunResult:
    status: str  # passed | failed | aborted | interrupted | error
    exit_code: int
    run_dir: Path
    result: dict[str, Any]
    message: str = ""


class Runner:
    def __init__(self, loaded: LoadedScenario, options: RunOptions | None = None) -> None:
        self.options = options or RunOptions()
        self.loaded = loaded
        self.scenario = loaded.scenario.scaled(QUICK_FACTOR) if self.options.quick else loaded.scenario
        if self.options.quick:
            self.scenario.load.window = min(self.scenario.load.window, 0.5)
        self.run_id = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
        out_root = (self.options.output_dir or Path(self.scenario.output.dir)).absolute()
        self.out_root = out_root
        self.run_dir = out_root / self.scenario.name / self.run_id
        self.windows: dict[int, Window] = {}
        self._measure_from: float | None = None  # set at the clock's start; earlier records are warm-up
        self.abort_reason: str | None = None
        self._signal: str | None = None
        self.live: Any = None  # harness.engine.live.LiveView while the load runs, if options.live
        self.ingest: IngestStream | None = None  # the event stream, when the scenario has `ingest:`
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop_requested: asyncio.Event | None = None
        self._stop_reason: str | None = None
        self._stop_lock = threading.Lock()  # request_stop() comes from another thread (the dashboard's)

    # --- entry point ------------------------------------------------------------

    def run(self) -> RunResult:
        """Run to the end (blocking). SIGINT/SIGTERM cancel the run and roll back."""
        return asyncio.run(self._main())

    def request_stop(self, reason: str) -> None:
        """Abort the run as a stop condition would (exit 3, every fault rolled back), from any
        thread: the web dashboard's Stop button. Before the load starts it aborts as soon as
        the load phase begins; after the load it does nothing (the verdicts are being made)."""
        with self._stop_lock:
            if self._stop_reason is None:
                self._stop_reason = reason
            loop, event = self._loop, self._stop_requested
        if loop is not None and event is not None and not loop.is_closed():
            loop.call_soon_threadsafe(event.set)

    async def _main(self) -> RunResult:
        loop = asyncio.get_running_loop()
        with self._stop_lock:
            self._loop, self._stop_requested = loop, asyncio.Event()
            if self._stop_reason is not None:  # asked for before the loop existed
                self._stop_requested.set()
        task = asyncio.current_task()
        installed = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                def on_signal(sig: signal.Signals = sig) -> None:
                    if self._signal is None:
                        self._signal = sig.name
                        task.cancel()
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        try:
            return await self._run()
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)

    # --- the run ----------------------------------------------------------------

    async def _run(self) -> RunResult:
        from faults.proxy import EmbeddedProxy
        from faults.proxy.client import ToxiproxyClient

        s = self.scenario
        self.run_dir.mkdir(parents=True, exist_ok=True)
        journal = Journal(self.run_dir / "journal.jsonl", self.loaded.secrets)
        self.journal = journal
        for listener in self.options.listeners:
            journal.subscribe(listener)
        for left in stale_ledgers(self.out_root / ".ledger"):
            for line in replay(left):
                journal.write("cleanup.replayed", ledger=str(left.path), action=line)
        ledger = Ledger(self.out_root / ".ledger", f"{s.name}-{self.run_id}", s.safety.allowed_hosts)
        journal.write("run.started", scenario=s.name, file=str(self.loaded.path), run_id=self.run_id,
                      quick=self.options.quick, window=s.load.window, environment=environment())
        proxy = None
        sampler: ProbeSampler | None = None
        sut: SystemUnderTest | None = None
        load = None
        faults: FaultTimeline | None = None
        status, code, message = "error", EXIT_INTERNAL, ""
        timeline = RunTimeline(run=Span("run", "run", time.time()))
        started = time.time()
        try:
            url = self.options.toxiproxy_url or (s.toxiproxy.url if s.toxiproxy else None)
            if url is None:
                proxy = EmbeddedProxy(host="127.0.0.1", port=0, seed=s.seed, allowed_hosts=s.safety.allowed_hosts)
                proxy.start()
                url = proxy.api_url
            journal.write("proxy.ready", url=url, embedded=proxy is not None)
            client = ToxiproxyClient(url, allowed_hosts=s.safety.allowed_hosts)
            sut = SystemUnderTest(s, self.run_dir, client, ledger, journal)
            await asyncio.to_thread(sut.start)
            journal.write("target.ready", url=sut.base_url,
                          dependencies={n: {"listen": d.listen, "upstream": d.upstream} for n, d in sut.dependencies.items()})
            if s.load.data.dataset == "demo":
                dataset = await asyncio.to_thread(sut.demo_dataset)
            else:  # relative to the scenario file, like every path a scenario names
                dataset = (self.loaded.path.parent / s.load.data.dataset).resolve()
            ctx = FaultContext(toxiproxy_url=url, dependencies=sut.dependencies, processes=sut.processes,
                               seed=s.seed, journal=journal.write, run_dir=self.run_dir,
                               load_dir=self.run_dir / "load", allowed_hosts=tuple(s.safety.allowed_hosts),
                               target_url=sut.base_url)
            entries = [(e, cls, params) for e, (cls, params) in zip(s.timeline.faults, self.loaded.faults)]
            faults = FaultTimeline(entries, ctx, self.run_id, journal, ledger, timeline)
            probes = build_probes(s.probes, sut.base_url, {n: d.listen for n, d in sut.dependencies.items()},
                                  allowed_hosts=s.safety.allowed_hosts)
            sampler = ProbeSampler(probes, timeline, journal.write)
            attacks = self._make_attacks(sut.base_url, dataset, timeline, sampler)
            await attacks.prepare()
            await sampler.sample_once("start")
            if s.ingest is not None:
                self.ingest = await asyncio.to_thread(self._make_ingest, sut.base_url, dataset, sampler)
            load = self._make_load(sut.base_url, dataset)
            await load.start()
            ledger.process_started("load", load.pid)
            await self._drive(load, faults, attacks, timeline, sampler)
            await sampler.sample_once("end")
            await self._collect_fault_metrics(faults, sampler)
            status, code = "completed", EXIT_OK
        except asyncio.CancelledError:
            status, code = "interrupted", EXIT_INTERRUPTED
            message = f"interrupted by {self._signal or 'cancellation'}"
            if self._signal is None:
                raise
        except _Aborted as exc:
            status, code, message = "aborted", EXIT_ABORTED, str(exc)
        except UserError as exc:
            status, code, message = "error", EXIT_BAD_INPUT, str(exc)
        except FaultFailed as exc:  # not the harness's bug: the fault could not act on the target
            status, code = "error", EXIT_INTERNAL
            message = "a fault did not take effect: " + " ".join(str(exc).split())  # "TYPE NAME: what"
            journal.write("run.error", error=message)
        except Exception as exc:
            status, code, message = "error", EXIT_INTERNAL, f"internal error: {exc}"
            journal.write("run.error", error=str(exc), traceback=traceback.format_exc())
        finally:
            not_undone = await self._teardown(faults, load, sut, proxy, ledger, journal)
            for event in delivered_events(self.run_dir / "load"):  # what data faults really sent
                journal.write("drift.delivered", **event)
            if sampler is not None:
                sampler.attach(self.windows)
                sampler.close()
        if self._signal is not None and status == "completed":  # the signal came during teardown
            status, code, message = "interrupted", EXIT_INTERRUPTED, f"interrupted by {self._signal}"
        if status == "interrupted" and not not_undone:
            message += "; faults reverted and processes stopped"
        if not_undone:  # the system may still be broken: that outranks any verdict
            status, code = "error", EXIT_INTERNAL
            left = (f"NOT UNDONE: {', '.join(not_undone)}; fix the cause, then run "
                    f"`aftershock cleanup --reports {self.out_root}`")
            message = f"{message}; {left}" if message else left
        try:
            return await self._finish(timeline, status, code, message, started, faults, not_undone)
        except asyncio.CancelledError:  # Ctrl-C while the reports are written: all is undone already
            if self._signal is None:
                raise
            return self._internal_failure(None, "interrupted", not_undone)
        except Exception as exc:  # noqa: BLE001 (the run is over and torn down: one line, not a traceback)
            return self._internal_failure(exc, status, not_undone)

    async def _finish(self, timeline: RunTimeline, status: str, code: int, message: str, started: float,
                      faults: FaultTimeline | None, not_undone: list[str]) -> RunResult:
        """Verdicts, result.json and reports, after teardown."""
        journal = self.journal
        timeline.run.end = time.time() if timeline.run.end is None else timeline.run.end
        settle_baseline(timeline, self.scenario.load.window)
        if timeline.faults and status in ("completed", "aborted"):
            last = max(f.end or timeline.run.end for f in timeline.faults)
            timeline.recovery = Span("recovery", "recovery", last, timeline.run.end)
        verdicts = self._verdicts(timeline) if status in ("completed", "aborted") else []
        if status == "completed":
            failed = [v for v in verdicts if v["passed"] is not True]
            status, code = ("failed", EXIT_SLO_FAILED) if failed else ("passed", EXIT_OK)
        from harness.engine.record.result import build_result, write_result
        from harness.engine.reporter import REPORTERS

        # secrets masked here: the result and message go on to stdout and pytest too
        message = journal.redactor.text(message)
        result = journal.redactor.value(build_result(self, timeline, verdicts, status, code, message, started, faults))
        result["not_undone"] = journal.redactor.value(not_undone)  # left open in the ledger, for `aftershock cleanup`
        load = self.scenario.load
        short = rate_shortfall(load.rate, load.users, (result.get("slis") or {}).get("run"), load.duration)
        if short and status in ("passed", "failed"):  # the verdicts judged a lighter load than written
            journal.write("load.rate_not_held", rate=self.scenario.load.rate, message=short)
            message = result["message"] = f"{message}; {short}" if message else short
        await asyncio.to_thread(write_result, self.run_dir, result, journal.redactor)
        for name in REPORTERS.names():  # the pages (harness.reports) and any installed reporter
            await asyncio.to_thread(REPORTERS.get(name)().write, self.run_dir, result, journal)
        journal.write("run.ended", status=status, exit_code=code, message=message)
        journal.close()
        return RunResult(status, code, self.run_dir, result, message)

    def _make_attacks(self, base_url: str, dataset: Path, timeline: RunTimeline, sampler: ProbeSampler) -> AttackTimeline:
        s = self.scenario
        entries = list(zip(s.timeline.attacks, self.loaded.attacks))
        context = None
        if entries:
            from harness.core.attack import AttackContext
            from harness.core.protocols import make_adapter
            from harness.engine.datasets import load_dataset

            data = load_dataset(str(dataset), label=s.load.data.label_field if s.load.data.labels else None)
            context = AttackContext(base_url=base_url, adapter=make_adapter(s.target.protocol, **s.target.options), model=s.target.model,
                                    dataset=data.features, labels=data.labels, seed=s.seed,
                                    journal=self.journal.write, workdir=str(self.run_dir / "attacks"))
        return AttackTimeline(entries, context, self.journal, timeline, sampler, s.load.request_timeout)

    def _make_ingest(self, base_url: str, dataset: Path, sampler: ProbeSampler) -> IngestStream:
        from harness.engine.datasets import load_dataset
        from harness.engine.ingest.stream import IngestStream, dataset_rows

        s = self.scenario
        assert s.ingest is not None
        label = s.load.data.label_field if s.load.data.labels else None
        data = load_dataset(str(dataset), label=label)
        return IngestStream(s.ingest, base_url, s.target.model, dataset_rows(data.features, data.labels, label or "label"),
                            run_dir=self.run_dir, run_id=self.run_id, seed=s.seed, window=s.load.window,
                            request_timeout=s.load.request_timeout, journal=self.journal.write,
                            add_values=sampler.add_values)

    def _make_load(self, base_url: str, dataset: Path) -> Any:
        from harness.engine.load.config import ArrivalRateShape, ConstantShape, LoadConfig
        from harness.engine.load.process import LoadProcess

        s = self.scenario
        cfg = LoadConfig(
            target_url=base_url, protocol=s.target.protocol, protocol_options=s.target.options,
            model=s.target.model, dataset=str(dataset),
            label=s.load.data.label_field if s.load.data.labels else None, batch_size=s.load.data.batch_size,
            # Locust's own run-time clock starts before its users do; the runner ends the
            # load itself at run start + duration, so this is only a bound if it cannot
            users=s.load.users, spawn_rate=s.load.spawn_rate, duration=s.load.warmup + s.load.duration + LOAD_END_SLACK_S,
            processes=s.load.processes, request_timeout=s.load.request_timeout, window=s.load.window,
            locustfile=s.load.locustfile, seed=s.seed, stream=s.load.stream, max_tokens=s.load.max_tokens,
            stall_timeout=s.load.stall_timeout,
            shape=ConstantShape() if s.load.rate is None else ArrivalRateShape(rate=s.load.rate),
            prompts=str((self.loaded.path.parent / s.load.prompts).resolve()) if s.load.prompts else None,
        )
        return LoadProcess(cfg, workdir=self.run_dir / "load", redactor=self.journal.redactor)

    async def _drive(self, load: Any, faults: FaultTimeline, attacks: AttackTimeline, timeline: RunTimeline,
                     sampler: ProbeSampler) -> None:
        """`_drive_load`, aborted when request_stop() is called (at any point of it, warm-up included)."""
        stop_asked = asyncio.create_task(self._stop_request())
        try:
            await self._drive_load(load, faults, attacks, timeline, sampler, stop_asked)
        finally:
            stop_asked.cancel()

    async def _drive_load(self, load: Any, faults: FaultTimeline, attacks: AttackTimeline, timeline: RunTimeline,
                          sampler: ProbeSampler, stop_asked: asyncio.Task[None]) -> None:
        """Consume windows, run the fault schedule and the stop conditions until the load ends.

        The run's clock starts at the window of the first request, not at process start:
        Locust takes a moment to import and spawn its users, and a baseline without load
        would measure nothing.
        """
        s = self.scenario
        first = asyncio.Event()
        consume = asyncio.create_task(self._consume(load, first))
        started = asyncio.create_task(first.wait())
        limit = s.load.request_timeout + 60
        await asyncio.wait({started, consume, stop_asked}, timeout=limit, return_when=asyncio.FIRST_COMPLETED)
        started.cancel()
        if stop_asked.done():
            consume.cancel()
            stop_asked.result()  # raises _Aborted
        if consume.done():  # the load child ended before sending anything
            consume.result()  # its error, with the tail of its log
            raise RuntimeError(f"the load ended without sending a request; see {self.run_dir / 'load' / 'locust.log'}")
        if not first.is_set():
            consume.cancel()
            raise RuntimeError(f"the load sent no request within {limit:g}s; see {self.run_dir / 'load' / 'locust.log'}")
        run_start = min(w.start for w in self.windows.values())
        if s.load.warmup > 0:  # the clock starts at the first window boundary after the warm-up
            size = s.load.window
            run_start = math.ceil((run_start + s.load.warmup) / size - 1e-9) * size
            self._measure_from = run_start
            await asyncio.wait({consume, stop_asked}, timeout=max(0.0, run_start - time.time()),
                               return_when=asyncio.FIRST_COMPLETED)
            if stop_asked.done():
                consume.cancel()
                stop_asked.result()
            if consume.done():
                consume.result()
                raise RuntimeError(f"the load ended during its warm-up; see {self.run_dir / 'load' / 'locust.log'}")
            self.windows = {i: w for i, w in self.windows.items() if w.start >= run_start}
        timeline.run.start = run_start
        if s.timeline.baseline > 0:
            timeline.baseline = Span("baseline", "baseline", run_start, run_start + s.timeline.baseline)
        self.journal.write("phase", phase="load", start=run_start, duration=s.load.duration,
                           baseline=s.timeline.baseline, warmup=s.load.warmup)
        if self.options.live:
            from harness.engine.live import LiveView

            self.live = LiveView(s.name, s.load.duration)
            self.live.start()
        fault_task = asyncio.create_task(_both(faults.run(run_start), attacks.run(run_start)))
        stop_task = asyncio.create_task(self._watch_windows(timeline, sampler))
        probe_task = asyncio.create_task(sampler.run())
        end_task = asyncio.create_task(self._end_load_at(load, run_start + s.load.duration))
        pending = {consume, fault_task, stop_task, probe_task, end_task, stop_asked}
        # the event stream (`ingest:`) runs over the same span; its last read-back follows it
        ingest_task = asyncio.create_task(self.ingest.run(run_start, run_start + s.load.duration)) if self.ingest else None
        pending |= {ingest_task} if ingest_task else set()
        try:
            while consume in pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    if t.exception() is not None:
                        raise t.exception()
            if not fault_task.done():
                if not end_task.done():
                    # the load ended before the timeline did (its child died): nothing to measure
                    raise RuntimeError(f"the load stopped before the timeline ended; see {self.run_dir / 'load'}")
                await fault_task  # an attack overrunning its window a little (bounded in AttackTimeline)
            if ingest_task is not None:
                await ingest_task  # its settle and final read-back
        finally:
            tasks = (consume, fault_task, stop_task, probe_task, end_task, stop_asked, *([ingest_task] if ingest_task else []))
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if self.live is not None:
                self.live.stop()
        timeline.run.end = min(time.time(), run_start + s.load.duration)

    async def _stop_request(self) -> None:
        """Raise _Aborted once request_stop() is called; journaled like a stop condition."""
        assert self._stop_requested is not None
        await self._stop_requested.wait()
        self.abort_reason = self._stop_reason or "stopped"
        self.journal.write("run.aborted", condition=None, reason=self.abort_reason)
        raise _Aborted(self.abort_reason)

    def _show_progress(self, timeline: RunTimeline, done: list[Window]) -> None:
        if self.live is None:
            return
        from harness.engine.slo import window_summary

        active = [f.name for f in timeline.faults if f.end is None]
        attacking = [a.name for a in timeline.attacks if a.end is None]
        now = time.time()
        planned = self.scenario.timeline.faults
        if active or attacking:
            phase = "fault" if active else "attack"
        elif timeline.baseline is not None and timeline.baseline.contains(now):
            phase = "baseline"
        elif any(now < timeline.run.start + f.at for f in planned):
            phase = "between faults"
        else:
            phase = "recovery" if planned else "load"
        last = window_summary(done[-1]) if done else {}
        self.live.update(phase, now - timeline.run.start, last.get("throughput"), last.get("p95_ms"),
                         last.get("error_rate"), active, attacking)

    async def _collect_fault_metrics(self, faults: FaultTimeline, sampler: ProbeSampler) -> None:
        """Figures faults measured (e.g. a preempted job's steps_lost), readable by SLOs by name."""
        for f in faults.faults:
            if not f.injected:
                continue
            figures = await asyncio.to_thread(f.fault.metrics)
            if figures:
                self.journal.write("fault.metrics", fault=f.entry.name, type=f.fault.type, metrics=figures)
                # stamped inside the fault's span, however late they were read (a rescheduled
                # job may resume after the load ended), so `during <fault>` and the run see them
                span = f.span
                sampler.add_values(figures, at=None if span is None else (span.start + (span.end or span.start)) / 2)

    @staticmethod
    async def _end_load_at(load: Any, end: float) -> None:
        """Stop the load at the planned end; it flushes its last windows as it exits."""
        await sleep_until(end)
        await load.stop()

    async def _consume(self, load: Any, first: asyncio.Event) -> None:
        async for rec in load.windows():
            if self._measure_from is not None and rec.start < self._measure_from:
                continue  # a late record of the warm-up
            if not self.scenario.load.warmup or self._measure_from is not None:  # never the warm-up's
                journal_window(self.journal, rec)  # each partial record once: the report merges them
            w = self.windows.get(rec.index)
            if w is None:
                self.windows[rec.index] = rec
            else:
                w.merge(rec)
            if rec.requests:
                first.set()

    async def _watch_windows(self, timeline: RunTimeline, sampler: ProbeSampler) -> None:
        """Every window: update the live view and check the stop conditions.

        Each tick hands only the windows completed since the last one to the stop triggers
        (copies: `_consume` may still merge a late record into a window), and judges them
        in a thread, so a long run's stop checks neither grow nor delay the fault timing."""
        from harness.engine.slo import StopTrigger

        triggers = [(text, StopTrigger(cond, self.scenario.settings))
                    for text, cond in zip(self.scenario.stop_when, self.loaded.stops)]

        def judge(windows: list[Window]) -> list[tuple[str, str | None]]:
            return [(text, trigger.feed(windows, timeline)) for text, trigger in triggers]

        size = self.scenario.load.window
        next_index: int | None = None
        while True:
            await asyncio.sleep(size)
            sampler.attach(self.windows)
            horizon = time.time() - size  # a window's records are flushed within a tick of its end
            last = math.floor(horizon / size + 1e-9) - 1  # the last window that ended by the horizon
            first = min(self.windows, default=last + 1) if next_index is None else next_index
            new = [self.windows[i] for i in range(first, last + 1) if i in self.windows]
            if not new:
                continue
            next_index = new[-1].index + 1
            self._show_progress(timeline, new)
            copies = [Window.from_record(w.to_record()) for w in new]
            for text, reason in await asyncio.to_thread(judge, copies):
                if reason:
                    self.abort_reason = f"stop condition `{text}` tripped: {reason}"
                    self.journal.write("run.aborted", condition=text, reason=reason)
                    raise _Aborted(self.abort_reason)

    async def _teardown(self, faults: FaultTimeline | None, load: Any, sut: SystemUnderTest | None, proxy: Any,
                        ledger: Ledger, journal: Journal) -> list[str]:
        """Revert faults first (the system must not stay broken), then stop everything.

        Returns what could not be undone (still open in the ledger, which then stays
        unclosed so that `aftershock cleanup` and the next run retry it)."""
        async def stop_load() -> None:
            await load.stop()
            ledger.process_done("load")

        steps = [
            ("revert faults", faults.revert_all if faults else None),
            ("stop load", stop_load if load else None),
            ("stop target", (lambda: asyncio.to_thread(sut.stop)) if sut else None),
            ("stop proxy", (lambda: asyncio.to_thread(proxy.stop)) if proxy else None),
        ]
        for what, step in steps:
            if step is None:
                continue
            running = asyncio.ensure_future(step())
            while not running.done():  # a Ctrl-C now must not start the next step before this one ends
                try:
                    await asyncio.shield(running)
                except asyncio.CancelledError:
                    continue
                except BaseException:  # noqa: BLE001 (read below; keep tearing down whatever happens)
                    break
            if not running.cancelled() and running.exception() is not None:
                journal.write("teardown.error", step=what, error=repr(running.exception()))
        left = [describe_entry(e) for e in ledger.close()]
        if left:
            journal.write("teardown.not_undone", left=left, ledger=str(ledger.path))
        return left

    def _internal_failure(self, exc: Exception | None, status: str, not_undone: list[str]) -> RunResult:
        """A failure after teardown (verdicts, result, reports): exit 4, the traceback in a file.
        `exc` None: a signal cut the reports short (exit 130); everything was undone before."""
        log = self.run_dir / "harness-error.log"
        if exc is None:
            final, code = "interrupted", (EXIT_INTERNAL if not_undone else EXIT_INTERRUPTED)
            message = f"interrupted by {self._signal} while writing the reports; rerun `aftershock report {self.run_dir}`"
        else:
            final, code = "error", EXIT_INTERNAL
            message = f"internal error after the run ({type(exc).__name__}: {exc}); traceback in {log}"
        try:
            if exc is not None:
                log.write_text(traceback.format_exc(), encoding="utf-8")
                self.journal.write("run.error", error=str(exc), traceback=traceback.format_exc())
            self.journal.write("run.ended", status=final, exit_code=code, message=message)
            self.journal.close()
        except Exception as log_exc:  # noqa: BLE001 (a full disk, say: the one-line message still goes out)
            message += f" (and the log could not be written: {log_exc})"
        result = {"scenario": self.scenario.name, "status": final, "exit_code": code, "message": message,
                  "run_status": status, "slos": [], "not_undone": not_undone}
        return RunResult(final, code, self.run_dir, result, message)

    def _verdicts(self, timeline: RunTimeline) -> list[dict[str, Any]]:
        from harness.engine.slo import evaluate

        windows = [self.windows[i] for i in sorted(self.windows)
                   if timeline.run.contains((self.windows[i].start + self.windows[i].end) / 2)]
        out = []
        for slo, parsed in zip(self.scenario.slos, self.loaded.slos):
            v = evaluate(parsed, windows, timeline, self.scenario.settings)
            measured = v.measured
            if isinstance(measured, float) and not math.isfinite(measured):
                measured = None
            out.append({"name": slo.name, "expect": slo.expect, "weight": slo.weight, "passed": v.passed, "measured": measured,
                        "unit": v.unit, "threshold": v.threshold, "scope": v.scope, "detail": v.detail})
            self.journal.write("slo.verdict", **out[-1])
        return out


async def _both(*coros: Any) -> None:
    await asyncio.gather(*coros)


class _Aborted(Exception):
    """A stop condition tripped, or a stop was requested (request_stop)."""


RATE_HELD = 0.9  # an arrival-rate load whose measured throughput stays below this share of its rate is reported


def rate_shortfall(rate: float | None, users: int, slis: dict[str, Any] | None, seconds: float) -> str | None:
    """Why an arrival-rate run of `seconds` sent less than its rate, or None: a pool too small
    for the target's latency (each user waits for its answer, so the pool holds at most
    users / latency requests/s). Two requests of slack: at 2/s over 3 s, 5 of 6 is no shortfall."""
    throughput = (slis or {}).get("throughput")
    if rate is None or throughput is None or throughput >= RATE_HELD * rate - 2 / seconds:
        return None
    return (f"warning: load.rate {rate:g}/s was not held: {throughput:.1f} requests/s measured; "
            f"answers took longer than users/rate = {users / rate:.2g} s, so the pool of {users} users was "
            "the limit: raise load.users")


def settle_baseline(timeline: RunTimeline, window: float) -> None:
    """End the baseline a window before the first fault or attack begins.

    Requests in flight when a fault lands (a crash, a toxic) started in the window before
    it and fail or slow because of it; they belong to neither the steady state nor the
    fault's windows (which start at its injection), only to the run."""
    starts = [s.start for s in (*timeline.faults, *timeline.attacks)]
    if timeline.baseline is None or not starts:
        return
    end = min(timeline.baseline.end or timeline.run.end or 0.0, min(starts) - window)
    timeline.baseline.end = max(end, timeline.baseline.start)
