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
lean ASGI layer (:class:`WritePath`; the FastAPI routes of the same paths
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
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gc
import hashlib
import importlib.util
import json
import logging
import os
import re
import secrets
import signal
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.json_schema import SkipJsonSchema
from starlette.routing import BaseRoute, Match

from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    DuplicateRequestError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.models import Child, Instance, Request, Solution
from slotalloc.rules import Rule
from slotalloc.service import operator_page
from slotalloc.service.auth import AuthConfig, Principal, load_or_create_auth
from slotalloc.service.ledger import (
    BookOp,
    CancelOp,
    DurableAllocator,
    GroupCommitter,
    LedgerUnavailableError,
    LedgerWriteError,
    NotPermittedError,
    RebalanceBusyError,
    RebalanceRejectedError,
)

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
    "serve",
    "tune_gc",
]

log = logging.getLogger(__name__)
#: One line per HTTP request (see :class:`Guard`); silence it with ``setLevel(WARNING)``.
access_log = logging.getLogger("slotalloc.access")

#: Largest request body accepted (a request has at most 10 preferences; this is generous).
MAX_BODY_BYTES = 64 * 1024
#: Largest ``limit`` of ``GET /sessions``; the default page is :data:`DEFAULT_PAGE`.
MAX_PAGE = 1000
#: ``limit`` of ``GET /sessions`` when none is given.
DEFAULT_PAGE = 100
#: Largest ``time_limit`` of ``POST /rebalance``, in seconds.
MAX_TIME_LIMIT = 60.0
#: ``seed`` of ``POST /rebalance`` is in ``[0, MAX_SEED)``.
MAX_SEED = 2**31

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


@dataclass(frozen=True)
class Limits:
    """Bounds on what one client can make the service do.

    Raises
    ------
    ValueError
        A timeout outside (0, 3600] seconds, or a size or count below 1.

    Attributes
    ----------
    header_timeout
        Seconds for a request's headers to arrive (from the connection, or from
        the end of the previous reply); then the connection is closed.
    body_timeout
        Seconds for the whole body to arrive once the headers did; then 408.
    keep_alive
        Seconds an idle keep-alive connection stays open.
    max_connections
        Open connections beyond this are closed at once.
    max_body_bytes
        Larger bodies get 413 before any parsing.
    max_header_bytes
        Larger request heads are refused: 400 by h11 while one is still
        arriving, 431 once it has.
    """

    header_timeout: float = 10.0
    body_timeout: float = 10.0
    keep_alive: float = 5.0
    max_connections: int = 1000
    max_body_bytes: int = MAX_BODY_BYTES
    max_header_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keep_alive"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value <= 3600):
                raise ValueError(f"{name} must be a number of seconds in (0, 3600]")
        for name in ("max_connections", "max_body_bytes", "max_header_bytes"):
            value = getattr(self, name)
            if not (isinstance(value, int) and value >= 1):
                raise ValueError(f"{name} must be a positive integer")


# ---------------------------------------------------------------- logging


class OneLineFormatter(logging.Formatter):
    """One line per record: newlines escaped, an exception shown as its type only.

    An exception's message or traceback can quote the data being processed
    (a request body, a child's birth date); its type cannot.
    """

    def formatException(self, ei: Any) -> str:
        exc_type = ei[0]
        return f"[exception {exc_type.__name__ if exc_type else 'unknown'}]"

    def formatStack(self, stack_info: str) -> str:
        return ""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace("\r", "\\r").replace("\n", " | ")


def configure_logging(level: str = "info") -> logging.Handler:
    """Send the service's log (and uvicorn's) to stderr, one line per event.

    Parameters
    ----------
    level
        ``debug``, ``info``, ``warning``, ``error`` or ``critical``.

    Returns
    -------
    logging.Handler
        The handler installed on the root logger (replacing any other).

    Raises
    ------
    ValueError
        An unknown level.
    """
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        raise ValueError(f"unknown log level {level!r}")
    handler = logging.StreamHandler()
    handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    root.setLevel(lvl)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers.clear()
        lg.propagate = True
        lg.setLevel(lvl)
    return handler


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


# ---------------------------------------------------------------- ASGI layers


