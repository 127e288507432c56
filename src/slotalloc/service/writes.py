"""The write path: ``POST /bookings`` and ``DELETE /bookings/{id}``, committed before the reply.

Each operation goes to the single writer thread
(:class:`slotalloc.service.commit.GroupCommitter`) and is awaited: operations
arriving together share one transaction and one fsync, and a reply is sent
only after its commit. :class:`WritePath` answers these two requests as an
ASGI layer, ahead of FastAPI's routing; the FastAPI routes of the same paths
document them in the OpenAPI schema and share :func:`do_book` and
:func:`do_cancel`, so both give the same replies.
"""

from __future__ import annotations

import base64
import json
import logging
import secrets
import threading
from typing import Any

from pydantic import ValidationError

from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    DuplicateRequestError,
    UnknownRequestError,
)
from slotalloc.service.auth import AuthConfig, Principal, bearer_token, is_bearer
from slotalloc.service.commit import GroupCommitter
from slotalloc.service.errors import LedgerUnavailableError, LedgerWriteError, NotPermittedError
from slotalloc.service.http import (
    CALLER_KEY,
    ROUTE_KEY,
    ASGIApp,
    Receive,
    Scope,
    Send,
    refuse_constant,
    send_body,
)
from slotalloc.service.ops import BookOp, CancelOp, placements_json
from slotalloc.service.schemas import BookBody

__all__ = [
    "NOT_COMMITTED",
    "NO_TOKEN",
    "UNAUTHORIZED",
    "UNAVAILABLE",
    "Reply",
    "SecretPool",
    "WritePath",
    "clean_errors",
    "do_book",
    "do_cancel",
    "problem",
]

# One logger for the server, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.server")

#: (status, JSON body, extra headers): a reply before it is sent.
Reply = tuple[int, dict[str, Any], dict[str, str]]

#: The 503 details: the commit failed (retry as is), or the ledger is unusable.
NOT_COMMITTED = "not committed, nothing changed; retry"
UNAVAILABLE = "the ledger is unavailable; the service must restart"
#: Headers of a 401.
UNAUTHORIZED = {"WWW-Authenticate": "Bearer"}
#: The detail of a 401.
NO_TOKEN = "a valid bearer token is required"


class SecretPool:
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
        """A new secret."""
        with self._lock:
            if self._at + self._size > len(self._buf):
                self._buf, self._at = secrets.token_bytes(self._size * self._batch), 0
            chunk = self._buf[self._at : self._at + self._size]
            self._at += self._size
        return base64.urlsafe_b64encode(chunk).rstrip(b"=").decode()


def problem(status: int, detail: Any, headers: dict[str, str] | None = None) -> Reply:
    """An error reply: ``{"detail": ...}``."""
    return status, {"detail": detail}, headers or {}


def _receipt(seq: int, hash_hex: str) -> dict[str, str]:
    return {"X-Ledger-Seq": str(seq), "X-Ledger-Hash": hash_hex}


def _booking_refusal(e: BookingError, rid: str) -> Reply:
    if isinstance(e, DuplicateRequestError):
        return problem(409, f"{e}; GET /bookings/{rid} for its outcome")
    if isinstance(e, AlreadyCancelledError):
        # 409, not 404: the id is known, and a retried cancel must not look like a typo.
        return problem(409, f"request {rid} is already cancelled")
    if isinstance(e, NotPermittedError):
        return problem(403, str(e))
    if isinstance(e, UnknownRequestError):
        return problem(404, str(e))
    # The rest (IneligibleRequestError, unknown child or session, child conflict) are
    # problems of the request itself; their messages name no birth date.
    return problem(422, str(e))


async def _committed(
    committer: GroupCommitter, op: BookOp | CancelOp, rid: str
) -> tuple[Any, Reply | None]:
    """(the operation's outcome, None) after its commit, or (None, the reply refusing it)."""
    try:
        return await committer.submit_async(op), None
    except BookingError as e:
        return None, _booking_refusal(e, rid)
    except LedgerWriteError:
        return None, problem(503, NOT_COMMITTED)
    except LedgerUnavailableError:
        return None, problem(503, UNAVAILABLE)


