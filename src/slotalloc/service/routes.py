"""The routes of the booking API, registered on the app by one function per group.

The order of registration is the order of matching: ``GET /bookings`` before
``GET /bookings/{request_id}``. ``POST /bookings`` and ``DELETE
/bookings/{id}`` are answered by :class:`~slotalloc.service.writes.WritePath`
before they reach these routes; the routes document them and give the same
replies if reached. Reads and slow work are plain ``def`` handlers, run in the
thread pool.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, HTTPException, Query
from fastapi import Request as HTTPRequest
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from slotalloc.exceptions import UnknownRequestError, UnknownSessionError
from slotalloc.service.auth import AuthConfig, Principal, bearer_token
from slotalloc.service.commit import GroupCommitter
from slotalloc.service.durable import DurableAllocator
from slotalloc.service.errors import (
    LedgerUnavailableError,
    LedgerWriteError,
    RebalanceRejectedError,
)
from slotalloc.service.http import CALLER_KEY, template_of
from slotalloc.service.ops import placements_json
from slotalloc.service.rebalance import RebalanceOutcome
from slotalloc.service.schemas import (
    BEARER,
    R401,
    R403_OPERATOR,
    R503_WRITE,
    RECEIPT_HEADERS,
    BookBody,
    BookingReply,
    CancelReply,
    CompactReply,
    ExportReply,
    HealthReply,
    Problem,
    RebalanceBody,
    RebalanceReply,
    RequestsReply,
    SessionsPage,
    StatusReply,
    Unavailable,
    Unprocessable,
    ValidationProblem,
    doc,
    responses,
)
from slotalloc.service.writes import (
    NO_TOKEN,
    NOT_COMMITTED,
    UNAUTHORIZED,
    UNAVAILABLE,
    Reply,
    SecretPool,
    clean_errors,
    do_book,
    do_cancel,
)

__all__ = [
    "DEFAULT_PAGE",
    "MAX_PAGE",
    "Caller",
    "Operator",
    "SecretHeader",
    "add_booking_routes",
    "add_error_handlers",
    "add_health_route",
    "add_lookup_routes",
    "add_operator_routes",
    "add_session_routes",
]

# One logger for the server, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.server")

#: Largest ``limit`` of ``GET /sessions``; the default page is :data:`DEFAULT_PAGE`.
MAX_PAGE = 1000
#: ``limit`` of ``GET /sessions`` when none is given.
DEFAULT_PAGE = 100


# ---------------------------------------------------------------- who is calling


def _route_of(request: HTTPRequest) -> str:
    """The request's route template (a raw path can name a request, a query a child)."""
    return template_of(request.scope.get("route")) or "<no route>"


async def _who(request: HTTPRequest) -> Principal:
    """The caller of a request (401 without a valid token)."""
    auth: AuthConfig = request.app.state.auth
    principal = auth.authenticate(bearer_token(request.headers.get("authorization")))
    if principal is None:
        log.info("401 on %s %s", request.method, _route_of(request))
        raise HTTPException(401, NO_TOKEN, headers=UNAUTHORIZED)
    request.scope[CALLER_KEY] = principal.label
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


def _rebalance_json(out: RebalanceOutcome) -> dict[str, Any]:
    """The body of ``POST /rebalance`` (:class:`~slotalloc.service.schemas.RebalanceReply`)."""
    return {
        "moved": [{"request": r, "from": b, "to": a} for r, b, a in out.moved],
        "dropped": [{"request": r, "from": b} for r, b in out.dropped],
        "placed": [{"request": r, "session": a} for r, a in out.placed],
        "promoted": placements_json(out.promoted),
        "kept": out.kept,
        "ledger_seq": out.seq,
        "stats": dict(out.stats),
    }


def _as_response(reply: Reply) -> JSONResponse:
    status, payload, headers = reply
    return JSONResponse(payload, status_code=status, headers=headers)


# ---------------------------------------------------------------- route groups


def add_error_handlers(app: FastAPI) -> None:
    """Replies to a malformed request (422, without the input) and to a failed commit (503)."""

    @app.exception_handler(RequestValidationError)
    async def _invalid(_req: Any, exc: RequestValidationError) -> JSONResponse:
        # Location, message and type only: never the input (it may be a child's
        # data, or a NaN that JSON cannot even carry back).
        return JSONResponse({"detail": clean_errors(exc.errors())}, status_code=422)

    @app.exception_handler(LedgerWriteError)
    async def _write_failed(_req: Any, exc: LedgerWriteError) -> JSONResponse:
        return JSONResponse({"detail": NOT_COMMITTED}, status_code=503)

    @app.exception_handler(LedgerUnavailableError)
    async def _unavailable(_req: Any, exc: LedgerUnavailableError) -> JSONResponse:
        return JSONResponse({"detail": UNAVAILABLE}, status_code=503)


