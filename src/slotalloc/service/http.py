"""The ASGI layers around the booking app: bounded requests, the access log, strict JSON.

:class:`BodyLimit` refuses a request head or body over its size limit, or a
body slower than its timeout, before anything is parsed. :class:`Guard` is
the outermost layer: one access-log line per request, and an unexpected
exception answered as a bare 500 with one log line. :class:`StrictRoute`
makes FastAPI's JSON bodies refuse ``NaN`` and ``Infinity``. What they log
names the route template, never the path as sent, a query, a body or an
exception's message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Request as HTTPRequest
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute, Match

__all__ = [
    "CALLER_KEY",
    "MAX_BODY_BYTES",
    "ROUTE_KEY",
    "ASGIApp",
    "BodyLimit",
    "Guard",
    "Limits",
    "Message",
    "Receive",
    "Scope",
    "Send",
    "StrictRoute",
    "access_log",
    "refuse_constant",
    "send_body",
    "send_json",
    "template_of",
]

# One logger for the server, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.server")
#: One line per HTTP request (see :class:`Guard`); silence it with ``setLevel(WARNING)``.
access_log = logging.getLogger("slotalloc.access")

#: Largest request body accepted (a request has at most 10 preferences; this is generous).
MAX_BODY_BYTES = 64 * 1024

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


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


async def send_body(
    send: Send, status: int, body: bytes, headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    """Send a whole JSON reply from an ASGI layer (no response class: these paths are lean)."""
    head = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *headers,
    ]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, detail: str, close: bool = False) -> None:
    """Send ``{"detail": detail}``; ``close`` asks the client to close the connection."""
    body = json.dumps({"detail": detail}).encode()
    await send_body(send, status, body, [(b"connection", b"close")] if close else [])


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit`` bytes, 408 for one slower than ``timeout``,
    431 for a request head over ``header_limit`` bytes.

    Checks ``Content-Length`` up front and counts the bytes of a chunked body
    as they arrive, so an oversized body is never buffered beyond the limit;
    the whole body must arrive within ``timeout`` seconds of the headers.
    """

    def __init__(
        self,
        app: ASGIApp,
        limit: int = MAX_BODY_BYTES,
        timeout: float | None = None,
        header_limit: int | None = None,
    ) -> None:
        self.app = app
        self.limit = limit
        self.timeout = timeout
        self.header_limit = header_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = scope.get("headers", ())
        if self.header_limit is not None:
            # h11 bounds a head only while it is incomplete; one that arrives whole is not.
            size = len(scope.get("raw_path", b"")) + len(scope.get("query_string", b""))
            size += sum(len(n) + len(v) + 4 for n, v in headers)
            if size > self.header_limit:
                await send_json(send, 431, "request headers too large", close=True)
                return
        for name, value in headers:
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await send_json(send, 413, "request body too large", close=True)
                    return
        # Read the whole body first (it is small by construction): a limit
        # enforced inside the app's own receive would be turned into a 400 by
        # FastAPI's body parsing, and half a body must never reach a handler.
        messages: list[Message] = []
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
            await send_json(send, 408, "request body too slow", close=True)
            return
        if seen > self.limit:
            await send_json(send, 413, "request body too large", close=True)
            return
        replay = iter(messages)

        async def buffered_receive() -> Message:
            nxt = next(replay, None)
            return nxt if nxt is not None else await receive()

        await self.app(scope, buffered_receive, send)


#: Scope keys our layers fill for the access log: the caller's label, and the
#: route template of a request :class:`WritePath` answers (it bypasses routing).
CALLER_KEY = "slotalloc.caller"
ROUTE_KEY = "slotalloc.route"


def template_of(route: Any) -> str | None:
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

    def __init__(self, app: ASGIApp, routes: Sequence[BaseRoute] = ()) -> None:
        self.app = app
        self.routes = routes

    def _template(self, scope: Scope, path: str, root_path: str) -> str:
        got = scope.get(ROUTE_KEY) or template_of(scope.get("route"))
        if got:
            return str(got)
        # Routing rewrote the scope (a mount changes root_path): match a copy of the original.
        probe = {"type": "http", "method": scope["method"], "path": path, "root_path": root_path}
        for route in self.routes:
            match, _child = route.matches(probe)
            if match is not Match.NONE:
                return template_of(route) or "<route>"
        return "<no route>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False
        status = 0
        t0 = time.perf_counter()
        path, root_path = scope["path"], scope.get("root_path", "")

        async def watch(message: Message) -> None:
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
                await send_json(send, 500, "internal error; nothing was changed by it")
        if access_log.isEnabledFor(logging.INFO):
            ms = 1000 * (time.perf_counter() - t0)
            access_log.info(
                "%s %s %d %.1f ms %s",
                scope["method"],
                self._template(scope, path, root_path),
                status,
                ms,
                scope.get(CALLER_KEY, "-"),
            )


def refuse_constant(name: str) -> Any:
    raise json.JSONDecodeError(f"{name} is not allowed in JSON", name, 0)


class StrictJSONRequest(HTTPRequest):
    """A request whose JSON body refuses ``NaN``, ``Infinity`` and ``-Infinity``."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            self._json = json.loads(body, parse_constant=refuse_constant)
        return self._json


class StrictRoute(APIRoute):
    def get_route_handler(self) -> Callable[[HTTPRequest], Any]:
        handler = super().get_route_handler()

        async def strict(request: HTTPRequest) -> Any:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict
