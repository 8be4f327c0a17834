"""aftershock's Locust plugin: every request into windows, streamed to the runner.

Imported only inside the Locust child (it imports locust). Importing it registers
listeners on Locust's events, so it measures any User class — ours or a user's own
locustfile. Roles:
  local runner   records requests, writes partial window records to the stream file
  worker         records requests, sends partial records to the master (Locust messages)
  master         writes the workers' records to the stream file; before the run stops it
                 asks every worker to stop, flush and report its final records, and waits.
Each record is a delta (harness.engine.load.recorder), so the runner just adds them up.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import gevent
from locust import constant_throughput, events
from locust.env import Environment
from locust.runners import MasterRunner, Runner, WorkerRunner
from pydantic import BaseModel

from harness.core.polling import wait_until
from harness.core.protocols import Decoded, DecodeError, make_adapter
from harness.engine.load.config import ArrivalRateShape, LoadConfig
from harness.engine.load.failures import failure_kind
from harness.engine.load.recorder import WindowRecorder
from harness.engine.load.response_decoder import ResponseDecoder

CONFIG_ENV = "AFTERSHOCK_LOAD_CONFIG"  # names the JSON file with the ChildConfig
CONTEXT_LABELS = "aftershock_labels"  # request context: the labels of the batch sent
CONTEXT_DECODED = "aftershock_decoded"  # request context: what the adapter read
CONTEXT_GENERATION = "aftershock_generation"  # request context: a generative answer's figures
MSG_WINDOWS = "aftershock_windows"
MSG_STOP = "aftershock_stop"
MSG_FINAL = "aftershock_final"
MIN_TICK_S = 0.1

log = logging.getLogger("aftershock.load")


class ChildConfig(BaseModel):
    """The JSON the runner writes for the Locust child."""

    load: LoadConfig
    stream_path: str | None = None  # master/local: where window records go (JSON lines)


def config_from_env() -> ChildConfig | None:
    path = os.environ.get(CONFIG_ENV)
    if not path:
        return None
    with open(path, encoding="utf-8") as f:
        return ChildConfig.model_validate_json(f.read())


@dataclass
class PluginState:
    config: ChildConfig | None = None
    decoder: ResponseDecoder | None = None
    recorder: WindowRecorder | None = None
    sink: IO[bytes] | None = None
    flusher: gevent.Greenlet | None = None
    ender: gevent.Greenlet | None = None  # local/master: ends the load at its duration
    finals: set[str] = field(default_factory=set)  # master: workers that sent their last records
    collected: bool = False


STATE = PluginState()


@events.init_command_line_parser.add_listener
def _add_arguments(parser: Any) -> None:
    # Custom arguments travel from master to workers with each spawn message: this is how
    # a worker on another machine gets the run's config.
    path = os.environ.get(CONFIG_ENV)
    default = Path(path).read_text(encoding="utf-8") if path else ""
    parser.add_argument(
        "--aftershock-config",
        default=default,
        include_in_web_ui=False,
        help="aftershock run config (JSON)",
    )


def _configure(environment: Environment) -> ChildConfig:
    if STATE.config is not None:
        return STATE.config
    text = (
        getattr(environment.parsed_options, "aftershock_config", "")
        if environment.parsed_options
        else ""
    )
    if not text:
        raise RuntimeError(
            f"no aftershock config: the runner sets {CONFIG_ENV} (or the master sends it)"
        )
    cfg = ChildConfig.model_validate_json(text)
    STATE.config = cfg
    STATE.decoder = ResponseDecoder(make_adapter(cfg.load.protocol, **cfg.load.protocol_options))
    if not isinstance(environment.runner, MasterRunner):
        STATE.recorder = WindowRecorder(cfg.load.window)
    return cfg


def _write(records: list[dict[str, Any]]) -> None:
    if not records or STATE.sink is None:
        return
    STATE.sink.write(
        b"".join(json.dumps(r, separators=(",", ":")).encode() + b"\n" for r in records)
    )
    STATE.sink.flush()


def _emit(environment: Environment, records: list[dict[str, Any]]) -> None:
    if not records:
        return
    if isinstance(environment.runner, WorkerRunner):
        environment.runner.send_message(MSG_WINDOWS, {"records": records})
    else:
        _write(records)


def _flush(environment: Environment, final: bool = False) -> None:
    if STATE.recorder is not None:
        _emit(environment, STATE.recorder.drain())
        from harness.engine.load.model_user import flush_data_faults

        flush_data_faults(final)
        if STATE.config is not None and STATE.config.load.generative:
            from harness.engine.load.chat_user import flush_prompt_faults

            flush_prompt_faults()


def _flush_every_window(environment: Environment) -> None:
    assert STATE.config is not None
    tick = max(MIN_TICK_S, STATE.config.load.window)
    while True:
        gevent.sleep(tick)
        try:
            _flush(environment)
        except Exception:  # a lost connection must not end the measuring
            log.exception("aftershock: could not send window records")


def _refresh_loop_clock() -> None:
    """Bring gevent's cached loop clock up to now.

    Locust sets its --run-time timer right after `init`, against the event loop's cached
    time, which stands still while the child imports (ours: harness, numpy, pydantic).
    Without this a load of `duration` seconds ended early by the import time (0.4-0.8 s
    here). Scenario runs end the load themselves and were not cut short; direct
    LoadProcess runs and the throughput benchmark were.
    """
    gevent.get_hub().loop.update_now()


@events.init.add_listener
def _on_init(environment: Environment, **_: Any) -> None:
    try:
        _init_role(environment)
    finally:
        _refresh_loop_clock()


def _init_role(environment: Environment) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(MSG_STOP, _on_stop_request, concurrent=True)
        return
    cfg = _configure(environment)
    if cfg.stream_path:
        STATE.sink = open(cfg.stream_path, "ab")  # noqa: SIM115 - open for the whole run
    if isinstance(runner, MasterRunner):
        runner.register_message(
            MSG_WINDOWS, lambda environment, msg, **_: _write(msg.data["records"])
        )
        runner.register_message(MSG_FINAL, _on_final)


@events.test_start.add_listener
def _on_test_start(environment: Environment, **_: Any) -> None:
    cfg = _configure(environment).load
    if not isinstance(environment.runner, WorkerRunner) and STATE.ender is None:
        STATE.ender = gevent.spawn_later(cfg.duration, _end_load, environment)
    if isinstance(environment.runner, MasterRunner):
        return
    if isinstance(cfg.shape, ArrivalRateShape):
        for user_class in environment.user_classes:
            user_class.wait_time = constant_throughput(cfg.shape.rate / cfg.users)
    stream = STATE.config.stream_path if STATE.config else None
    load_dir = Path(stream).parent if stream else Path.cwd()
    if cfg.generative and STATE.decoder is not None:
        from harness.engine.load.chat_user import prepare_chat_user

        prepare_chat_user(cfg, STATE.decoder.adapter, load_dir)  # type: ignore[arg-type]  # an OpenAIAdapter
    else:
        from harness.engine.load.model_user import prepare_model_user

        prepare_model_user(cfg, STATE.decoder, load_dir)
    if STATE.flusher is None:
        STATE.flusher = gevent.spawn(_flush_every_window, environment)
    # Everything alive now (modules: ours bring numpy and pydantic, ~25k objects more than
    # bare Locust's; the config; the dataset) lives for the whole run: out of the cyclic
    # GC's sight, full collections during the load stop walking it (benchmarks/README-load.md)
    gc.freeze()


@events.request.add_listener
def _on_request(
    request_type: str,
    name: str,
    response_time: float,
    response_length: int,
    response: Any = None,
    context: dict[str, Any] | None = None,
    exception: BaseException | None = None,
    start_time: float | None = None,
    **_: Any,
) -> None:
    # on every request's path: no work here that the recorder's drain can do in bulk
    recorder = STATE.recorder
    if recorder is None:
        return
    response_time = response_time or 0.0
    start = start_time if start_time is not None else time.time() - response_time / 1000
    if exception is not None:  # an error body may still name the version that failed
        version = _version_of_failure(response)
        recorder.record(start, response_time, failure_kind(exception, response),
                        Decoded(model_version=version) if version is not None else None,
                        generation=context.get(CONTEXT_GENERATION) if context else None)
        return
    if context and CONTEXT_DECODED in context:  # ModelUser decoded it already
        decoded = context[CONTEXT_DECODED]
    else:  # a bring-your-own request (which may carry aftershock_labels in its context)
        decoded = _decode_foreign(response)
    labels = context.get(CONTEXT_LABELS) if context else None
    generation = context.get(CONTEXT_GENERATION) if context else None
    recorder.record(start, response_time, None, decoded, labels, generation)


def _version_of_failure(response: Any) -> str | None:
    """The model version a failed response's body names, where it names one (rare path)."""
    if STATE.decoder is None or not getattr(response, "content", None):
        return None
    try:
        return STATE.decoder.adapter.version_of(json.loads(response.content))
    except (ValueError, TypeError):
        return None


