"""The bodies and replies of the booking API, as pydantic models, and its documented statuses.

The replies are built as plain dicts and sent as they are (the hot paths skip
any response-model serialisation); the reply models only describe them in the
OpenAPI schema. ``extra="forbid"`` makes the schema closed, so a key added to
a reply but not here fails tests/integration/test_server_api.py.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

from slotalloc.models import Child, Instance, Request, Solution
from slotalloc.rules import Rule

__all__ = [
    "BEARER",
    "MAX_SEED",
    "MAX_TIME_LIMIT",
    "R401",
    "R403_OPERATOR",
    "R503_WRITE",
    "RECEIPT_HEADERS",
    "TRANSPORT",
    "BookBody",
    "BookingReply",
    "CancelReply",
    "CompactReply",
    "DropReply",
    "ExportReply",
    "GroupReply",
    "HealthReply",
    "MoveReply",
    "PlacementReply",
    "Problem",
    "RebalanceBody",
    "RebalanceReply",
    "RequestsReply",
    "SessionReply",
    "SessionsPage",
    "StatusReply",
    "Unavailable",
    "Unprocessable",
    "ValidationIssue",
    "ValidationProblem",
    "doc",
    "responses",
]

#: Largest ``time_limit`` of ``POST /rebalance``, in seconds.
MAX_TIME_LIMIT = 60.0
#: ``seed`` of ``POST /rebalance`` is in ``[0, MAX_SEED)``.
MAX_SEED = 2**31


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


# ---------------------------------------------------------------- replies


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


# ---------------------------------------------------------------- documented statuses


RECEIPT_HEADERS = {
    "X-Ledger-Seq": {
        "description": "the ledger row holding this operation",
        "schema": {"type": "integer"},
    },
    "X-Ledger-Hash": {
        "description": "that row's chain hash (hex), read when the row was made",
        "schema": {"type": "string"},
    },
}


def doc(
    model: type[BaseModel], description: str, headers: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One entry of a route's ``responses``: the body's model, a sentence, and any headers."""
    out: dict[str, Any] = {"model": model, "description": description}
    if headers:
        out["headers"] = headers
    return out


#: Answered by the layers around every route (BodyLimit, Guard), whatever the route.
TRANSPORT: dict[int | str, dict[str, Any]] = {
    408: doc(Problem, "The body did not arrive in time; the connection is closed."),
    413: doc(Problem, "The body is over the size limit; nothing was parsed."),
    431: doc(Problem, "The request head is over the size limit."),
    500: doc(Problem, "An unexpected error; nothing was changed by it."),
}
R401 = doc(
    Problem,
    "No valid bearer token.",
    {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}},
)
R403_OPERATOR = doc(Problem, "A valid token, but not an operator's.")
R503_WRITE = doc(
    Problem,
    "Not committed, nothing changed (retry as is); or the ledger is unusable and the "
    "service must restart.",
)


def responses(extra: dict[int | str, dict[str, Any]]) -> dict[int | str, dict[str, Any]]:
    """A route's own statuses and those every route can get from the layers around it."""
    return {**extra, **TRANSPORT}


#: Swagger UI's "Authorize" sends the bearer token (the scheme is added by the app's schema).
BEARER: dict[str, Any] = {"security": [{"bearer": []}]}