async def do_book(
    committer: GroupCommitter,
    pool: SecretPool,
    caller: Principal,
    body: BookBody,
    proof: str | None,
) -> Reply:
    """Book, and the reply to give: 201 with the receipt headers, or the refusal.

    Raises
    ------
    RuntimeError
        The committer is closed (the service is stopping).
    """
    req = body.request
    if req.priority > 0 and not caller.may_set_priority:
        return problem(403, "priority above 0 needs an operator or a priority token")
    secret = pool.take()
    op = BookOp(req, tuple(body.children or ()), secret, proof, caller.is_operator)
    d, refused = await _committed(committer, op, req.id)
    if refused is not None:
        return refused
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


async def do_cancel(
    committer: GroupCommitter, caller: Principal, request_id: str, proof: str | None
) -> Reply:
    """Cancel, and the reply to give: 200 with the receipt headers, or the refusal.

    Raises
    ------
    RuntimeError
        The committer is closed (the service is stopping).
    """
    op = CancelOp(request_id, proof, caller.is_operator)
    c, refused = await _committed(committer, op, request_id)
    if refused is not None:
        return refused
    log.debug("cancel %s: row %d, %d promoted", c.request, c.sequence, len(c.promoted))
    return (
        200,
        {
            "request": c.request,
            "cancelled": True,
            "promoted": placements_json(c.promoted),
        },
        _receipt(c.sequence, c.hash),
    )


def clean_errors(errors: Any, prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Validation errors without their input (it may be a child's data, or a NaN)."""
    return [
        {"loc": [*prefix, *e.get("loc", ())], "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in errors
    ]


class WritePath:
    """ASGI middleware answering ``POST /bookings`` and ``DELETE /bookings/{id}`` directly.

    The same checks and replies as the FastAPI routes of those paths (which
    document them in the OpenAPI schema and share :func:`do_book` and
    :func:`do_cancel`), without FastAPI's routing, dependency solving and
    response classes: measured, those cost more than the booking itself.
    Everything else goes on to the app.
    """

    def __init__(
        self, app: ASGIApp, *, auth: AuthConfig, committer: GroupCommitter, pool: SecretPool
    ) -> None:
        self.app = app
        self.auth = auth
        self.committer = committer
        self.pool = pool

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            method, path = scope["method"], scope["path"]
            if method == "POST" and path == "/bookings":
                scope[ROUTE_KEY] = "/bookings"
                await self._reply(send, await self._book(scope, receive))
                return
            if method == "DELETE" and path.startswith("/bookings/") and len(path) > 10:
                scope[ROUTE_KEY] = "/bookings/{request_id}"
                await self._reply(send, await self._cancel(scope, path[10:]))
                return
        await self.app(scope, receive, send)

    def _caller(self, scope: Scope) -> tuple[Principal | None, str | None]:
        token = proof = None
        for name, value in scope["headers"]:
            if name == b"authorization":
                text = value.decode("latin-1")
                if is_bearer(text):  # the last Bearer header counts
                    token = bearer_token(text)
            elif name == b"x-booking-secret":
                proof = value.decode("latin-1").strip() or None
        principal = self.auth.authenticate(token)
        if principal is None:
            log.info("401 on %s %s", scope["method"], scope[ROUTE_KEY])
        else:
            scope[CALLER_KEY] = principal.label
        return principal, proof

    async def _book(self, scope: Scope, receive: Receive) -> Reply:
        caller, proof = self._caller(scope)
        if caller is None:
            return problem(401, NO_TOKEN, UNAUTHORIZED)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return problem(400, "the request was not received")
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            data = json.loads(b"".join(chunks), parse_constant=refuse_constant)
        except ValueError:  # JSONDecodeError, and bytes that are not UTF-8
            return problem(
                422, [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]
            )
        try:
            body = BookBody.model_validate(data)
        except ValidationError as e:
            return problem(422, clean_errors(e.errors(), ("body",)))
        return await do_book(self.committer, self.pool, caller, body, proof)

    async def _cancel(self, scope: Scope, request_id: str) -> Reply:
        caller, proof = self._caller(scope)
        if caller is None:
            return problem(401, NO_TOKEN, UNAUTHORIZED)
        return await do_cancel(self.committer, caller, request_id, proof)

    @staticmethod
    async def _reply(send: Send, reply: Reply) -> None:
        status, payload, extra = reply
        body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        await send_body(
            send, status, body, [(k.lower().encode(), v.encode()) for k, v in extra.items()]
        )
