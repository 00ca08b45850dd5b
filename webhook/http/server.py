"""Run the app under uvicorn (uvloop + httptools) over TLS, with a graceful drain.

The TLS context is built by `certs.tls` and kept for the life of the process, so a certificate
reloader can load a new pair into it. On the first SIGTERM (or SIGINT) `/readyz` turns
not-ready at once, requests keep being served for `drain_seconds` so endpoints can drop the
pod, then uvicorn stops accepting and lets in-flight requests finish. A second signal exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import ssl
import time
from collections.abc import Callable, Coroutine, Generator, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

import uvicorn

from podtier.webhook.http.app import AppState, create_app, create_health_app
from podtier.webhook.http.protocol import MAX_HEADER_BYTES, GuardedHttpToolsProtocol

log = logging.getLogger("podtier.server")

# Deliberate network limits (see docs/operations.md).
KEEP_ALIVE_SECONDS = 75  # longer than kube-apiserver's idle connection reuse window
BACKLOG = 1024


@dataclass(frozen=True)
class Listen:
    host: str
    port: int
    metrics_port: int = 0
    drain_seconds: float = 0.0
    graceful_timeout: int = 25


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, state: AppState, drain_seconds: float) -> None:
        super().__init__(config)
        self._state = state
        self._drain_seconds = drain_seconds
        self._stop_at: float | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._stop_at is None:
            self._state.shutting_down = True
            self._stop_at = time.monotonic() + self._drain_seconds
            log.info("signal %s: not ready now, draining for %.1f s", sig, self._drain_seconds)
        else:
            super().handle_exit(sig, frame)

    async def on_tick(self, counter: int) -> bool:
        if self._stop_at is not None and time.monotonic() >= self._stop_at:
            self.should_exit = True
        return await super().on_tick(counter)


class _QuietServer(uvicorn.Server):
    """A side listener: the main server owns the signals."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _config(
    app: Any, host: str, port: int, ctx: ssl.SSLContext | None, graceful: int
) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http=GuardedHttpToolsProtocol,  # httptools, plus a header cap and a head deadline
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # the API server calls directly; no client address is used
        date_header=False,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=graceful,
        h11_max_incomplete_event_size=MAX_HEADER_BYTES,
        backlog=BACKLOG,
        ssl_context_factory=(lambda config, default: ctx) if ctx is not None else None,
    )


async def serve(
    state: AppState,
    listen: Listen,
    ssl_context: ssl.SSLContext,
    background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
    on_started: Callable[[], None] | None = None,
) -> None:
    main = _DrainingServer(
        _config(create_app(state), listen.host, listen.port, ssl_context, listen.graceful_timeout),
        state,
        listen.drain_seconds,
    )
    servers: list[uvicorn.Server] = [main]
    if listen.metrics_port:
        side = _config(create_health_app(state), listen.host, listen.metrics_port, None, 1)
        servers.append(_QuietServer(side))

    tasks = [asyncio.create_task(job()) for job in background]
    side_tasks = [asyncio.create_task(s.serve()) for s in servers[1:]]
    if on_started is not None:
        asyncio.get_running_loop().call_later(0, _when_started, main, on_started)
    try:
        await main.serve()
    finally:
        for server in servers[1:]:
            server.should_exit = True
        for task in tasks:
            task.cancel()
        await asyncio.gather(*side_tasks, *tasks, return_exceptions=True)


def _when_started(server: uvicorn.Server, callback: Callable[[], None]) -> None:
    if server.started:
        callback()
    else:
        asyncio.get_running_loop().call_later(0.05, _when_started, server, callback)


def run(state: AppState, listen: Listen, ssl_context: ssl.SSLContext, **kwargs: Any) -> None:
    import uvloop

    # Everything loaded so far (the kubernetes client's models, the policy) lives as long as the
    # process: move it out of the collector's sight, so a full collection does not walk it and
    # pause the event loop for tens of milliseconds.
    gc.collect()
    gc.freeze()
    uvloop.run(serve(state, listen, ssl_context, **kwargs))
