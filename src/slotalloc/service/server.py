"""HTTP booking service over :class:`slotalloc.service.ledger.DurableAllocator` (FastAPI).

FastAPI and uvicorn are imported only here (the ``server`` extra), so
``import slotalloc`` never needs them.

Access: every endpoint but ``GET /healthz`` needs ``Authorization: Bearer
TOKEN`` with a token of the auth file (:mod:`slotalloc.service.auth`): 401 without a
valid token, 403 with a token of the wrong role. A booking token may book,
cancel a booking whose secret it presents (``X-Booking-Secret``), read one
booking and see session counts; only an operator token may export, rebalance,
compact, see which requests hold a session, or cancel any booking.

Writes: ``POST /bookings`` and ``DELETE /bookings/{id}`` are answered by a
lean ASGI layer (:class:`~slotalloc.service.writes.WritePath`; the FastAPI routes of the same paths
document them and share its code) that hands each operation to the single
writer thread (:class:`slotalloc.service.ledger.GroupCommitter`) and awaits it:
operations arriving together share one transaction and one fsync, and every
reply is sent after its commit. A 2xx reply carries ``X-Ledger-Seq`` and ``X-Ledger-Hash``: the
row holding that very operation and its chain hash, read when the row was made.

Reads and slow work (status, sessions, export, rebalance, compaction) are plain
``def`` handlers in the thread pool; the export copies the state under the
lock and builds its JSON outside it.

Bounded work: a body over :data:`MAX_BODY_BYTES` gets 413, a request head
over 16 KiB 431, a request whose headers (``header_timeout``) or body
(``body_timeout``) do not arrive in time is dropped (408 for a body), idle
keep-alive connections close after ``keep_alive`` seconds, connections beyond
``max_connections`` are closed at once, ``time_limit`` and ``seed`` of a
rebalance are bounded and only one rebalance runs at a time (409). JSON with
``NaN`` or ``Infinity`` is refused (422). No request body, token or child's
data is ever logged: validation errors are answered without the input, and an
unexpected exception is logged as its type and the path only.

Status codes: 201 booked; 200 done; 401 no valid token; 403 not allowed (role,
priority, another booking's secret needed); 404 unknown id; 408 body too slow;
409 request id used before, a request already cancelled, or a rebalance refused
or already running; 413 body too large; 431 headers too large; 422 malformed
body or query, or a refused booking; 500 an unexpected error (nothing changed);
503 the ledger could not commit (nothing changed) or is unusable. Every route
declares exactly the codes it can return, each with its body's schema
(``/openapi.json``); ``/docs`` is Swagger UI served from the package's own
files (the ``fastapi-offline`` wheel), never from a CDN.

Access log: one line per HTTP request on the ``slotalloc.access`` logger
(INFO): method, route template (``/bookings/{request_id}``, never the path as
sent), status, milliseconds and the caller's label (``booking#0``, ``-`` when
no valid token was shown); never a query string, body, token, id or household.

Modules: :mod:`~slotalloc.service.http` (limits and the ASGI layers),
:mod:`~slotalloc.service.writes` (the write path), :mod:`~slotalloc.service.routes`
(the routes), :mod:`~slotalloc.service.schemas` (bodies, replies and documented
statuses), :mod:`~slotalloc.service.apidocs` (``/openapi.json`` and ``/docs``),
:mod:`~slotalloc.service.logs` (the log format); this module builds the app and
runs the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from slotalloc.service import operator_page
from slotalloc.service.apidocs import install_docs, openapi_schema
from slotalloc.service.auth import AuthConfig, load_or_create_auth
from slotalloc.service.commit import GroupCommitter
from slotalloc.service.durable import DurableAllocator
from slotalloc.service.http import MAX_BODY_BYTES, BodyLimit, Guard, Limits, StrictRoute
from slotalloc.service.logs import OneLineFormatter, configure_logging
from slotalloc.service.routes import (
    DEFAULT_PAGE,
    MAX_PAGE,
    add_booking_routes,
    add_error_handlers,
    add_health_route,
    add_lookup_routes,
    add_operator_routes,
    add_session_routes,
)
from slotalloc.service.schemas import MAX_SEED, MAX_TIME_LIMIT
from slotalloc.service.writes import SecretPool, WritePath

if TYPE_CHECKING:
    import uvicorn

__all__ = [
    "DEFAULT_PAGE",
    "MAX_BODY_BYTES",
    "MAX_PAGE",
    "MAX_SEED",
    "MAX_TIME_LIMIT",
    "Limits",
    "OneLineFormatter",
    "build_server",
    "configure_logging",
    "create_app",
    "run_server",
    "serve",
    "tune_gc",
]

log = logging.getLogger(__name__)


#: Young-generation threshold of the cyclic collector while serving (CPython's default: 700).
GC_THRESHOLD = (50_000, 20, 100)


def tune_gc() -> None:
    """Make the cyclic garbage collector cheap for a long-running service.

    The recovered state (hundreds of thousands of objects for a city) is moved
    to the permanent generation (``gc.freeze``) and young collections run
    every :data:`GC_THRESHOLD` allocations rather than 700: the state builds
    no reference cycles, but each older-generation pass traversed all of it,
    stalling every request in flight. Measured at 32 clients: p99 from about
    100 ms to under 50 ms, throughput up about 10 %. Cycles (asyncio's, on
    errors) are still collected, just less often.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLD)