def _decode_foreign(response: Any) -> Decoded | None:
    """Tag a bring-your-own request with what the adapter reads, if its body is protocol JSON."""
    if STATE.decoder is None or response is None:
        return None
    try:
        return STATE.decoder.decode(response.content)
    except (ValueError, TypeError, DecodeError, AttributeError):
        return None


@events.report_to_master.add_listener
def _on_report_to_master(client_id: str, data: dict[str, Any], **_: Any) -> None:
    if STATE.recorder is not None:
        data[MSG_WINDOWS] = STATE.recorder.drain()  # includes the last report, sent on quit


@events.worker_report.add_listener
def _on_worker_report(client_id: str, data: dict[str, Any], **_: Any) -> None:
    _write(data.get(MSG_WINDOWS) or [])


def stop_users_gracefully(runner: Runner) -> None:
    """Stop every user, letting its request in flight finish, before Locust's own stop.

    Locust's runner.stop() starts with inspect.stack() and fires events: 30-45 ms (over
    100 ms on a busy machine) during which the event loop reads no socket, so every
    request then in flight was recorded that much slower than it was served (the last
    window's p99 50-180 ms against a true 22-54 ms). Stopping only the users is cooperative: each finishes its request, recorded as
    served, and runner.stop() then finds nothing in flight. Those requests are kept, not
    dropped: the requests in flight at any moment are the slower ones, so dropping them
    would bias the last window fast. The wait is bounded by --stop-timeout (graceful_stop).
    """
    if isinstance(runner, MasterRunner):
        return  # a master has no users; each worker does this on MSG_STOP
    current = gevent.getcurrent()
    for spawner in (runner.spawning_greenlet, getattr(runner, "shape_greenlet", None)):
        if spawner is not None and spawner is not current:
            spawner.kill(block=True)  # no new users while the old ones finish
    runner.stop_users(runner.user_classes_count)


