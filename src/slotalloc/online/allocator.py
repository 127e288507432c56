"""The online booking engine: FORMAT §3 decisions, one operation at a time.

:class:`Allocator` is assembled from one mixin per concern, over the shared
state and rules of :class:`~slotalloc.online.core.EngineState`:

========================  ==========================================================
``online.admission``      book and cancel: the hot path (FORMAT §3 semantics)
``online.waitlist``       the FIFO waitlist, its index streams and its scans (and
                          why the scan after a cancellation looks at few requests)
``online.read``           held, waitlist, status, requests_of, occupancies, len, iter
``online.changes``        from_result, apply (a rebalance), full_scan
``online.persistence``    state and restore (a snapshot as plain JSON data)
``online.export``         export (FORMAT §3 "State export")
``online.outcomes``       what the operations return
``online.records``        the record of one request
``online.eligibility``    rule 2 per birth date and session class
========================  ==========================================================

Locking
-------
One :class:`threading.Lock` around each public operation (book, cancel,
export, the read accessors). Under the GIL, Python code of several threads
never runs at once, so finer locks (per session, per child) would buy no
parallelism for this CPU-bound path while making it possible to deadlock or to
observe a half-applied cancellation; an uncontended lock costs well under a
tenth of a microsecond. Every operation is therefore atomic and the operations
are linearised in the order the lock was taken, which ``.sequence`` on each
returned decision records.
"""

from __future__ import annotations

from collections.abc import Iterable

from slotalloc.compile import Compiled
from slotalloc.models import Instance
from slotalloc.online.admission import Admission
from slotalloc.online.changes import Changes
from slotalloc.online.export import Export
from slotalloc.online.outcomes import (
    Cancellation,
    Decision,
    GroupOccupancy,
    Placement,
    RequestStatus,
    SessionOccupancy,
)
from slotalloc.online.persistence import STATE_FORMAT, Persistence, gc_paused
from slotalloc.online.read import Reading

__all__ = [
    "STATE_FORMAT",
    "Allocator",
    "Cancellation",
    "Decision",
    "GroupOccupancy",
    "Placement",
    "RequestStatus",
    "SessionOccupancy",
    "gc_paused",
]


class Allocator(Admission, Reading, Changes, Persistence, Export):
    """Online booking over a starting instance (FORMAT §3).

    Parameters
    ----------
    instance
        The world (policy, sessions, children) and the places already held (its
        bookings, in file order). Its requests without a booking hold nothing,
        are not waitlisted, and their ids count as used. ``locked`` is ignored.
    compiled
        ``compile_instance(instance)`` when the caller has it already (saves
        compiling again); it must be of this very instance.
    used_ids
        More request ids that count as used (a later book with one of them is
        refused), e.g. the ids cancelled before a service moved to a new
        starting instance. :meth:`status` reports them as cancelled.

    Raises
    ------
    InvalidStateError
        When the bookings break one of FORMAT §2 rules 1-5 or 7; the message
        names the first booking (in file order) that does.

    Notes
    -----
    Thread-safe: each public method runs under one lock (see the module notes).
    ``len(alloc)`` counts the live requests (held, waitlisted, or starting
    requests holding nothing: those :meth:`export` lists); iterating gives
    their :class:`RequestStatus` in request order; ``request_id in alloc``
    says whether an id names one of them.

    Examples
    --------
    One session of two places and three children; the third request waits:

    >>> from slotalloc import Instance
    >>> from slotalloc.online import Allocator
    >>> inst = Instance.model_validate({
    ...     "sessions": [{"id": "am", "site": "north", "capacity": 2, "caregivers": 2,
    ...                   "start": "2025-04-19T08:30:00+08:00",
    ...                   "end": "2025-04-19T12:00:00+08:00"}],
    ...     "children": [{"id": "c1", "birth_date": "2023-01-10", "household": "h1"},
    ...                  {"id": "c2", "birth_date": "2023-06-02", "household": "h1"},
    ...                  {"id": "c3", "birth_date": "2024-01-20"}],
    ...     "requests": [],
    ... })
    >>> alloc = Allocator(inst)
    >>> alloc.book({"id": "r1", "children": ["c1"], "preferences": ["am"]})
    Decision(request='r1', session='am', waitlisted=False)
    >>> alloc.book({"id": "r2", "children": ["c2"], "preferences": ["am"]})
    Decision(request='r2', session='am', waitlisted=False)
    >>> alloc.book({"id": "r3", "children": ["c3"], "preferences": ["am"]})
    Decision(request='r3', session=None, waitlisted=True, reason='capacity')
    >>> alloc.held(), alloc.waitlist(), len(alloc)
    ({'r1': 'am', 'r2': 'am'}, ['r3'], 3)
    """

    def __init__(
        self,
        instance: Instance,
        *,
        compiled: Compiled | None = None,
        used_ids: Iterable[str] = (),
    ) -> None:
        self._setup(instance, compiled)
        live = self._live
        self._gone.update(rid for rid in used_ids if rid not in live)
        held = [(b.request, b.session) for b in instance.bookings]
        self._hold_all(held, "bookings")
