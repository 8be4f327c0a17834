"""The dashboard's web server: the page, Plotly's JavaScript, an SSE stream of the run, Stop.

It runs in a thread beside the runner with its own event loop (uvicorn), so a busy run loop
never delays the page and a stuck page never delays the run. Routes:

- `GET /` the page; `GET /plotly.min.js` Plotly.js from the `plotly` package (no CDN: the
  page works offline);
- `GET /events` Server-Sent Events: a snapshot of the run so far, then each change;
- `GET /state` the same snapshot as JSON (for scripts);
- `POST /stop` asks the runner to abort and roll back (exit 3). It needs the header
  `X-Aftershock-Action: stop`, which a page of another origin cannot send without a CORS
  preflight that this server never grants; on loopback the Host header must be loopback
  too, so a DNS-rebound name cannot reach it.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterable
from functools import cache
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.sse import EventSourceResponse, ServerSentEvent
from starlette.middleware.trustedhost import TrustedHostMiddleware

from harness.dashboard.feed import Message, RunFeed, SloSpec
from harness.core.fault import UserError
from harness.core.safety import check_host_allowed, host_of, is_loopback
from harness.engine.slo import SloSettings

STOP_HEADER = "x-aftershock-action"
STOPPED_FROM_DASHBOARD = "stopped from the dashboard"
LOOPBACK_HOSTS = ["127.0.0.1", "localhost", "::1", "[::1]"]


class DashboardError(UserError):
    """The dashboard cannot serve where it was asked to (address refused or in use)."""


@cache
def plotly_js() -> bytes:
    import plotly.offline

    return plotly.offline.get_plotlyjs().encode("utf-8")


class Dashboard:
    """Serve one run's page from a `RunFeed`. `on_stop`: what the Stop button does (None: no
    Stop, as for a finished run). `host` must be loopback unless `allowed_hosts` names it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, on_stop: Callable[[], None] | None = None,
                 slos: list[SloSpec] | None = None, settings: SloSettings | None = None,
                 planned_faults: int | None = None, allowed_hosts: Iterable[str] = (),
                 title: str = "aftershock") -> None:
        self.host = host
        check_host_allowed(host, allowed_hosts, what="--web-host", fix="pass --allow-host {host}")
        self._loopback = is_loopback(host_of(host))
        self._port = port
        self._on_stop = on_stop
        self.title = title
        self.feed = RunFeed(self.publish, slos, settings, planned_faults, can_stop=on_stop is not None,
                            notify=self._wake_folder)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._events_waiting: asyncio.Event | None = None
        self._clients: set[asyncio.Queue[Message | None]] = set()
        self._server: Any = None  # uvicorn.Server
        self._thread: threading.Thread | None = None
        self._sock: socket.socket | None = None
        self.stop_requested = threading.Event()

    @property
    def url(self) -> str:
        assert self._sock is not None, "start() first"
        host, port = self._sock.getsockname()[:2]
        return f"http://{f'[{host}]' if ':' in host else host}:{port}/"

    # --- messages to the pages ----------------------------------------------------

    def publish(self, message: Message) -> None:
        """Send `message` to every connected page (from any thread)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fan_out, message)
            except RuntimeError:  # the loop closed meanwhile: nobody is listening
                pass

    def _wake_folder(self) -> None:
        loop, waiting = self._loop, self._events_waiting
        if loop is not None and waiting is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(waiting.set)
            except RuntimeError:
                pass

    def _fan_out(self, message: Message | None) -> None:
        for queue in self._clients:
            queue.put_nowait(message)

    # --- the app --------------------------------------------------------------------

    def app(self) -> FastAPI:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        if self._loopback:
            app.add_middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS)

        @app.get("/", response_class=HTMLResponse)
        def page() -> str:
            return render_page(self.title, can_stop=self._on_stop is not None)

        @app.get("/plotly.min.js")
        def plotly() -> Response:
            return Response(plotly_js(), media_type="text/javascript",
                            headers={"Cache-Control": "max-age=86400"})

        @app.get("/favicon.ico")
        def favicon() -> Response:
            return Response(status_code=204)  # none: a browser asks, and a 404 is a console error

        @app.get("/state")
        def state() -> JSONResponse:
            return JSONResponse(self.feed.snapshot())

        @app.get("/events", response_class=EventSourceResponse)
        async def events() -> AsyncIterator[ServerSentEvent]:
            queue: asyncio.Queue[Message | None] = asyncio.Queue()
            backlog = self.feed.snapshot()  # taken and registered in one step of this loop: no gap
            self._clients.add(queue)
            try:
                for message in backlog:
                    yield ServerSentEvent(raw_data=json.dumps(message, default=str))
                while True:
                    message = await queue.get()
                    if message is None:  # the server is closing
                        return
                    yield ServerSentEvent(raw_data=json.dumps(message, default=str))
            finally:
                self._clients.discard(queue)

        @app.post("/stop")
        def stop(request: Request) -> JSONResponse:
            if request.headers.get(STOP_HEADER) != "stop":
                return JSONResponse({"error": f"send the header {STOP_HEADER}: stop"}, status_code=400)
            if self._on_stop is None:
                return JSONResponse({"error": "this page shows a finished run: nothing to stop"}, status_code=409)
            if not self.feed.can_stop:
                return JSONResponse({"error": "the run is past its load or has ended: nothing to stop"},
                                    status_code=409)
            self.stop_requested.set()
            self._on_stop()
            return JSONResponse({"stopping": True, "reason": STOPPED_FROM_DASHBOARD}, status_code=202)

        return app

    # --- lifetime ---------------------------------------------------------------------

    def start(self) -> str:
        """Bind and serve in a background thread; returns the page's URL."""
        import uvicorn

        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host.strip("[]"), self._port))
        except OSError as exc:
            sock.close()
            raise DashboardError(f"--web-port {self._port}: cannot listen on {self.host}:{self._port} ({exc.strerror}): "
                                 "pick another port, or 0 for a free one") from None
        sock.listen(64)
        self._sock = sock
        config = uvicorn.Config(self.app(), log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=2)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._serve, name="aftershock-dashboard", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the dashboard's server did not start")
            time.sleep(0.02)
        return self.url

    def _serve(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.close()

    async def _main(self) -> None:
        self._events_waiting = asyncio.Event()
        self._events_waiting.set()  # events journaled before the loop ran
        helpers = [asyncio.create_task(self._fold_events()), asyncio.create_task(self._judge_slos())]
        try:
            await self._server.serve(sockets=[self._sock])
        finally:
            for task in helpers:
                task.cancel()

    async def _fold_events(self) -> None:
        """Fold the journal's events as they come, in a worker thread (see RunFeed.on_event)."""
        assert self._events_waiting is not None
        while True:
            await self._events_waiting.wait()
            self._events_waiting.clear()
            await asyncio.to_thread(self.feed.drain)

    async def _judge_slos(self) -> None:
        """Live SLO standings about once a second (each judgement reads every window so far)."""
        while True:
            await asyncio.sleep(1.0)
            await asyncio.to_thread(self.feed.evaluate_slos)

    def stop(self) -> None:
        """Close the streams (pages keep what they show) and the server. Idempotent."""
        if self._thread is None:
            return
        self.feed.wait_folded(timeout=10)  # the run's end reaches the pages first
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(self._fan_out, None)
            except RuntimeError:
                pass
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._thread = None
        if self._sock is not None:
            self._sock.close()


def render_page(title: str, can_stop: bool) -> str:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("harness.dashboard"), autoescape=select_autoescape(["html", "j2"]))
    return env.get_template("dashboard.html.j2").render(title=title, can_stop=can_stop)