async def _send_json(send: _Send, status: int, detail: str, close: bool = False) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
    ]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, 408 for one slower than ``timeout``,
    431 for a request head over ``header_limit`` bytes.

    Checks ``Content-Length`` up front and counts the bytes of a chunked body
    as they arrive, so an oversized body is never buffered beyond the limit;
    the whole body must arrive within ``timeout`` seconds of the headers.
    """

    def __init__(
        self,
        app: _ASGIApp,
        limit: int = MAX_BODY_BYTES,
        timeout: float | None = None,
        header_limit: int | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout
        self.header_limit = header_limit

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if self.header_limit is not None:
            # h11 bounds a head only while it is incomplete; one that arrives whole is not.
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            size += sum(len(n) + len(v) + 4 for n, v in headers)
            if size > self.header_limit:
                await _send_json(send, 431, "request headers too large", close=True)
                return
        for name, value in headers:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await _send_json(send, 413, "request body too large", close=True)
                    return
        # Read the whole body first (it is small by construction): a limit
        # enforced inside the app's own receive would be turned into a 400 by
        # FastAPI's body parsing, and half a body must never reach a handler.
        messages: list[_Message] = []
        seen = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    messages.append(message)
                    if message["type"] != "http.request":
                        break
                    seen += len(message.get("body", b""))
                    if seen > self.limit:
                        break
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            log.info("408: request body too slow on %s %s", scope["method"], scope["path"])
            await _send_json(send, 408, "request body too slow", close=True)
            return
        if seen > self.limit:
            await _send_json(send, 413, "request body too large", close=True)
            return
        replay = iter(messages)

        async def buffered_receive() -> _Message:
            nxt = next(replay, None)
            return nxt if nxt is not None else await receive()

        await self.app(scope, buffered_receive, send)


#: Scope keys our layers fill for the access log: the caller's label, and the
#: route template of a request :class:`WritePath` answers (it bypasses routing).
_CALLER_KEY = "slotalloc.caller"
_ROUTE_KEY = "slotalloc.route"


def _template_of(route: Any) -> str | None:
    # A route's path without its convertors; a mount's ends in "/{path}".
    fmt = getattr(route, "path_format", None)
    return fmt if isinstance(fmt, str) else None


class Guard:
    """ASGI middleware: the access log, and an unexpected exception as a bare 500 and one line.

    Both lines name the route template (``/bookings/{request_id}``), never the
    path as sent, the query string, the body or an exception's message, since
    any of them can carry a request id, a child id or a household. The access
    line (logger ``slotalloc.access``, INFO) also has the method, the status,
    the milliseconds and the caller's label (``-`` without a valid token).

    Parameters
    ----------
    app
        The application inside.
    routes
        The app's routes, to find the template of a request the router did
        not mark (``scope["route"]`` is set by the router on a match).
    """

    def __init__(self, app: _ASGIApp, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.routes = routes

    def _template(self, scope: _Scope, path: str, root_path: str) -> str:
        got = scope.get(_ROUTE_KEY) or _template_of(scope.get("route"))
        if got:
            return str(got)
        # Routing rewrote the scope (a mount changes root_path): match a copy of the original.
        probe = {"type": "http", "method": scope["method"], "path": path, "root_path": root_path}
        for route in self.routes:
            match, _child = route.matches(probe)
            if match is not Match.NONE:
                return _template_of(route) or "<route>"
        return "<no route>"

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 0
        t0 = time.perf_counter()
        path, root_path = scope["path"], scope.get("root_path", "")

        async def watch(message: _Message) -> None:
            nonlocal started, status
            if message["type"] == "http.response.start":
                started = True
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as e:
            where = self._template(scope, path, root_path)
            log.error("500: unexpected %s in %s %s", type(e).__name__, scope["method"], where)
            if not started:
                status = 500
                await _send_json(send, 500, "internal error; nothing was changed by it")
        if access_log.isEnabledFor(logging.INFO):
            ms = 1000 * (time.perf_counter() - t0)
            access_log.info(
                "%s %s %d %.1f ms %s",
                scope["method"],
                self._template(scope, path, root_path),
                status,
                ms,
                scope.get(_CALLER_KEY, "-"),
            )


def _refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not allowed in JSON", name, 0)


class _StrictJSONRequest(HTTPRequest):
    """A request whose JSON body refuses ``NaN``, ``Infinity`` and ``-Infinity``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, parse_constant=_refuse_constant)
        return self._json


class _StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[HTTPRequest], Any]:
        handler = super().get_route_handler()

        async def strict(request: HTTPRequest) -> Any:
            return await handler(_StrictJSONRequest(request.scope, request.receive))

        return strict


# ---------------------------------------------------------------- bodies


class BookBody(BaseModel):
    """``POST /bookings``: a FORMAT §3 book event without ``op``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request: Request
    children: list[Child] | None = None


class RebalanceBody(BaseModel):
    """``POST /rebalance`` options."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allow_drops: bool = False
    method: Literal["fcfs", "auto", "cp-sat"] = "fcfs"
    time_limit: float | None = Field(default=None, gt=0, le=MAX_TIME_LIMIT, allow_inf_nan=False)
    seed: int = Field(default=0, ge=0, lt=MAX_SEED)


# ---------------------------------------------------------------- replies (OpenAPI)
#
# The replies are built as plain dicts and sent as they are (the hot paths skip
# any response-model serialisation); these models only describe them in the
# OpenAPI schema. ``extra="forbid"`` makes the schema closed, so a key added to
# a reply but not here fails tests/test_server_api.py.


