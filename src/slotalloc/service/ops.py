"""Book and cancel operations of the durable allocator, their receipts, and their ledger JSON.

An operation is serialised by :func:`prepare` before any lock is taken (a
refusal there changes nothing); its row stores :func:`event_body` as ``body``
and :func:`book_result` or :func:`cancel_result` as ``result``, which replay
recomputes and compares.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from slotalloc.models import Child, Request
from slotalloc.online import Cancellation, Decision, Placement
from slotalloc.rules import Rule
from slotalloc.service.chain import canonical_json, secret_digest, storable
from slotalloc.service.errors import UnstorableEventError

__all__ = [
    "BookOp",
    "CancelOp",
    "DurableCancellation",
    "DurableDecision",
    "Op",
    "Prepared",
    "book_result",
    "cancel_result",
    "placements_json",
    "prepare",
]


@dataclass(frozen=True)
class BookOp:
    """A book operation for :meth:`DurableAllocator.execute`.

    Attributes
    ----------
    request, children
        The FORMAT §3 book event.
    secret
        The per-booking secret to record (its SHA-256 is stored), or None.
    proof
        A secret of an earlier booking naming the same children, which a caller
        without ``privileged`` must present to book a child registered by a
        booking with a secret.
    privileged
        An operator (no ownership check).
    """

    request: Request
    children: Sequence[Child] = ()
    secret: str | None = None
    proof: str | None = None
    privileged: bool = True


@dataclass(frozen=True)
class CancelOp:
    """A cancel operation for :meth:`DurableAllocator.execute`.

    Attributes
    ----------
    request
        The request id.
    proof
        The booking's secret; needed unless ``privileged``.
    privileged
        An operator (may cancel any booking).
    """

    request: str
    proof: str | None = None
    privileged: bool = True


Op = BookOp | CancelOp


class DurableDecision(Decision):
    """A :class:`~slotalloc.online.Decision` with its ledger receipt.

    ``sequence`` is the ledger row holding the booking and ``hash`` that row's
    chain hash (hex), read when the row was made: a receipt the client can
    check against the ledger.
    """

    __slots__ = ("hash",)

    def __init__(
        self,
        request: str,
        session: str | None,
        sequence: int,
        hash_hex: str,
        reason: Rule | None = None,
    ) -> None:
        super().__init__(request, session, sequence, reason)
        self.hash = hash_hex


class DurableCancellation(Cancellation):
    """A :class:`~slotalloc.online.Cancellation` with its ledger receipt (``hash``, hex)."""

    __slots__ = ("hash",)

    def __init__(
        self,
        request: str,
        session: str | None,
        promoted: list[Placement],
        sequence: int,
        hash_hex: str,
    ) -> None:
        super().__init__(request, session, promoted, sequence)
        self.hash = hash_hex


def placements_json(placements: Iterable[Placement]) -> list[dict[str, str]]:
    """Placements as the ledger rows and the HTTP replies give them."""
    return [{"request": p.request, "session": p.session} for p in placements]


def book_result(d: Decision) -> dict[str, Any]:
    """The ``result`` of a book row."""
    return {"request": d.request, "session": d.session, "waitlisted": d.waitlisted}


def cancel_result(c: Cancellation) -> dict[str, Any]:
    """The ``result`` of a cancel row."""
    return {"request": c.request, "cancelled": True, "promoted": placements_json(c.promoted)}


def _dump(model: Request | Child) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return out


@dataclass(frozen=True)
class Prepared:
    """An operation ready to apply: its row's body and the digests of its secrets."""

    body: str
    secret_hex: str
    secret: bytes | None
    proof: bytes | None


def prepare(op: Op) -> Prepared:
    """Serialise and check an operation without the lock (nothing changes).

    Raises
    ------
    UnstorableEventError
        The event cannot be written.
    """
    if isinstance(op, BookOp):
        body: dict[str, Any] = {"request": _dump(op.request)}
        if op.children:
            body["children"] = [_dump(c) for c in op.children]
    else:
        body = {"request": op.request}
    try:
        text = canonical_json(body)
    except ValueError:  # NaN or the like, from a model built without validation
        raise UnstorableEventError("the event cannot be written as JSON") from None
    secret = secret_digest(op.secret) if isinstance(op, BookOp) and op.secret else None
    proof = secret_digest(op.proof) if op.proof else None
    return Prepared(storable(text), secret.hex() if secret else "", secret, proof)
