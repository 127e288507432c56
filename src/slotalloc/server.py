"""HTTP booking service over :class:`slotalloc.ledger.DurableAllocator` (FastAPI).

FastAPI and uvicorn are imported only here (the ``server`` extra), so
``import slotalloc`` never needs them.

Every handler is a plain ``def``: FastAPI runs it in its thread pool, where it
takes the allocator's lock, applies the operation, commits it to the ledger and
only then returns; the reply is therefore never ahead of the ledger. A booking
that got a 2xx reply carries the ledger row in the ``X-Ledger-Seq`` and
``X-Ledger-Hash`` headers: a receipt a client can check against the ledger.

Status codes: 201 booked; 409 request id used before (ask ``GET
/bookings/{id}`` for its outcome), or a rebalance refused; 404 unknown id;
413 body too large; 422 malformed body or a refused booking (unknown child or
session, child conflict); 503 the ledger could not commit (nothing changed).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import FastAPI, HTTPException, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from slotalloc.exceptions import (
    BookingError,
    DuplicateRequestError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.ledger import (
    DurableAllocator,
    LedgerUnavailableError,
    LedgerWriteError,
    RebalanceRejectedError,
)
from slotalloc.models import Child, Request

__all__ = ["MAX_BODY_BYTES", "create_app", "serve"]

log = logging.getLogger(__name__)

#: Largest request body accepted (a request has at most 10 preferences; this is generous).
MAX_BODY_BYTES = 64 * 1024

_Scope = MutableMapping[str, Any]
_Message = MutableMapping[str, Any]
_Receive = Callable[[], Awaitable[_Message]]
_Send = Callable[[_Message], Awaitable[None]]
_ASGIApp = Callable[[_Scope, _Receive, _Send], Awaitable[None]]


class BodyLimit:
    """ASGI middleware refusing bodies over ``limit`` bytes with 413, before any parsing.

    Checks ``Content-Length`` up front and counts the bytes of a chunked body
    as they arrive, so an oversized body is never buffered beyond the limit.
    """

    def __init__(self, app: _ASGIApp, limit: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: _Scope, receive: _Receive, send: _Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                try:
                    too_big = int(value) > self.limit
                except ValueError:
                    too_big = True
                if too_big:
                    await self._refuse(send)
                    return
        # Read the whole body first (it is small by construction): a limit
        # enforced inside the app's own receive would be turned into a 400 by
        # FastAPI's body parsing, and half a body must never reach a handler.
        messages: list[_Message] = []
        seen = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            seen += len(message.get("body", b""))
            if seen > self.limit:
                await self._refuse(send)
                return
            if not message.get("more_body", False):
                break
        replay = iter(messages)

        async def buffered_receive() -> _Message:
            nxt = next(replay, None)
            return nxt if nxt is not None else await receive()

        await self.app(scope, buffered_receive, send)

    async def _refuse(self, send: _Send) -> None:
        body = b'{"detail":"request body too large"}'
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class BookBody(BaseModel):
    """``POST /bookings``: a FORMAT §3 book event without ``op``."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    request: Request
    children: list[Child] | None = None