class _ReplyModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Problem(_ReplyModel):
    """An error: one sentence, never quoting the input or a child's data."""

    detail: str


class ValidationIssue(_ReplyModel):
    """One problem of a malformed body or query: where, what, and its kind (never the input)."""

    loc: list[str | int]
    msg: str
    type: str


class ValidationProblem(_ReplyModel):
    """A malformed body or query: the problems found."""

    detail: list[ValidationIssue]


class Unprocessable(_ReplyModel):
    """A 422: a refusal (one sentence) or a malformed body or query (a list of problems)."""

    detail: str | list[ValidationIssue]


class BookingReply(_ReplyModel):
    """``201`` of ``POST /bookings``: where the request stands, and its secret."""

    request: str
    session: str | None = Field(description="the session taken; null when waitlisted")
    waitlisted: bool
    reason: Rule | None = Field(
        description=(
            "why it was waitlisted: the rule its first preference breaks now (eligibility, "
            "capacity, group_cap, caregivers, overlap or per_child_cap); null when placed"
        )
    )
    secret: str = Field(
        description="lets its holder cancel this booking and book its children again "
        "(X-Booking-Secret); shown only here"
    )


class PlacementReply(_ReplyModel):
    """A request that took a place in a session."""

    request: str
    session: str


class CancelReply(_ReplyModel):
    """``200`` of ``DELETE /bookings/{id}``."""

    request: str
    cancelled: Literal[True]
    promoted: list[PlacementReply] = Field(description="waitlisted requests that took a place")


class StatusReply(_ReplyModel):
    """Where a request stands."""

    request: str
    session: str | None = Field(description="the session held, or null")
    waitlisted: bool
    cancelled: bool = Field(description="the id is used but the request is gone")
    position: int | None = Field(
        ge=1, description="1-based place in the waitlist (1 is served first); null if not waiting"
    )


class RequestsReply(_ReplyModel):
    """``GET /bookings?child=`` or ``?household=``: the live requests, in request order."""

    requests: list[StatusReply]


class GroupReply(_ReplyModel):
    """One age group in one session."""

    group: str
    taken: int
    cap: int
    ratio: int
    caregivers_needed: int | float = Field(description="a float for pooled staffing")


class SessionReply(_ReplyModel):
    """One session's places, caregivers and waiting requests."""

    session: str
    site: str
    start: str = Field(description="ISO 8601 with offset, as the instance gives it")
    end: str
    capacity: int
    taken: int
    caregivers_available: int
    caregivers_needed: int | float = Field(description="a float for pooled staffing")
    staffing: Literal["per_group", "pooled"]
    waiting: int = Field(
        description="waitlisted requests with this session among the preferences they are "
        "eligible for"
    )
    # Absent (not null) for booking tokens: only an operator sees who holds a place.
    requests: list[str] | SkipJsonSchema[None] = Field(
        default=None, description="the holders, in request order: operator tokens only"
    )
    groups: list[GroupReply]


class SessionsPage(_ReplyModel):
    """``GET /sessions``: one page of sessions, in instance order (or the order of ``id``)."""

    sessions: list[SessionReply]
    total: int = Field(description="sessions asked for (all, or those named by id)")
    offset: int
    limit: int
    next: int | None = Field(description="the offset of the next page; null on the last")


class ExportReply(_ReplyModel):
    """``GET /export``: the FORMAT §3 state export, accepted by ``slotalloc verify``."""

    instance: Instance
    solution: Solution


class MoveReply(_ReplyModel):
    """A request the rebalance moved."""

    model_config = ConfigDict(populate_by_name=True)

    request: str
    from_: str = Field(alias="from")
    to: str


class DropReply(_ReplyModel):
    """A request the rebalance dropped (it joined the end of the waitlist)."""

    model_config = ConfigDict(populate_by_name=True)

    request: str
    from_: str = Field(alias="from")


class RebalanceReply(_ReplyModel):
    """``POST /rebalance``: what changed."""

    moved: list[MoveReply]
    dropped: list[DropReply]
    placed: list[PlacementReply] = Field(description="waitlisted requests the optimiser placed")
    promoted: list[PlacementReply] = Field(description="placed by the waitlist scan after it")
    kept: int
    ledger_seq: int | None = Field(description="the last ledger row written; null if none")
    stats: dict[str, Any]


class CompactReply(_ReplyModel):
    """``POST /compact``: what the compaction erased, and the old and new heads."""

    old_first: int
    old_head: int
    old_head_hash: str
    base_seq: int
    base_hash: str
    erased_children: int
    erased_requests: int


class HealthReply(_ReplyModel):
    """``GET /healthz``: liveness; the ledger head only for a valid token."""

    status: Literal["ok"]
    ledger_seq: int | SkipJsonSchema[None] = None
    ledger_hash: str | SkipJsonSchema[None] = None