# ---------------------------------------------------------------- the app


def create_app(
    allocator: DurableAllocator,
    auth: AuthConfig,
    *,
    limits: Limits | None = None,
    commit_window: float = 0.002,
) -> FastAPI:
    """The booking API over one durable allocator.

    Parameters
    ----------
    allocator
        The engine and its ledger; the app never closes it.
    auth
        The tokens accepted (there is no unauthenticated mode).
    limits
        Body size and timeout (the connection-level limits are applied by
        :func:`build_server`).
    commit_window
        The group commit's longest wait for more operations, in seconds.

    Returns
    -------
    FastAPI
        The application, with the body limit, the error guard and access log,
        the OpenAPI schema at ``/openapi.json`` (every status of every route)
        and Swagger UI at ``/docs`` from local files; its writer thread is
        stopped at shutdown (``app.state.committer``).
    """
    lim = limits or Limits()
    committer = GroupCommitter(allocator, window=commit_window)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await asyncio.to_thread(committer.close)

    app = FastAPI(
        title="slotalloc booking service",
        version="2",
        description="FORMAT §3 online bookings over a durable ledger; Bearer tokens.",
        lifespan=lifespan,
        # /docs is served below from local files; ReDoc would load from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.router.route_class = StrictRoute
    app.state.committer = committer
    app.state.auth = auth
    pool = SecretPool()
    add_error_handlers(app)
    add_booking_routes(app, committer, pool)
    add_lookup_routes(app, allocator)
    add_session_routes(app, allocator)
    add_operator_routes(app, allocator)
    add_health_route(app, allocator, auth)
    install_docs(app)
    app.openapi = lambda: openapi_schema(app)  # type: ignore[method-assign]

    operator_page.install(app, allocator, auth)
    app.add_middleware(WritePath, auth=auth, committer=committer, pool=pool)
    app.add_middleware(
        BodyLimit,
        limit=lim.max_body_bytes,
        timeout=lim.body_timeout,
        header_limit=lim.max_header_bytes,
    )
    # Added last: outermost of ours, so it sees every exception and every reply.
    app.add_middleware(Guard, routes=app.router.routes)
    return app


# ---------------------------------------------------------------- the server


def _protocol_class(limits: Limits) -> type[Any]:
    """uvicorn's h11 protocol with a header timeout and a connection cap."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    refused = [0, 0.0]  # connections refused since the last log line, and its time

    class TimedH11Protocol(H11Protocol):
        _header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            if len(self.connections) > limits.max_connections:
                refused[0] += 1
                now = time.monotonic()
                if now - refused[1] >= 10:  # one line per 10 s at most, even under a flood
                    log.warning(
                        "%d connection(s) refused: over %d open", refused[0], limits.max_connections
                    )
                    refused[0], refused[1] = 0, now
                transport.close()
                return
            self._arm()

        def _arm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
            self._header_timer = self.loop.call_later(limits.header_timeout, self._timed_out)

        def _timed_out(self) -> None:
            self._header_timer = None
            # IDLE: this cycle's request line and headers are not complete yet.
            if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
                log.debug("connection dropped: headers not received in time")
                self.transport.close()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return TimedH11Protocol


def build_server(
    app: FastAPI, host: str = "127.0.0.1", port: int = 8000, *, limits: Limits | None = None
) -> uvicorn.Server:
    """A uvicorn server for the app: one worker, the limits applied, logging left to us.

    Parameters
    ----------
    app
        From :func:`create_app`.
    host, port
        Where to listen.
    limits
        Timeouts and connection cap.

    Returns
    -------
    uvicorn.Server
        Call ``run()`` (or ``serve()`` in a loop); ``should_exit = True`` stops it.
    """
    import uvicorn

    lim = limits or Limits()
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        workers=1,
        http=_protocol_class(lim),
        log_config=None,
        access_log=False,
        timeout_keep_alive=max(1, round(lim.keep_alive)),
        timeout_graceful_shutdown=5,
        h11_max_incomplete_event_size=lim.max_header_bytes,
        server_header=False,
    )
    return uvicorn.Server(config)


def serve(
    instance_path: str,
    db: str,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    auth_file: str | None = None,
    log_level: str = "info",
    recover: bool = False,
    limits: Limits | None = None,
    commit_window: float = 0.002,
    solution_path: str | None = None,
) -> None:
    """Run the booking service until interrupted (``slotalloc serve``).

    Configures logging (stderr, one line per event), opens the ledger (checking
    it whole; ``recover`` salvages a damaged one and logs what it kept), loads
    the auth file or generates one beside the ledger (``DB.auth.json``, mode
    0600; its path, never its tokens, is logged), serves HTTP on
    ``host:port`` with one worker process, and on a clean shutdown snapshots
    the state so the next start is quick.

    Parameters
    ----------
    instance_path
        The starting instance file.
    db
        The ledger file.
    host, port
        Where to listen.
    auth_file
        The tokens (see :mod:`slotalloc.service.auth`); None: ``DB.auth.json``,
        generated when absent.
    log_level
        ``debug``, ``info``, ``warning`` or ``error``.
    recover
        Start on a damaged ledger by keeping its valid part.
    limits
        Timeouts, sizes and the connection cap.
    commit_window
        The group commit's longest wait for more operations, in seconds.
    solution_path
        A batch plan of the instance to start from (``serve --solution``):
        its assignments are the places held and the other requests wait, as
        :meth:`slotalloc.online.Allocator.from_result` does. The ledger is
        bound to it.

    Raises
    ------
    InputError
        The instance, solution or auth file is unreadable or invalid.
    InvalidStateError
        The plan's assignments (or the instance's bookings) break a rule.
    LedgerError
        The ledger is empty, truncated, altered or belongs to another instance
        (the message is one line; ``recover`` is not given).
    ValueError
        An unknown log level.
    """
    from slotalloc.io import load_instance, load_solution

    configure_logging(log_level)
    instance = load_instance(instance_path)
    start = None if solution_path is None else load_solution(solution_path)
    auth = None if auth_file is None else load_or_create_auth(auth_file, db)
    allocator = DurableAllocator(
        instance, db, recover=recover, exclusive=True, background_checkpoint=True, start=start
    )
    try:
        # A generated auth file is made only once the ledger opened.
        config = _logged_auth(auth if auth is not None else load_or_create_auth(None, db))
        app = create_app(allocator, config, limits=limits, commit_window=commit_window)
        server = build_server(app, host, port, limits=limits)
        tune_gc()
        log.info("serving %s with ledger %s on %s:%d", instance_path, os.fspath(db), host, port)
        run_server(server, app)
    finally:
        allocator.close()
        log.info("ledger %s closed at row %d", os.fspath(db), allocator.head[0])


def _logged_auth(auth: tuple[AuthConfig, str, bool]) -> AuthConfig:
    """The configuration, after saying where it came from (its path, never its tokens)."""
    config, path, created = auth
    if created:
        log.warning("generated auth file %s (mode 0600): its tokens are the only access", path)
    else:
        log.info("auth file %s: %r", path, config)
    return config


def run_server(server: uvicorn.Server, app: FastAPI) -> None:
    """Serve until SIGTERM or SIGINT, then stop the app's writer thread (its queue drained).

    What :func:`serve` runs once the ledger is open; the caller closes the allocator.

    Parameters
    ----------
    server
        From :func:`build_server`.
    app
        The app it serves, from :func:`create_app`.
    """
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
        # against the handlers it found: make those no-ops so the ledger is closed
        # (and snapshotted) by the caller rather than the process dying on the re-raise.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
    try:
        server.run()
    finally:
        app.state.committer.close()