def add_booking_routes(app: FastAPI, committer: GroupCommitter, pool: SecretPool) -> None:
    """``POST /bookings`` and ``DELETE /bookings/{id}`` (see the module notes)."""

    @app.post(
        "/bookings",
        status_code=201,
        response_model=BookingReply,
        openapi_extra=BEARER,
        responses=responses(
            {
                201: {"description": "Booked or waitlisted.", "headers": RECEIPT_HEADERS},
                401: R401,
                403: doc(
                    Problem,
                    "priority above 0 without the right, or a child registered by another "
                    "booking (send its secret in X-Booking-Secret)",
                ),
                409: doc(Problem, "The request id was used before: GET /bookings/{id}."),
                422: doc(
                    Unprocessable,
                    "A malformed body (a list of problems), or a refused request: unknown "
                    "child or session, a child declared differently, no preference that "
                    "takes its children at their age.",
                ),
                503: R503_WRITE,
            }
        ),
    )
    async def book(body: BookBody, caller: Caller, proof: SecretHeader = None) -> JSONResponse:
        """Book a request: its first feasible preference now, else the end of the waitlist.

        The reply's ``secret`` lets its holder cancel this booking and book its
        children again (``X-Booking-Secret``); it is shown only here. A
        waitlisted reply's ``reason`` names the rule its first preference breaks.
        """
        return _as_response(await do_book(committer, pool, caller, body, proof))

    @app.delete(
        "/bookings/{request_id:path}",
        response_model=CancelReply,
        openapi_extra=BEARER,
        responses=responses(
            {
                200: {"description": "Cancelled.", "headers": RECEIPT_HEADERS},
                401: R401,
                403: doc(Problem, "The booking's secret is missing or wrong."),
                404: doc(Problem, "Nothing to cancel: the id was never booked."),
                409: doc(Problem, "The request is already cancelled."),
                503: R503_WRITE,
            }
        ),
    )
    async def cancel(request_id: str, caller: Caller, proof: SecretHeader = None) -> JSONResponse:
        """Cancel: free its place (then promote from the waitlist) or leave the waitlist.

        Needs the booking's secret in ``X-Booking-Secret``, or an operator token.
        """
        return _as_response(await do_cancel(committer, caller, request_id, proof))


def add_lookup_routes(app: FastAPI, allocator: DurableAllocator) -> None:
    """``GET /bookings`` (by child or household; operator) and ``GET /bookings/{id}``."""

    @app.get(
        "/bookings",
        response_model=RequestsReply,
        openapi_extra=BEARER,
        responses=responses(
            {
                401: R401,
                403: R403_OPERATOR,
                422: doc(Unprocessable, "Not exactly one of child and household, or empty."),
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
        openapi_extra=BEARER,
        responses=responses({401: R401, 404: doc(Problem, "The id was never used.")}),
    )
    def status(request_id: str, caller: Caller) -> JSONResponse:
        """Where a request stands; ``position`` in the waitlist when waitlisted."""
        try:
            return JSONResponse(asdict(allocator.status(request_id)))
        except UnknownRequestError as e:
            raise HTTPException(404, str(e)) from e


def add_session_routes(app: FastAPI, allocator: DurableAllocator) -> None:
    """``GET /sessions``: places and caregivers, one page of sessions."""
    known_sessions = frozenset(allocator.session_ids)  # fixed by the instance

    @app.get(
        "/sessions",
        response_model=SessionsPage,
        openapi_extra=BEARER,
        responses=responses(
            {
                401: R401,
                404: doc(Problem, "An unknown session id."),
                422: doc(ValidationProblem, "offset or limit out of range."),
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


def add_operator_routes(app: FastAPI, allocator: DurableAllocator) -> None:
    """``GET /export``, ``POST /rebalance`` and ``POST /compact`` (operator tokens only)."""

    @app.get(
        "/export",
        response_model=ExportReply,
        openapi_extra=BEARER,
        responses=responses({401: R401, 403: R403_OPERATOR}),
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
        openapi_extra=BEARER,
        responses=responses(
            {
                401: R401,
                403: R403_OPERATOR,
                409: doc(
                    Problem,
                    "Refused (a drop without allow_drops, the state changed while solving) "
                    "or another rebalance is running.",
                ),
                422: doc(Unprocessable, "A malformed body, or options out of range."),
                503: R503_WRITE,
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
        except RebalanceRejectedError as e:  # RebalanceBusyError too
            raise HTTPException(409, str(e)) from e
        except ValueError as e:
            raise HTTPException(422, str(e)) from e
        log.info("rebalance by %s: ledger row %s", caller.label, out.seq)
        return JSONResponse(_rebalance_json(out))

    @app.post(
        "/compact",
        response_model=CompactReply,
        openapi_extra=BEARER,
        responses=responses({401: R401, 403: R403_OPERATOR, 503: R503_WRITE}),
    )
    def compact(caller: Operator) -> JSONResponse:
        """Erase cancelled requests and unused children from the ledger (operator).

        The ledger is rewritten as one base row holding the current state; see
        ``docs/server.md`` ("Personal data").
        """
        report = allocator.compact()
        log.info("compaction by %s: base row %d", caller.label, report.base_seq)
        return JSONResponse(asdict(report))


def add_health_route(app: FastAPI, allocator: DurableAllocator, auth: AuthConfig) -> None:
    """``GET /healthz``: open; with a valid token also the ledger head."""

    @app.get(
        "/healthz",
        response_model=HealthReply,
        openapi_extra={"security": [{}, {"bearer": []}]},  # open; a token adds the head
        responses=responses(
            {503: doc(Unavailable, "A commit failed beyond recovery; restart the service.")}
        ),
    )
    def healthz(request: HTTPRequest) -> JSONResponse:
        """Liveness (open); with any valid token also the ledger head."""
        principal = auth.authenticate(bearer_token(request.headers.get("authorization")))
        if principal is not None:
            request.scope[CALLER_KEY] = principal.label
        if allocator.failure is not None:
            return JSONResponse({"status": "unavailable"}, 503)
        out: dict[str, Any] = {"status": "ok"}
        if principal is not None:
            seq, h = allocator.head
            out.update(ledger_seq=seq, ledger_hash=h)
        return JSONResponse(out)