class Unavailable(_ReplyModel):
    """``503`` of ``GET /healthz``: the allocator refuses operations; restart the service."""

    status: Literal["unavailable"]


_RECEIPT_HEADERS = {
    "X-Ledger-Seq": {
        "description": "the ledger row holding this operation",
        "schema": {"type": "integer"},
    },
    "X-Ledger-Hash": {
        "description": "that row's chain hash (hex), read when the row was made",
        "schema": {"type": "string"},
    },
}


def _doc(
    model: type[BaseModel], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    out: dict[str, Any] = {"model": model, "description": description}
    if headers:
        out["headers"] = headers
    return out


#: Answered by the layers around every route (BodyLimit, Guard), whatever the route.
_TRANSPORT: dict[int | str, dict[str, Any]] = {
    408: _doc(Problem, "The body did not arrive in time; the connection is closed."),
    413: _doc(Problem, "The body is over the size limit; nothing was parsed."),
    431: _doc(Problem, "The request head is over the size limit."),
    500: _doc(Problem, "An unexpected error; nothing was changed by it."),
}
_401 = _doc(
    Problem,
    "No valid bearer token.",
    {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
)
_403_OPERATOR = _doc(Problem, "A valid token, but not an operator's.")
_503_WRITE = _doc(
    Problem,
    "Not committed, nothing changed (retry as is); or the ledger is unusable and the "
    "service must restart.",
)


def _responses(extra: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    return {**extra, **_TRANSPORT}


#: Swagger UI's "Authorize" sends the bearer token (the scheme is added by the app's schema).
_BEARER: dict[str, Any] = {"security": [{"bearer": []}]}


def _receipt(seq: int, hash_hex: str) -> dict[str, str]:
    return {"X-Ledger-Seq": str(seq), "X-Ledger-Hash": hash_hex}


def _bearer(request: HTTPRequest) -> str | None:
    value = request.headers.get("authorization")
    if not value:
        return None
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


_UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}


def _route_of(request: HTTPRequest) -> str:
    """The request's route template (a raw path can name a request, a query a child)."""
    return _template_of(request.scope.get("route")) or "<no route>"


async def _who(request: HTTPRequest) -> Principal:
    """The caller of a request (401 without a valid token)."""
    auth: AuthConfig = request.app.state.auth
    principal = auth.authenticate(_bearer(request))
    if principal is None:
        log.info("401 on %s %s", request.method, _route_of(request))
        raise HTTPException(401, "a valid bearer token is required", headers=_UNAUTHORIZED)
    request.scope[_CALLER_KEY] = principal.label
    return principal


async def _operator(request: HTTPRequest) -> Principal:
    """An operator caller (401 without a valid token, 403 with another role's)."""
    principal = await _who(request)
    if not principal.is_operator:
        log.info("403 for %s on %s %s", principal.label, request.method, _route_of(request))
        raise HTTPException(403, "this needs an operator token")
    return principal


Caller = Annotated[Principal, Depends(_who)]
Operator = Annotated[Principal, Depends(_operator)]
SecretHeader = Annotated[
    str | None,
    Header(
        alias="X-Booking-Secret",
        description="a booking's secret, from the reply that booked it",
    ),
]


# ---------------------------------------------------------------- the write path


class _SecretPool:
    """Per-booking secrets: 24 random bytes (``secrets``-grade), URL-safe base64.

    Drawn from the OS's CSPRNG 256 at a time: one ``getrandom`` per secret
    released the GIL on every booking, which the writer thread then kept for
    a while (measured: a sixth of the event loop's time under load).
    """

    def __init__(self, size: int = 24, batch: int = 256) -> None:
        self._size, self._batch = size, batch
        self._buf = b""
        self._at = 0
        self._lock = threading.Lock()

    def take(self) -> str:
        with self._lock:
            if self._at + self._size > len(self._buf):
                self._buf, self._at = secrets.token_bytes(self._size * self._batch), 0
            chunk = self._buf[self._at : self._at + self._size]
            self._at += self._size
        return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode()


def _problem(status: int, detail: Any, headers: dict[str, str] | None = None) -> _Reply:
    return status, {"detail": detail}, headers or {}


_Reply = tuple[int, dict[str, Any], dict[str, str]]


def _booking_refusal(e: BookingError, rid: str) -> _Reply:
    if isinstance(e, DuplicateRequestError):
        return _problem(409, f"{e}; GET /bookings/{rid} for its outcome")
    if isinstance(e, AlreadyCancelledError):
        # 409, not 404: the id is known, and a retried cancel must not look like a typo.
        return _problem(409, f"request {rid} is already cancelled")
    if isinstance(e, NotPermittedError):
        return _problem(403, str(e))
    if isinstance(e, UnknownRequestError):
        return _problem(404, str(e))
    # The rest (IneligibleRequestError, unknown child or session, child conflict) are
    # problems of the request itself; their messages name no birth date.
    return _problem(422, str(e))


async def _committed(committer: GroupCommitter, op: BookOp | CancelOp) -> Any:
    """The operation's outcome after its commit, or the refusal/failure as an exception."""
    return await committer.submit_async(op)


async def _do_book(
    committer: GroupCommitter,
    pool: _SecretPool,
    caller: Principal,
    body: BookBody,
    proof: str | None,
) -> _Reply:
    req = body.request
    if req.priority > 0 and not caller.may_set_priority:
        return _problem(403, "priority above 0 needs an operator or a priority token")
    secret = pool.take()
    op = BookOp(req, tuple(body.children or ()), secret, proof, caller.is_operator)
    try:
        d = await _committed(committer, op)
    except BookingError as e:
        return _booking_refusal(e, req.id)
    except LedgerWriteError:
        return _problem(503, "not committed, nothing changed; retry")
    except LedgerUnavailableError:
        return _problem(503, "the ledger is unavailable; the service must restart")
    log.debug("book %s: row %d, %s", d.request, d.sequence, d.session or "waitlisted")
    reason = d.reason.value if d.reason is not None else None
    return (
        201,
        {
            "request": d.request,
            "session": d.session,
            "waitlisted": d.waitlisted,
            "reason": reason,
            "secret": secret,
        },
        _receipt(d.sequence, d.hash),
    )


async def _do_cancel(
    committer: GroupCommitter, caller: Principal, request_id: str, proof: str | None
) -> _Reply:
    try:
        c = await _committed(committer, CancelOp(request_id, proof, caller.is_operator))
    except BookingError as e:
        return _booking_refusal(e, request_id)
    except LedgerWriteError:
        return _problem(503, "not committed, nothing changed; retry")
    except LedgerUnavailableError:
        return _problem(503, "the ledger is unavailable; the service must restart")
    log.debug("cancel %s: row %d, %d promoted", c.request, c.sequence, len(c.promoted))
    return (
        200,
        {
            "request": c.request,
            "cancelled": True,
            "promoted": [{"request": p.request, "session": p.session} for p in c.promoted],
        },
        _receipt(c.sequence, c.hash),
    )


def _clean_errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validation errors without their input (it may be a child's data, or a NaN)."""
    return [
        {"loc": [*prefix, *e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


class WritePath:
    """ASGI middleware answering ``POST /bookings`` and ``DELETE /bookings/{id}`` directly.

    The same checks and replies as the FastAPI routes of those paths (which
    document them in the OpenAPI schema and share :func:`_do_book` and
    :func:`_do_cancel`), without FastAPI's routing, dependency solving and
    response classes: measured, those cost more than the booking itself.
    Everything else goes on to the app.
    """

    def __init__(
        self, app: _ASGIApp, *, auth: AuthConfig, committer: GroupCommitter, pool: _SecretPool
    ) -> None:
        self.app = app
        self.auth = auth
        self.committer = committer
        self.pool = pool

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/bookings":
                scope[_ROUTE_KEY] = "/bookings"
                await self._reply(send, await self._book(scope, receive))
                return
            if method == "DELETE" and path.startswith("/bookings/") and len(path) > 10:
                scope[_ROUTE_KEY] = "/bookings/{request_id}"
                await self._reply(send, await self._cancel(scope, path[10:]))
                return
        await self.app(scope, receive, send)

    def _caller(self, scope: _Scope) -> tuple[Principal | None, str | None]:
        token = proof = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                scheme, _, rest = value.decode("latin-1").partition(" ")
                if scheme.lower() == "bearer":
                    token = rest.strip() or None
            elif name == b"x-booking-secret":
                proof = value.decode("latin-1").strip() or None
        principal = self.auth.authenticate(token)
        if principal is None:
            log.info("401 on %s %s", scope["method"], scope[_ROUTE_KEY])
        else:
            scope[_CALLER_KEY] = principal.label
        return principal, proof

    async def _book(self, scope: _Scope, receive: _Receive) -> _Reply:
        caller, proof = self._caller(scope)
        if caller is None:
            return _problem(401, "a valid bearer token is required", _UNAUTHORIZED)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return _problem(400, "the request was not received")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            data = json.loads(b"".join(chunks), parse_constant=_refuse_constant)
        except ValueError:  # JSONDecodeError, and bytes that are not UTF-8
            return _problem(
                422, [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]
            )
        try:
            body = BookBody.model_validate(data)
        except ValidationError as e:
            return _problem(422, _clean_errors(e.errors(), ("body",)))
        return await _do_book(self.committer, self.pool, caller, body, proof)

    async def _cancel(self, scope: _Scope, request_id: str) -> _Reply:
        caller, proof = self._caller(scope)
        if caller is None:
            return _problem(401, "a valid bearer token is required", _UNAUTHORIZED)
        return await _do_cancel(self.committer, caller, request_id, proof)

    @staticmethod
    async def _reply(send: _Send, reply: _Reply) -> None:
        status, payload, extra = reply
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        headers += [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


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
    app.router.route_class = _StrictRoute
    app.state.committer = committer
    app.state.auth = auth
    pool = _SecretPool()
    known_sessions = frozenset(allocator.session_ids)  # fixed by the instance

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Any, exc: RequestValidationError) -> JSONResponse:
        # Location, message and type only: never the input (it may be a child's
        # data, or a NaN that JSON cannot even carry back).
        return JSONResponse({"detail": _clean_errors(exc.errors())}, status_code=422)

    @app.exception_handler(LedgerWriteError)
    async def _write_failed(_req: Any, exc: LedgerWriteError) -> JSONResponse:
        return JSONResponse({"detail": "not committed, nothing changed; retry"}, status_code=503)

    @app.exception_handler(LedgerUnavailableError)
    async def _unavailable(_req: Any, exc: LedgerUnavailableError) -> JSONResponse:
        return JSONResponse(
            {"detail": "the ledger is unavailable; the service must restart"}, status_code=503
        )

    def as_response(reply: _Reply) -> JSONResponse:
        status, payload, headers = reply
        return JSONResponse(payload, status_code=status, headers=headers)

    # POST and DELETE /bookings are answered by WritePath (below) before they reach
    # these routes; the routes document them and give the same replies if reached.
    @app.post(
        "/bookings",
        status_code=201,
        response_model=BookingReply,
        openapi_extra=_BEARER,
        responses=_responses(
            {
                201: {"description": "Booked or waitlisted.", "headers": _RECEIPT_HEADERS},
                401: _401,
                403: _doc(
                    Problem,
                    "priority above 0 without the right, or a child registered by another "
                    "booking (send its secret in X-Booking-Secret)",
                ),
                409: _doc(Problem, "The request id was used before: GET /bookings/{id}."),
                422: _doc(
                    Unprocessable,
                    "A malformed body (a list of problems), or a refused request: unknown "
                    "child or session, a child declared differently, no preference that "
                    "takes its children at their age.",
                ),
                503: _503_WRITE,
            }
        ),
    )
    async def book(body: BookBody, caller: Caller, proof: SecretHeader = None) -> JSONResponse:
        """Book a request: its first feasible preference now, else the end of the waitlist.

        The reply's ``secret`` lets its holder cancel this booking and book its
        children again (``X-Booking-Secret``); it is shown only here. A
        waitlisted reply's ``reason`` names the rule its first preference breaks.
        """
        return as_response(await _do_book(committer, pool, caller, body, proof))

    @app.delete(
        "/bookings/{request_id:path}",
        response_model=CancelReply,
        openapi_extra=_BEARER,
        responses=_responses(
            {
                200: {"description": "Cancelled.", "headers": _RECEIPT_HEADERS},
                401: _401,
                403: _doc(Problem, "The booking's secret is missing or wrong."),
                404: _doc(Problem, "Nothing to cancel: the id was never booked."),
                409: _doc(Problem, "The request is already cancelled."),
                503: _503_WRITE,
            }
        ),
    )
    async def cancel(request_id: str, caller: Caller, proof: SecretHeader = None) -> JSONResponse:
        """Cancel: free its place (then promote from the waitlist) or leave the waitlist.

        Needs the booking's secret in ``X-Booking-Secret``, or an operator token.
        """
        return as_response(await _do_cancel(committer, caller, request_id, proof))

    @app.get(
        "/bookings",
        response_model=RequestsReply,
        openapi_extra=_BEARER,
        responses=_responses(
            {
                401: _401,
                403: _403_OPERATOR,
                422: _doc(Unprocessable, "Not exactly one of child and household, or empty."),
            }
        ),
    )
    def requests_of(
        caller: Operator,
        child: Annotated[
            str | None, Query(min_length=1, description="a child id: its live requests")
        ] = None,
        household: Annotated[
            str | None,
            Query(min_length=1, description="a household: the live requests of its children"),
        ] = None,
    ) -> JSONResponse:
        """The live requests naming a child, or a child of a household (operator), in order.

        Give exactly one of ``child`` and ``household``. Neither is ever logged
        or repeated in an error.
        """
        if (child is None) == (household is None):
            raise HTTPException(422, "give exactly one of child and household")
        found = allocator.requests_of(child=child, household=household)
        return JSONResponse({"requests": [asdict(st) for st in found]})

    @app.get(
        "/bookings/{request_id:path}",
        response_model=StatusReply,
        openapi_extra=_BEARER,
        responses=_responses({401: _401, 404: _doc(Problem, "The id was never used.")}),
    )
    def status(request_id: str, caller: Caller) -> JSONResponse:
        """Where a request stands; ``position`` in the waitlist when waitlisted."""
        try:
            return JSONResponse(asdict(allocator.status(request_id)))
        except UnknownRequestError as e:
            raise HTTPException(404, str(e)) from e

    @app.get(
        "/sessions",
        response_model=SessionsPage,
        openapi_extra=_BEARER,
        responses=_responses(
            {
                401: _401,
                404: _doc(Problem, "An unknown session id."),
                422: _doc(ValidationProblem, "offset or limit out of range."),
            }
        ),
    )
    def sessions(
        caller: Caller,
        id: Annotated[list[str] | None, Query(description="session ids; all when absent")] = None,
        offset: Annotated[int, Query(ge=0, description="sessions to skip")] = 0,
        limit: Annotated[
            int, Query(ge=1, le=MAX_PAGE, description="sessions in this page at most")
        ] = DEFAULT_PAGE,
    ) -> JSONResponse:
        """Places taken, caregivers needed and available, by age group; one page.

        ``requests`` (the holders) only for an operator token. ``next`` is the
        ``offset`` of the next page, null on the last.
        """
        wanted = allocator.session_ids if id is None else id
        for sid in wanted:
            if sid not in known_sessions:  # every id checked, not only this page's
                raise HTTPException(404, f"unknown session {sid!r}")
        page = wanted[offset : offset + limit]
        try:
            out = allocator.session_occupancies(page) if page else []
        except UnknownSessionError as e:
            raise HTTPException(404, str(e)) from e
        if not caller.is_operator:
            for occ in out:
                occ.pop("requests", None)
        end = offset + len(page)
        return JSONResponse(
            {
                "sessions": out,
                "total": len(wanted),
                "offset": offset,
                "limit": limit,
                "next": end if end < len(wanted) else None,
            }
        )

    @app.get(
        "/export",
        response_model=ExportReply,
        openapi_extra=_BEARER,
        responses=_responses({401: _401, 403: _403_OPERATOR}),
    )
    def export(caller: Operator) -> Response:
        """The FORMAT §3 state export (operator): an instance and a solution any verifier checks."""
        inst, sol = allocator.export()
        data = {"instance": inst.model_dump(mode="json"), "solution": sol.model_dump(mode="json")}
        log.info("export by %s: %d requests", caller.label, len(inst.requests))
        return Response(
            json.dumps(data, ensure_ascii=False).encode(), media_type="application/json"
        )

    @app.post(
        "/rebalance",
        response_model=RebalanceReply,
        openapi_extra=_BEARER,
        responses=_responses(
            {
                401: _401,
                403: _403_OPERATOR,
                409: _doc(
                    Problem,
                    "Refused (a drop without allow_drops, the state changed while solving) "
                    "or another rebalance is running.",
                ),
                422: _doc(Unprocessable, "A malformed body, or options out of range."),
                503: _503_WRITE,
            }
        ),
    )
    def rebalance(caller: Operator, body: RebalanceBody | None = None) -> JSONResponse:
        """Run the batch optimiser on the current state (operator); one at a time."""
        opts = body if body is not None else RebalanceBody()
        try:
            out = allocator.rebalance(
                allow_drops=opts.allow_drops,
                method=opts.method,
                time_limit=opts.time_limit,
                seed=opts.seed,
            )
        except RebalanceBusyError as e:
            raise HTTPException(409, str(e)) from e
        except RebalanceRejectedError as e:
            raise HTTPException(409, str(e)) from e
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        log.info("rebalance by %s: ledger row %s", caller.label, out.seq)
        return JSONResponse(
            {
                "moved": [{"request": r, "from": b, "to": a} for r, b, a in out.moved],
                "dropped": [{"request": r, "from": b} for r, b in out.dropped],
                "placed": [{"request": r, "session": a} for r, a in out.placed],
                "promoted": [{"request": p.request, "session": p.session} for p in out.promoted],
                "kept": out.kept,
                "ledger_seq": out.seq,
                "stats": dict(out.stats),
            }
        )

    @app.post(
        "/compact",
        response_model=CompactReply,
        openapi_extra=_BEARER,
        responses=_responses({401: _401, 403: _403_OPERATOR, 503: _503_WRITE}),
    )
    def compact(caller: Operator) -> JSONResponse:
        """Erase cancelled requests and unused children from the ledger (operator).

        The ledger is rewritten as one base row holding the current state; see
        ``docs/server.md`` ("Personal data").
        """
        report = allocator.compact()
        log.info("compaction by %s: base row %d", caller.label, report.base_seq)
        return JSONResponse(asdict(report))

    @app.get(
        "/healthz",
        response_model=HealthReply,
        openapi_extra={"security": [{}, {"bearer": []}]},  # open; a token adds the head
        responses=_responses(
            {503: _doc(Unavailable, "A commit failed beyond recovery; restart the service.")}
        ),
    )
    def healthz(request: HTTPRequest) -> JSONResponse:
        """Liveness (open); with any valid token also the ledger head."""
        principal = auth.authenticate(_bearer(request))
        if principal is not None:
            request.scope[_CALLER_KEY] = principal.label
        if allocator.failure is not None:
            return JSONResponse({"status": "unavailable"}, 503)
        out: dict[str, Any] = {"status": "ok"}
        if principal is not None:
            seq, h = allocator.head
            out.update(ledger_seq=seq, ledger_hash=h)
        return JSONResponse(out)

    _install_docs(app)
    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]

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


#: Where the Swagger UI assets are mounted (``fastapi-offline`` ships them).
DOCS_ASSETS = "/docs/assets"


def _swagger_assets() -> Path | None:
    """The directory of Swagger UI's JS and CSS in the installed ``fastapi-offline``, or None.

    Found without importing the package (only its files are used). It ships
    Swagger UI 5, which renders OpenAPI 3.1; ``swagger-ui-bundle`` (4.15)
    shows FastAPI's 3.1 schema as "not a valid version".
    """
    spec = importlib.util.find_spec("fastapi_offline")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations))) / "static"
    if not all((path / f).is_file() for f in ("swagger-ui-bundle.js", "swagger-ui.css")):
        return None
    return path


def _install_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from local files only (the city's network is closed)."""
    assets = _swagger_assets()
    if assets is None:
        # No CDN fallback: without the files there is no /docs (the schema stays).
        log.warning("Swagger UI files not installed (pip install fastapi-offline): no /docs")
        return
    app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    title = f"{app.title}: API"

    @app.get("/docs", include_in_schema=False)
    def docs(request: HTTPRequest) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{openapi_url}",
            title=title,
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{DOCS_ASSETS}/favicon.png",
            # Swagger UI would otherwise send the schema to an online validator, and
            # keep a token typed into "Authorize" in the browser's storage.
            swagger_ui_parameters={"validatorUrl": None, "persistAuthorization": False},
        )
        page.headers["Content-Security-Policy"] = _docs_csp(bytes(page.body))
        return page


def _docs_csp(html: bytes) -> str:
    """A policy letting the docs page load from this origin only (its inline script by hash).

    The browser then enforces what the page promises: nothing from another host,
    even if a future Swagger UI tried (fonts, a validator badge, a CDN).
    """
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(m.group(1)).digest()).decode() + "'"
        for m in re.finditer(rb"<script>(.*?)</script>", html, flags=re.DOTALL)
    )
    return (
        "default-src 'none'; connect-src 'self'; img-src 'self' data:; "
        f"style-src 'self' 'unsafe-inline'; script-src 'self' {hashes}; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The app's OpenAPI schema: each operation lists exactly the statuses its route declares.

    FastAPI adds a 422 to every operation with a parameter, even one whose
    parameters cannot be invalid (a path id, an optional header); the
    declared statuses are the real ones, so the rest are removed. The bearer
    scheme the operations name is added too.
    """
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        openapi_version=app.openapi_version,
        description=app.description,
        routes=app.routes,
    )
    for route in app.routes:
        if not isinstance(route, APIRoute) or not route.include_in_schema:
            continue
        declared = {str(route.status_code or 200)} | {str(code) for code in route.responses}
        for method in route.methods or ():
            op = schema["paths"][route.path_format][method.lower()]
            for code in set(op["responses"]) - declared:
                del op["responses"][code]
    components = schema.setdefault("components", {})
    text = json.dumps(schema["paths"])
    for name in ("HTTPValidationError", "ValidationError"):
        if f'"#/components/schemas/{name}"' not in text:
            components.get("schemas", {}).pop(name, None)
    components["securitySchemes"] = {
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "an operator or booking token of the auth file",
        }
    }
    app.openapi_schema = schema
    return schema


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
        if auth is None:
            auth = load_or_create_auth(None, db)
        config, path, created = auth
        if created:
            log.warning("generated auth file %s (mode 0600): its tokens are the only access", path)
        else:
            log.info("auth file %s: %r", path, config)
        app = create_app(allocator, config, limits=limits, commit_window=commit_window)
        server = build_server(app, host, port, limits=limits)
        tune_gc()
        log.info("serving %s with ledger %s on %s:%d", instance_path, os.fspath(db), host, port)
        if threading.current_thread() is threading.main_thread():
            # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
            # against the handlers it found: make those no-ops so the ledger is closed
            # (and snapshotted) below rather than the process dying on the re-raise.
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: None)
        try:
            server.run()
        finally:
            app.state.committer.close()
    finally:
        allocator.close()
        log.info("ledger %s closed at row %d", os.fspath(db), allocator.head[0])
