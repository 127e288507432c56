"""The engine's record of one request, and what it brings to a session (internal).

A request the engine knows is a :class:`Req`: its children (as child indices),
its eligible preferences as *arcs* while it waits, and where it stands. The
records are plain slots because the admission path builds one per book.
"""

from __future__ import annotations

from typing import Any

from slotalloc.models import Request

__all__ = ["HELD", "IDLE", "NO_ARCS", "WAITING", "Arc", "Req", "by_order", "new_req"]

# Where a request stands.
IDLE = 0  # a request of the starting instance without a place: holds nothing, never waits
HELD = 1
WAITING = 2

#: An arc is (session index, ((group, count), ...), rank): what the request
#: brings to that session, computed once when the request arrives.
Arc = tuple[int, tuple[tuple[int, int], ...], int]

#: Shared placeholder: a request's arcs matter only while it waits.
NO_ARCS: list[Arc] = []


class Req:
    """One request the engine knows (plain slots: this is the hot path).

    No ``__init__``: calling a class with a Python ``__init__`` costs a frame on
    top of the slot stores, and :func:`new_req` already is one.

    Attributes
    ----------
    id
        The request id.
    order
        Position in request order (the order of the export), from 0.
    kids
        Child indices, in the request's order (empty for a starting request
        that holds nothing: they are looked up only when needed).
    size
        ``len(kids)``.
    arcs
        The eligible preferences in rank order while waiting, else
        :data:`NO_ARCS` (or whatever they were: they are read only while waiting).
    source
        The request as given: a model, or its JSON data (:meth:`Allocator.restore`,
        :func:`~slotalloc.online.replay`).
    state
        :data:`IDLE`, :data:`HELD` or :data:`WAITING`.
    arc
        The arc held when :data:`HELD`, else None.
    seq
        The waitlist sequence number when :data:`WAITING` (ascending in
        waitlist order), else -1.
    """

    __slots__ = (
        "arc",
        "arcs",
        "id",
        "kids",
        "order",
        "seq",
        "size",
        "source",
        "state",
    )

    id: str
    order: int
    kids: tuple[int, ...]
    size: int
    arcs: list[Arc]
    source: Request | dict[str, Any]
    state: int
    arc: Arc | None
    seq: int


def new_req(
    rid: str,
    kids: tuple[int, ...],
    source: Request | dict[str, Any],
    order: int,
) -> Req:
    """A request holding nothing and not waitlisted, with every slot set."""
    rec = Req()
    rec.id = rid
    rec.order = order
    rec.kids = kids
    rec.size = len(kids)
    rec.arcs = NO_ARCS
    rec.source = source
    rec.state = IDLE
    rec.arc = None
    rec.seq = -1
    return rec


def by_order(rec: Req) -> int:
    """Sort key: request order."""
    return rec.order