def _end_load(environment: Environment) -> None:
    """The planned end (`duration` after the test started): stop gracefully, then quit.

    Locust's own --run-time end (and a shape's) calls runner.quit() straight away, with
    the stall stop_users_gracefully avoids; --run-time stays on only as a backstop."""
    stop_users_gracefully(environment.runner)
    environment.runner.quit()


def _on_stop_request(environment: Environment, msg: Any, **_: Any) -> None:
    """Worker: stop the users (in-flight requests finish), then send everything left."""
    stop_users_gracefully(environment.runner)
    environment.runner.stop()
    records = STATE.recorder.drain() if STATE.recorder else []
    total = STATE.recorder.requests if STATE.recorder else 0
    environment.runner.send_message(MSG_FINAL, {"records": records, "requests": total})
    log.info("aftershock: worker stopped after %d requests", total)


def _on_final(environment: Environment, msg: Any, **_: Any) -> None:
    _write(msg.data["records"])
    STATE.finals.add(msg.node_id)


def _collect_finals(environment: Environment) -> None:
    """Master: have every worker stop and report its last records before the run ends."""
    if STATE.collected or STATE.config is None:
        return
    STATE.collected = True
    runner = environment.runner
    workers = {c.id for c in runner.clients.all}
    if not workers:
        return
    runner.send_message(MSG_STOP, {})
    wait_until(lambda: workers <= STATE.finals, STATE.config.load.graceful_stop + 10, sleep=gevent.sleep)
    missing = workers - STATE.finals
    if missing:
        log.warning("aftershock: no final window records from workers %s", sorted(missing))


@events.test_stopping.add_listener
def _on_test_stopping(environment: Environment, **_: Any) -> None:
    if isinstance(environment.runner, MasterRunner):
        _collect_finals(environment)


@events.test_stop.add_listener
def _on_test_stop(environment: Environment, **_: Any) -> None:
    if not isinstance(environment.runner, (MasterRunner, WorkerRunner)):
        _flush(environment, final=True)


@events.quitting.add_listener
def _on_quitting(environment: Environment, **_: Any) -> None:
    runner = environment.runner
    if isinstance(runner, MasterRunner):
        _collect_finals(environment)
    elif runner is not None and not isinstance(runner, WorkerRunner):
        stop_users_gracefully(runner)  # in-flight requests finish and are recorded as served
        runner.stop()
        _flush(environment, final=True)