class RebalanceBody(BaseModel):
    """``POST /rebalance`` options."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    allow_drops: bool = False
    method: str = "fcfs"
    time_limit: float | None = Field(default=None, gt=0)
    seed: int = 0


def _receipt(seq: int, allocator: DurableAllocator) -> dict[str, str]:
    return {"X-Ledger-Seq": str(seq), "X-Ledger-Hash": allocator.head[1]}


def create_app(allocator: DurableAllocator) -> FastAPI:
    """The booking API over one durable allocator.

    Parameters
    ----------
    allocator
        The engine and its ledger; the app never closes it.

    Returns
    -------
    FastAPI
        The application, with the body-size limit installed and the OpenAPI
        schema at ``/openapi.json``.
    """
    app = FastAPI(
        title="slotalloc booking service",
        version="1",
        description="FORMAT §3 online bookings over a durable ledger.",
    )

    @app.exception_handler(LedgerWriteError)
    async def _write_failed(_req: Any, exc: LedgerWriteError) -> JSONResponse:
        return JSONResponse({"detail": f"not committed, nothing changed: {exc}"}, status_code=503)

    @app.exception_handler(LedgerUnavailableError)
    async def _unavailable(_req: Any, exc: LedgerUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=503)

    @app.post("/bookings", status_code=201)
    def book(body: BookBody) -> JSONResponse:
        """Book a request: its first feasible preference now, else the end of the waitlist."""
        try:
            d = allocator.book(body.request, body.children or ())
        except DuplicateRequestError as e:
            raise HTTPException(409, f"{e}; GET /bookings/{body.request.id} for its outcome") from e
        except BookingError as e:
            raise HTTPException(422, str(e)) from e
        return JSONResponse(
            {"request": d.request, "session": d.session, "waitlisted": d.waitlisted},
            status_code=201,
            headers=_receipt(d.sequence, allocator),
        )

    @app.delete("/bookings/{request_id:path}")
    def cancel(request_id: str) -> JSONResponse:
        """Cancel: free its place (then promote from the waitlist) or leave the waitlist."""
        try:
            c = allocator.cancel(request_id)
        except UnknownRequestError as e:
            raise HTTPException(404, str(e)) from e
        return JSONResponse(
            {
                "request": c.request,
                "cancelled": True,
                "promoted": [{"request": p.request, "session": p.session} for p in c.promoted],
            },
            headers=_receipt(c.sequence, allocator),
        )

    @app.get("/bookings/{request_id:path}")
    def status(request_id: str) -> dict[str, Any]:
        """Where a request stands."""
        try:
            return asdict(allocator.status(request_id))
        except UnknownRequestError as e:
            raise HTTPException(404, str(e)) from e

    @app.get("/sessions")
    def sessions(
        id: Annotated[list[str] | None, Query(description="session ids; all when absent")] = None,
    ) -> dict[str, Any]:
        """Places taken, caregivers needed and available, by age group."""
        try:
            return {
                "sessions": [
                    allocator.session_occupancy(sid) for sid in (id or allocator.session_ids)
                ]
            }
        except UnknownSessionError as e:
            raise HTTPException(404, str(e)) from e

    @app.get("/export")
    def export() -> dict[str, Any]:
        """The FORMAT §3 state export: an instance and a solution any verifier can check."""
        inst, sol = allocator.export()
        return {"instance": inst.model_dump(mode="json"), "solution": sol.model_dump(mode="json")}

    @app.post("/rebalance")
    def rebalance(body: RebalanceBody | None = None) -> dict[str, Any]:
        """Run the batch optimiser on the current state; log its moves, drops and placements."""
        opts = body if body is not None else RebalanceBody()
        try:
            out = allocator.rebalance(
                allow_drops=opts.allow_drops,
                method=opts.method,
                time_limit=opts.time_limit,
                seed=opts.seed,
            )
        except RebalanceRejectedError as e:
            raise HTTPException(409, str(e)) from e
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        return {
            "moved": [{"request": r, "from": b, "to": a} for r, b, a in out.moved],
            "dropped": [{"request": r, "from": b} for r, b in out.dropped],
            "placed": [{"request": r, "session": a} for r, a in out.placed],
            "promoted": [{"request": p.request, "session": p.session} for p in out.promoted],
            "kept": out.kept,
            "ledger_seq": out.seq,
            "stats": dict(out.stats),
        }

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """Liveness and the ledger head; 503 once a failed commit left the engine unusable."""
        seq, h = allocator.head
        if allocator.failure is not None:
            return JSONResponse({"status": "unavailable", "detail": allocator.failure}, 503)
        return JSONResponse({"status": "ok", "ledger_seq": seq, "ledger_hash": h})

    app.add_middleware(BodyLimit, limit=MAX_BODY_BYTES)
    return app


def serve(instance_path: str, db: str, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Run the booking service until interrupted (``slotalloc serve``).

    Recovers the state from ``db`` (created when absent), serves HTTP on
    ``host:port`` with one worker process (the ledger has a single writer),
    and on a clean shutdown snapshots the state so the next start is quick.

    Parameters
    ----------
    instance_path
        The starting instance file.
    db
        The ledger file.
    host, port
        Where to listen.

    Raises
    ------
    InputError
        The instance file is unreadable or invalid.
    LedgerError
        The ledger is corrupt or belongs to another instance.
    """
    import uvicorn

    from slotalloc.io import load_instance

    instance = load_instance(instance_path)
    allocator = DurableAllocator(instance, db)
    log.info("serving %s with ledger %s on %s:%d", instance_path, os.fspath(db), host, port)
    if threading.current_thread() is threading.main_thread():
        # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal
        # against the handlers it found: make those no-ops so the ledger is closed
        # (and snapshotted) below rather than the process dying on the re-raise.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
    try:
        uvicorn.run(
            create_app(allocator),
            host=host,
            port=port,
            workers=1,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        allocator.close()
