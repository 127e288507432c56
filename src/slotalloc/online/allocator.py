"""The online booking engine: FORMAT §3 decisions, one operation at a time.

Semantics (FORMAT §3)
---------------------
* **book**: the request takes its first preference, by rank, that is feasible
  now (§2 rules 2-5 and 7 hold with it added); otherwise it joins the end of
  the waitlist (also when no preference is eligible at all).
* **cancel** of a place held: the place is freed, then the waitlist is scanned
  once from its head; each waitlisted request feasible at that moment (after
  the promotions earlier in the same scan) takes its first feasible preference.
  **cancel** of a waitlisted request removes it, without a scan.
* Errors change nothing.

Why the scan may look only at a few candidates
----------------------------------------------
Invariant: *between operations, no waitlisted request is feasible.* A request
joins the waitlist only when infeasible; placing children only makes every
rule-3/4/5 quantity grow (all rules are monotone), so a book keeps every
waitlisted request infeasible; a scan checks every waitlisted request it keeps
at a moment after which only promotions (more placing) happen; removing a
waitlisted request changes no place.

Feasibility of a waitlisted request ``w`` in a preference ``t`` depends only on
the counts of session ``t`` (children, per group, caregiver need) and on the
sessions held by ``w``'s children (overlap, per-child cap). Cancelling a place
of request ``r`` in session ``s`` changes exactly the counts of ``s`` and the
sessions held by ``r``'s children; the promotions of the scan only add places.
So if ``w`` has no eligible preference ``s`` and shares no child with ``r``,
every quantity ``w`` depends on is, throughout the scan, what it was when ``w``
was infeasible, or larger: the literal scan would pass over ``w``. The same
argument shows that a ``w`` which shares no child with ``r`` can only become
feasible in ``s`` itself, so only that preference needs checking. Visiting, in
waitlist (FIFO) order, exactly the waitlisted requests eligible for ``s`` and
those sharing a child with ``r`` therefore makes the same decisions as the
literal scan, at a cost proportional to those candidates, not to the waitlist.

Finer still: the candidates of ``s`` are indexed by (session, age group). When
one more child of group ``g`` no longer fits ``s`` by rule 3
(:meth:`Occupancy.room_for_one`), no request bringing a child of group ``g``
fits ``s`` (every rule-3 quantity is monotone in the children added), and since
the scan only adds places this stays true until its end: that group's stream is
dropped. In the usual case (a full session frees one place) the first candidate
takes it and the scan ends after one check.

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

import contextlib
import datetime as dt
import gc
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from heapq import heapify, heappop, heapreplace
from typing import TYPE_CHECKING, Any, NamedTuple, NoReturn

import numpy as np

from slotalloc.compile import Compiled, _groups_vectorised, compile_instance
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    ChildConflictError,
    DuplicateRequestError,
    IneligibleRequestError,
    InvalidStateError,
    UnknownChildError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.models import Assignment, Child, Instance, Request, Session, Solution, Status
from slotalloc.rules import Occupancy, Rule

if TYPE_CHECKING:
    from slotalloc.result import Result

__all__ = [
    "STATE_FORMAT",
    "Allocator",
    "Cancellation",
    "Decision",
    "GroupOccupancy",
    "Placement",
    "RequestStatus",
    "SessionOccupancy",
]

#: Tag of the plain data of :meth:`Allocator.state`; :meth:`Allocator.restore` checks it.
STATE_FORMAT = "slotalloc.online-state/1"

# Request states.
_IDLE = 0  # a request of the starting instance without a place: holds nothing, never waits
_HELD = 1
_WAITING = 2

_NO_ARCS: list[Any] = []  # shared placeholder: a request's arcs matter only while it waits

# An arc is (session index, ((group, count), ...), rank): what the request
# brings to that session, computed once when the request arrives.
_Arc = tuple[int, tuple[tuple[int, int], ...], int]


_new = object.__new__

# Occupancy.violation's labels as rules (the reason a waitlisted request gets).
_RULE_OF_VIOLATION = {
    "3-capacity": Rule.CAPACITY,
    "3-group-cap": Rule.GROUP_CAP,
    "3-caregivers": Rule.CAREGIVERS,
    "4-overlap": Rule.OVERLAP,
    "5-per-child-cap": Rule.PER_CHILD_CAP,
}


def _by_order(rec: _Req) -> int:
    return rec.order


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause CPython's cyclic collector while a large state is built.

    Building a state allocates a few objects per request and no reference
    cycles, so the collector finds nothing, but its passes traverse the whole
    growing heap again and again: measured, more than half of a 100 000-request
    :meth:`Allocator.restore`. Nested use is fine; the collector is turned back
    on only if it was on.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Placement(NamedTuple):
    """A request placed in a session (ids)."""

    request: str
    session: str


class Decision:
    """The outcome of :meth:`Allocator.book`.

    Attributes
    ----------
    request
        The request id.
    session
        The session id taken, or None when waitlisted.
    waitlisted
        Whether the request joined the waitlist.
    reason
        Why it was waitlisted: the rule its first preference would break at
        that moment (:attr:`Rule.ELIGIBILITY` when the first preference does not
        take a child at its age, else :attr:`Rule.CAPACITY`,
        :attr:`Rule.GROUP_CAP`, :attr:`Rule.CAREGIVERS`, :attr:`Rule.OVERLAP` or
        :attr:`Rule.PER_CHILD_CAP`, the first broken in that order); None when a
        place was taken.
    sequence
        Position of this operation in the allocator's serial order (successful
        operations only, from 0): the order the lock serialised them in.
    """

    __slots__ = ("reason", "request", "sequence", "session", "waitlisted")

    def __init__(
        self, request: str, session: str | None, sequence: int, reason: Rule | None = None
    ) -> None:
        self.request = request
        self.session = session
        self.waitlisted = session is None
        self.reason = reason
        self.sequence = sequence

    def __repr__(self) -> str:
        why = "" if self.reason is None else f", reason={self.reason.value!r}"
        return (
            f"Decision(request={self.request!r}, session={self.session!r}, "
            f"waitlisted={self.waitlisted}{why})"
        )


class Cancellation:
    """The outcome of :meth:`Allocator.cancel`.

    Attributes
    ----------
    request
        The request id cancelled.
    session
        The session whose place was freed, or None when the request was waitlisted.
    promoted
        The waitlisted requests that took a place, in waitlist order.
    sequence
        Position of this operation in the allocator's serial order.
    """

    __slots__ = ("promoted", "request", "sequence", "session")

    def __init__(
        self, request: str, session: str | None, promoted: list[Placement], sequence: int
    ) -> None:
        self.request = request
        self.session = session
        self.promoted = promoted
        self.sequence = sequence

    def __repr__(self) -> str:
        return (
            f"Cancellation(request={self.request!r}, session={self.session!r}, "
            f"promoted={self.promoted!r})"
        )


@dataclass(frozen=True)
class RequestStatus:
    """Where a request stands (:meth:`Allocator.status`).

    Attributes
    ----------
    request
        The request id.
    session
        The session held, or None.
    waitlisted
        Whether the request is on the waitlist.
    cancelled
        Whether the id is used but the request is gone: cancelled, or an id
        carried in as used (``used_ids``, :meth:`Allocator.restore`).
    position
        The place in the waitlist when waitlisted (1 is the head: the first
        scanned when a place is freed), else None.
    """

    request: str
    session: str | None
    waitlisted: bool
    cancelled: bool
    position: int | None = None


@dataclass(frozen=True)
class GroupOccupancy:
    """One age group in one session (part of :class:`SessionOccupancy`).

    Attributes
    ----------
    group
        The age group's name.
    taken
        Children of this group placed in the session.
    cap
        The session's cap for this group.
    ratio
        Children per caregiver for this group.
    caregivers_needed
        This group's term of the session's caregiver need: ``ceil(taken /
        ratio)`` with ``per_group`` staffing, the exact ``taken / ratio`` when
        ``pooled``.
    """

    group: str
    taken: int
    cap: int
    ratio: int
    caregivers_needed: int | Fraction


@dataclass(frozen=True)
class SessionOccupancy:
    """Places taken and caregivers needed in one session (:meth:`Allocator.occupancy`).

    Attributes
    ----------
    session
        The session id.
    capacity
        Places in the session.
    taken
        Children placed.
    caregivers_available
        The session's caregivers.
    caregivers_needed
        Caregivers the placed children need under the policy's staffing (an
        int with ``per_group``, an exact fraction when ``pooled``).
    staffing
        ``"per_group"`` or ``"pooled"``.
    requests
        The requests holding a place, in request order (the order of
        :meth:`Allocator.export`).
    groups
        One entry per age group, in policy order.
    site
        The session's site.
    start, end
        The session's interval, as the instance gives it (ISO 8601 with offset).
    waiting
        Waitlisted requests that have this session among the preferences
        they are eligible for.
    """

    session: str
    capacity: int
    taken: int
    caregivers_available: int
    caregivers_needed: int | Fraction
    staffing: str
    requests: tuple[str, ...]
    groups: tuple[GroupOccupancy, ...]
    site: str = ""
    start: str = ""
    end: str = ""
    waiting: int = 0

    def to_json(self) -> dict[str, Any]:
        """The same as JSON data (exact fractions become floats).

        Returns
        -------
        dict
            The attributes by name, ``groups`` as a list of dicts.
        """

        def num(x: int | Fraction) -> int | float:
            return int(x) if isinstance(x, int) else float(x)

        return {
            "session": self.session,
            "capacity": self.capacity,
            "taken": self.taken,
            "caregivers_available": self.caregivers_available,
            "caregivers_needed": num(self.caregivers_needed),
            "staffing": self.staffing,
            "requests": list(self.requests),
            "site": self.site,
            "start": self.start,
            "end": self.end,
            "waiting": self.waiting,
            "groups": [
                {
                    "group": g.group,
                    "taken": g.taken,
                    "cap": g.cap,
                    "ratio": g.ratio,
                    "caregivers_needed": num(g.caregivers_needed),
                }
                for g in self.groups
            ],
        }


class _Req:
    """One request the engine knows (plain slots: this is the hot path).

    No ``__init__``: calling a class with a Python ``__init__`` costs a frame,
    about as much as all the slot stores together, so the admission path builds
    it as ``_Req()`` and sets the slots itself; elsewhere :func:`_new_req`.
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
    arcs: list[_Arc]
    source: Request | dict[str, Any]
    state: int
    arc: _Arc | None
    seq: int


def _new_req(
    rid: str,
    kids: tuple[int, ...],
    arcs: list[_Arc],
    source: Request | dict[str, Any],
    order: int,
) -> _Req:
    """A request holding nothing, not waitlisted (the slots :meth:`Allocator._admit` sets)."""
    rec = _Req()
    rec.id = rid
    rec.order = order
    rec.kids = kids
    rec.size = len(kids)
    rec.arcs = arcs
    rec.source = source
    rec.state = _IDLE
    rec.arc = None
    rec.seq = -1
    return rec


class Allocator:
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

    # ------------------------------------------------------------ construction

    def _setup(self, instance: Instance, compiled: Compiled | None) -> None:
        c = compiled if compiled is not None else compile_instance(instance)
        self._lock = threading.Lock()
        self._instance = instance
        self._compiled = c
        self._session_ids: tuple[str, ...] = c.session_ids
        self._sidx: dict[str, int] = dict(instance.session_index)
        self._G: int = c.n_groups
        self._S: int = c.n_sessions
        self._single: list[tuple[tuple[int, int], ...]] = [((g, 1),) for g in range(self._G)]
        # group_of reads a session only through its start date and its age range, so
        # sessions sharing those form one eligibility class: a child's group is
        # computed once per class (on a representative session), not once per
        # session. A city has hundreds of sessions but a handful of classes.
        classes: dict[tuple[int, ...], int] = {}
        self._class_of: list[int] = []
        self._class_rep: list[int] = []
        keys = zip(c.sess_date.tolist(), c.min_months.tolist(), c.max_months.tolist(), strict=True)
        for s, (date, lo, hi) in enumerate(keys):
            k = classes.setdefault((*date, lo, hi), len(classes))
            if k == len(self._class_rep):
                self._class_rep.append(s)
            self._class_of.append(k)
        rep = np.asarray(self._class_rep, dtype=np.int64)
        self._rep_date = c.sess_date[rep]
        self._rep_lo = c.min_months[rep]
        self._rep_hi = c.max_months[rep]
        self._occ = Occupancy(c)
        obj = instance.objective
        self._w = (obj.serve, obj.priority, obj.rank)
        # children
        self._cidx: dict[str, int] = {}
        self._birth: list[dt.date] = []
        self._rows: list[list[int]] = []
        self._row_of_date: dict[dt.date, list[int]] = {}
        self._new_children: list[Child | dict[str, Any]] = []
        dates = list(dict.fromkeys(ch.birth_date for ch in instance.children))
        self._row_of_date.update(zip(dates, self._eligibility(dates), strict=True))
        for ch in instance.children:
            self._add_child(ch.id, ch.birth_date)
        # requests: an id is used when it is live or gone (cancelled, or carried in)
        self._live: dict[str, _Req] = {}
        self._gone: set[str] = set()
        for i, r in enumerate(instance.requests):
            self._live[r.id] = _new_req(r.id, (), [], r, i)
        self._next_order = len(instance.requests)
        self._start_ids: frozenset[str] = frozenset(self._live)
        # The requests holding a place, per session (for occupancy()).
        self._holders: list[dict[str, _Req]] = [{} for _ in range(self._S)]
        # waitlist: FIFO by sequence number, with indices by (session, group) and by child
        # (sequence numbers, ascending; see _enqueue and _dequeue)
        self._wait: dict[int, _Req] = {}
        self._wait_sg: list[deque[int]] = [deque() for _ in range(self._S * self._G)]
        self._sg_stale: list[int] = [0] * (self._S * self._G)
        self._wait_c: dict[int, list[int]] = {}
        self._next_seq = 0
        self._ops = 0
        self.initial_promotions: list[Placement] = []

    def _add_child(self, cid: str, birth: dt.date) -> int:
        ci = len(self._birth)
        self._cidx[cid] = ci
        self._birth.append(birth)
        row = self._row_of_date.get(birth)
        if row is None:
            # Eligibility depends on the child only through its birth date: share the row.
            row = self._row_of_date[birth] = self._eligibility([birth])[0]
        self._rows.append(row)
        return ci

    def _eligibility(self, dates: Sequence[dt.date]) -> list[list[int]]:
        """Per birth date, its age group in each session class, or -1 (``group_of``).

        Computed by the compiler's own vectorised formula, one numpy pass for all
        the dates, when a birth date is first seen: the starting children's at
        construction (about 1 ms for a city's thousand-odd birth dates), a new
        one when a book declares it (about 12 µs). Calling ``group_of`` lazily
        on the booking path instead cost about 5 µs per (birth date, class)
        pair, paid again by every fresh allocator.
        """
        n, k = len(dates), len(self._class_rep)
        births = np.array([(d.year, d.month, d.day) for d in dates], dtype=np.int64)
        groups = _groups_vectorised(
            np.repeat(births.reshape(n, 3), k, axis=0),
            np.tile(self._rep_date, (n, 1)),
            np.tile(self._rep_lo, n),
            np.tile(self._rep_hi, n),
            self._compiled.month_group,
        )
        rows: list[list[int]] = groups.reshape(n, k).tolist()
        return rows

    def _group(self, ci: int, s: int) -> int:
        """The age group of child ``ci`` in session ``s``, or -1 (as ``group_of``)."""
        return self._rows[ci][self._class_of[s]]

    def _arcs(self, kids: Sequence[int], sessions: Sequence[int]) -> list[_Arc]:
        """The eligible preferences of a request, in rank order, with their group counts."""
        arcs: list[_Arc] = []
        if len(kids) == 1:
            ci = kids[0]
            row = self._rows[ci]
            single = self._single
            class_of = self._class_of
            for rank, s in enumerate(sessions):
                g = row[class_of[s]]
                if g >= 0:
                    arcs.append((s, single[g], rank))
            return arcs
        rows = [self._rows[ci] for ci in kids]
        class_of = self._class_of
        for rank, s in enumerate(sessions):
            k = class_of[s]
            counts: dict[int, int] = {}
            for row in rows:
                g = row[k]
                if g < 0:
                    break
                counts[g] = counts.get(g, 0) + 1
            else:
                arcs.append((s, tuple(sorted(counts.items())), rank))
        return arcs

    def _hold_all(self, held: Iterable[tuple[str, str]], what: str) -> None:
        """Take the places already held, checking each against those before it."""
        occ = self._occ
        seen: set[str] = set()
        for i, (rid, sid) in enumerate(held):
            where = f"{what}[{i}] (request {rid!r}, session {sid!r})"
            rec = self._live.get(rid)
            if rec is None:
                raise InvalidStateError(f"{where}: rule 1 broken: unknown request {rid!r}.")
            if rid in seen:
                raise InvalidStateError(f"{where}: rule 7 broken: {rid!r} holds a second place.")
            seen.add(rid)
            source = rec.source
            assert isinstance(source, Request)
            s = self._sidx.get(sid)
            if s is None or sid not in source.preferences:
                raise InvalidStateError(
                    f"{where}: rule 1 broken: {sid!r} is not one of the request's preferences."
                )
            kids = tuple(self._cidx[c] for c in source.children)
            counts: dict[int, int] = {}
            for cid, ci in zip(source.children, kids, strict=True):
                g = self._group(ci, s)
                if g < 0:
                    raise InvalidStateError(
                        f"{where}: rule 2 broken: child {cid!r} is not eligible for {sid!r}."
                    )
                counts[g] = counts.get(g, 0) + 1
            groups = tuple(sorted(counts.items()))
            broken = occ.violation(s, len(kids), groups, kids)
            if broken is not None:
                raise InvalidStateError(f"{where}: rule {broken} broken with the places before it.")
            occ.add(s, len(kids), groups, kids)
            rec.kids = kids
            rec.size = len(kids)
            rec.state = _HELD
            rec.arc = (s, groups, source.preferences.index(sid))
            self._holders[s][rid] = rec

    @classmethod
    def from_result(
        cls,
        instance: Instance,
        result: Result | Solution,
        *,
        compiled: Compiled | None = None,
    ) -> Allocator:
        """Serve late bookings after a batch allocation of the same instance.

        The places held are the result's assignments; the instance's other
        requests join the waitlist in file order; then one full waitlist scan
        runs, as after a cancellation (its promotions are kept in
        :attr:`initial_promotions`). The instance's bookings are not places held.

        Parameters
        ----------
        instance
            The instance the result allocates.
        result
            A batch :class:`~slotalloc.Result` (``slotalloc.solve(instance)``) or
            a :class:`~slotalloc.Solution`, e.g. read from a solution file with
            ``slotalloc.io.load_solution``: only its ``assignments`` are read.
        compiled
            ``compile_instance(instance)`` when the caller has it already.

        Returns
        -------
        Allocator
            Ready for :meth:`book` and :meth:`cancel`.

        Raises
        ------
        InvalidStateError
            When the assignments break one of FORMAT §2 rules 1-5 or 7 (naming
            the first assignment that does).
        """
        self = cls.__new__(cls)
        self._setup(instance, compiled)
        self._hold_all(((a.request, a.session) for a in result.assignments), "assignments")
        sidx, cidx = self._sidx, self._cidx
        for rec in self._live.values():
            if rec.state == _IDLE:
                source = rec.source
                assert isinstance(source, Request)
                rec.kids = tuple(cidx[c] for c in source.children)
                rec.size = len(rec.kids)
                arcs = self._arcs(rec.kids, [sidx[p] for p in source.preferences])
                if arcs:  # one no preference could ever take would wait forever (FORMAT §3)
                    rec.arcs = arcs
                    self._enqueue(rec)
        self.initial_promotions = self._full_scan()
        return self

    # ------------------------------------------------------------ waitlist

    def _enqueue(self, rec: _Req) -> None:
        """Put a request at the end of the waitlist and of its index streams.

        The streams hold sequence numbers, appended in increasing order. A
        (session, group) stream is a deque that may keep *stale* numbers (of
        requests that left the waitlist) in its interior, counted in
        ``_sg_stale``; its head is always a waitlisted request (see
        :meth:`_dequeue`). A child's stream is a short list kept exact.
        """
        seq = self._next_seq
        self._next_seq = seq + 1
        rec.seq = seq
        rec.state = _WAITING
        self._wait[seq] = rec
        if rec.arcs:
            # A request with no eligible preference can never be promoted: index it nowhere.
            wsg, G = self._wait_sg, self._G
            for s, groups, _rank in rec.arcs:
                base = s * G
                for g, _k in groups:
                    wsg[base + g].append(seq)
            wc = self._wait_c
            for ci in rec.kids:
                d = wc.get(ci)
                if d is None:
                    wc[ci] = [seq]
                else:
                    d.append(seq)

    def _dequeue(self, rec: _Req) -> None:
        """Take a request off the waitlist (amortised O(its arcs + children)).

        Leaving the head of a (session, group) stream (the usual promotion) pops
        it and the stale numbers behind it, so a scan never starts on stale
        ones; leaving its interior only counts one more stale number, and a
        stream more than half stale is rebuilt (each rebuild is paid for by the
        departures since the last one).
        """
        seq = rec.seq
        wait = self._wait
        del wait[seq]
        if rec.arcs:
            wsg, stale, G = self._wait_sg, self._sg_stale, self._G
            for s, groups, _rank in rec.arcs:
                base = s * G
                for g, _k in groups:
                    k = base + g
                    q = wsg[k]
                    n = stale[k]
                    if q[0] == seq:
                        q.popleft()
                        while n and q[0] not in wait:
                            q.popleft()
                            n -= 1
                    else:
                        n += 1
                        if 2 * n > len(q):
                            wsg[k] = deque([x for x in q if x in wait])
                            n = 0
                    stale[k] = n
            wc = self._wait_c
            for ci in rec.kids:
                d = wc[ci]
                if len(d) == 1:
                    del wc[ci]
                else:
                    d.remove(seq)

    def _full_scan(self) -> list[Placement]:
        """The literal scan over the whole waitlist (used once, by :meth:`from_result`)."""
        try_add = self._occ.try_add
        promoted: list[_Req] = []
        for rec in list(self._wait.values()):
            for arc in rec.arcs:
                if try_add(arc[0], rec.size, arc[1], rec.kids):
                    rec.arc = arc
                    promoted.append(rec)
                    break
        return self._settle(promoted)

    def _settle(self, promoted: list[_Req]) -> list[Placement]:
        sid = self._session_ids
        out: list[Placement] = []
        holders = self._holders
        for rec in promoted:
            self._dequeue(rec)
            rec.state = _HELD
            assert rec.arc is not None
            s = rec.arc[0]
            holders[s][rec.id] = rec
            out.append(Placement(rec.id, sid[s]))
        return out

    def _scan_after_free(self, s: int, freed: tuple[int, ...]) -> list[Placement]:
        """The waitlist scan after a place of children ``freed`` in ``s`` was freed.

        Visits only the candidates (see the module notes), in FIFO order, by a
        merge of the index streams: one per age group with room left in ``s``,
        one per freed child. The streams are not changed while iterated: the
        promoted requests leave the waitlist after the scan. Stale numbers in a
        stream (see :meth:`_enqueue`) are skipped; they are at most as many as
        the waitlisted ones in it, and never at its head.
        """
        occ = self._occ
        G = self._G
        wsg = self._wait_sg
        streams: list[Any] = []
        group_of_stream: list[int] = []  # age group of a session stream, -1 for a child stream
        base = s * G
        stale = self._sg_stale
        for g in range(G):
            d = wsg[base + g]
            if len(d) > stale[base + g] and occ.room_for_one(s, g):
                streams.append(iter(d))
                group_of_stream.append(g)
        wc = self._wait_c
        for ci in freed:
            dc = wc.get(ci)
            if dc:
                streams.append(iter(dc))
                group_of_stream.append(-1)
        if not streams:
            return []
        heap: list[tuple[int, int]] = []
        for i, it in enumerate(streams):
            heap.append((next(it), i))
        heapify(heap)
        alive = [True] * len(streams)
        wait = self._wait
        try_add = occ.try_add
        room = occ.room_for_one
        visited: set[int] = set()
        promoted: list[_Req] = []
        n_session_streams = sum(1 for g in group_of_stream if g >= 0)
        while heap:
            seq, i = heap[0]
            if not alive[i]:
                heappop(heap)
                continue
            nxt = next(streams[i], None)
            if nxt is None:
                heappop(heap)
            else:
                heapreplace(heap, (nxt, i))
            if seq in visited:
                continue
            visited.add(seq)
            rec = wait.get(seq)
            if rec is None:  # stale: the request left the waitlist
                continue
            kids = rec.kids
            shares = False
            for ci in kids:
                if ci in freed:
                    shares = True
                    break
            if shares:
                for arc in rec.arcs:
                    if try_add(arc[0], rec.size, arc[1], kids):
                        rec.arc = arc
                        break
                else:
                    continue
            else:
                for arc in rec.arcs:
                    if arc[0] == s:
                        break
                else:  # pragma: no cover - indexed under s, so it has an arc there
                    continue
                if not try_add(s, rec.size, arc[1], kids):
                    continue
                rec.arc = arc
            promoted.append(rec)
            if rec.arc[0] == s and n_session_streams:
                for j, g in enumerate(group_of_stream):
                    if g >= 0 and alive[j] and not room(s, g):
                        alive[j] = False
                        n_session_streams -= 1
        return self._settle(promoted)

    # ------------------------------------------------------------ operations

    def _admit(
        self,
        rid: str,
        kid_ids: Sequence[str],
        pref_ids: Sequence[str],
        declared: Sequence[tuple[str, dt.date, Child | dict[str, Any]]],
        source: Request | dict[str, Any],
    ) -> _Req:
        """Check a book event, then place or waitlist it. Raises before changing anything."""
        if rid in self._live or rid in self._gone:
            raise DuplicateRequestError(f"request id {rid!r} was used before")
        cidx = self._cidx
        added: Sequence[str] = ()  # children added here, given back if the event is refused
        one, one_ci = "", -1  # the one declared child and its index (no id is empty)
        if len(declared) == 1:
            # One declared child (the usual book of a new family): one look-up, and
            # _add_child inlined; the general loop below does the same in three passes.
            one, bd, src = declared[0]
            known = cidx.get(one)
            if known is None:
                birth = self._birth
                one_ci = cidx[one] = len(birth)
                birth.append(bd)
                row = self._row_of_date.get(bd)
                if row is None:
                    row = self._row_of_date[bd] = self._eligibility([bd])[0]
                self._rows.append(row)
                self._new_children.append(src)
                added = (one,)
            elif self._birth[known] != bd:
                # Never the known date: an error must not disclose stored personal data.
                raise ChildConflictError(
                    f"child {one!r} is declared with a birth date that differs from the one known"
                )
            else:
                one_ci = known
        elif declared:
            if len({d[0] for d in declared}) < len(declared):
                seen: set[str] = set()
                for cid, _bd, _src in declared:
                    if cid in seen:
                        raise ChildConflictError(f"child {cid!r} is declared twice")
                    seen.add(cid)
            birth = self._birth
            for cid, bd, _src in declared:
                known = cidx.get(cid)
                if known is not None and birth[known] != bd:
                    raise ChildConflictError(
                        f"child {cid!r} is declared with a birth date that differs "
                        "from the one known"
                    )
            # Taken now and given back below if the event is refused after all.
            new_children = self._new_children
            new_ids: list[str] = []
            for cid, bd, src in declared:
                if cid not in cidx:
                    self._add_child(cid, bd)
                    new_children.append(src)
                    new_ids.append(cid)
            added = new_ids
        sidx = self._sidx
        G = self._G
        open_ = self._occ.open
        try:
            if len(kid_ids) == 1:
                # One child (nine requests in ten). First pass: every preference is
                # looked up (an unknown one refuses the event before any change) and
                # the eligible ones become arcs with their (session, group) index
                # slots. ``first``: the first arc rule 3 leaves open for one child
                # (Occupancy.open); rule 3 is the usual refusal, so a request with none
                # is waitlisted without any try_add.
                kid = kid_ids[0]
                ci = one_ci if kid == one else cidx[kid]
                row = self._rows[ci]
                class_of = self._class_of
                single = self._single
                arcs: list[_Arc] = []
                keys: list[int] = []
                first = -1
                for rank, p in enumerate(pref_ids):
                    s = sidx[p]
                    g = row[class_of[s]]
                    if g < 0:
                        continue
                    k = s * G + g
                    if first < 0 and open_[k]:
                        first = len(keys)
                    arcs.append((s, single[g], rank))
                    keys.append(k)
                kids: tuple[int, ...] = (ci,)
            else:
                kids = tuple([cidx[c] for c in kid_ids])
                sessions = [sidx[p] for p in pref_ids]
        except KeyError:
            error: BookingError
            missing = [c for c in kid_ids if c not in cidx]
            if missing:
                error = UnknownChildError(f"unknown child {missing[0]!r}")
            else:
                bad = next(p for p in pref_ids if p not in sidx)
                error = UnknownSessionError(f"unknown session {bad!r}")
            if added:
                self._forget_children(added)
            raise error from None
        if len(kids) == 1:
            if not arcs:
                self._refuse_ineligible(rid, added)
        else:
            arcs = self._arcs(kids, sessions)
            if not arcs:
                self._refuse_ineligible(rid, added)
        # Nothing can fail from here on.
        order = self._next_order
        self._next_order = order + 1
        rec = _Req()  # the slots of _new_req, set here without a call
        rec.id = rid
        rec.order = order
        rec.kids = kids
        rec.source = source
        self._live[rid] = rec
        if len(kids) == 1:
            rec.size = 1
            if first >= 0:
                try_add = self._occ.try_add
                for i in range(first, len(keys)):
                    if open_[keys[i]]:
                        arc = arcs[i]
                        if try_add(arc[0], 1, arc[1], kids):
                            rec.state = _HELD
                            rec.arc = arc
                            rec.arcs = _NO_ARCS
                            rec.seq = -1
                            self._holders[arc[0]][rid] = rec
                            return rec
            # _enqueue inlined (nine books in ten end here on a busy day), with the
            # index slots already computed.
            seq = self._next_seq
            self._next_seq = seq + 1
            rec.seq = seq
            rec.state = _WAITING
            rec.arc = None
            rec.arcs = arcs
            self._wait[seq] = rec
            if keys:
                wsg = self._wait_sg
                for k in keys:
                    wsg[k].append(seq)
                wc = self._wait_c
                d = wc.get(ci)
                if d is None:
                    wc[ci] = [seq]
                else:
                    d.append(seq)
            return rec
        size = rec.size = len(kids)
        rec.arc = None
        rec.arcs = _NO_ARCS
        rec.seq = -1
        rec.state = _IDLE
        try_add = self._occ.try_add
        for arc in arcs:
            s, groups, _rank = arc
            base = s * G
            for g, _k in groups:
                if not open_[base + g]:
                    break  # one more child of group g does not fit s (rule 3): nor do these
            else:
                if try_add(s, size, groups, kids):
                    rec.state = _HELD
                    rec.arc = arc
                    self._holders[s][rid] = rec
                    return rec
        rec.arcs = arcs
        self._enqueue(rec)
        return rec

    def _refuse_ineligible(self, rid: str, added: Sequence[str]) -> NoReturn:
        """Refuse a request no preference could ever take (FORMAT §3), changing nothing."""
        if added:
            self._forget_children(added)
        raise IneligibleRequestError(
            f"request {rid!r}: no preference for which every child of the request is "
            "eligible at its age (rule 2), so it could never be placed"
        )

    def _wait_reason(self, rec: _Req) -> Rule:
        """Why a waitlisted request's first preference cannot take it now."""
        arcs = rec.arcs
        if not arcs or arcs[0][2] != 0:
            return Rule.ELIGIBILITY
        s, groups, _rank = arcs[0]
        broken = self._occ.violation(s, rec.size, groups, rec.kids)
        return _RULE_OF_VIOLATION.get(broken, Rule.CAPACITY) if broken else Rule.CAPACITY

    def _forget_children(self, ids: Sequence[str]) -> None:
        """Give back the children just added (a refused event changes nothing)."""
        for cid in ids:
            del self._cidx[cid]
            self._new_children.pop()
            self._birth.pop()
            self._rows.pop()

    def book(self, request: Request, children: Sequence[Child] = ()) -> Decision:
        """Book a request: its first feasible preference now, else the end of the waitlist.

        Parameters
        ----------
        request
            A validated request; its id must not have been used before.
        children
            Children not known yet (re-declaring a known child with the same
            birth date is allowed).

        Returns
        -------
        Decision
            ``session`` taken (None when waitlisted) and ``waitlisted``.

        Raises
        ------
        DuplicateRequestError
            The request id was used before (even by a request since cancelled).
        ChildConflictError
            A child is declared twice, or with another birth date than the known one.
        UnknownChildError
            A child of the request is neither known nor declared.
        UnknownSessionError
            A preference names no session.
        IneligibleRequestError
            No preference takes every child of the request at its age (FORMAT
            §3): the request could never be placed.
        """
        # Fields read from the models' __dict__, where pydantic v2 keeps them: a plain
        # attribute read first searches the model class's long MRO for a descriptor
        # (measured ~18 ns a field against ~4 ns; three to four fields a book).
        declared: Sequence[tuple[str, dt.date, Child]] = ()
        if len(children) == 1:
            c = children[0]
            f = c.__dict__
            declared = ((f["id"], f["birth_date"], c),)
        elif children:
            declared = [(c.id, c.birth_date, c) for c in children]
        f = request.__dict__
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__/__exit__ look-ups cost more than these calls
        try:
            rec = self._admit(f["id"], f["children"], f["preferences"], declared, request)
            # Read under the lock: a cancellation right after it may promote this
            # request, and the decision must say what this book did.
            arc = rec.arc
            reason = None if arc is not None else self._wait_reason(rec)
            seq = self._ops
            self._ops = seq + 1
        finally:
            lock.release()
        # Built without Decision.__init__ (a Python frame): the same five slots.
        d = _new(Decision)
        d.request = rec.id
        d.reason = reason
        if arc is None:
            d.session = None
            d.waitlisted = True
        else:
            d.session = self._session_ids[arc[0]]
            d.waitlisted = False
        d.sequence = seq
        return d

    def _cancel(self, rid: str) -> tuple[str | None, list[Placement]]:
        rec = self._live.get(rid)
        if rec is None or rec.state == _IDLE:
            if rec is None and rid in self._gone:
                raise AlreadyCancelledError(f"request {rid} is already cancelled")
            raise UnknownRequestError(f"unknown request {rid}")
        del self._live[rid]
        self._gone.add(rid)
        if rec.state == _WAITING:
            self._dequeue(rec)
            return None, []
        arc = rec.arc
        assert arc is not None
        s = arc[0]
        self._occ.remove(s, rec.size, arc[1], rec.kids)
        del self._holders[s][rid]
        rec.state = _IDLE
        return self._session_ids[s], self._scan_after_free(s, rec.kids)

    def cancel(self, request_id: str) -> Cancellation:
        """Cancel a request: free its place and promote from the waitlist, or leave the waitlist.

        Parameters
        ----------
        request_id
            A request holding a place or waitlisted.

        Returns
        -------
        Cancellation
            With ``promoted``: the waitlisted requests that took a place, in order.

        Raises
        ------
        AlreadyCancelledError
            The request was cancelled before (or its id was carried in as used).
        UnknownRequestError
            The request holds no place and is not waitlisted (never booked, a
            starting request without a booking, or unknown).
        """
        with self._lock:
            session, promoted = self._cancel(request_id)
            seq = self._ops
            self._ops = seq + 1
        return Cancellation(request_id, session, promoted, seq)

    # ------------------------------------------------------------ reading the state

    def held(self) -> dict[str, str]:
        """Request id -> session id of every place held, in request order."""
        sid = self._session_ids
        with self._lock:
            return {
                rid: sid[rec.arc[0]]
                for rid, rec in self._live.items()
                if rec.state == _HELD and rec.arc is not None
            }

    def waitlist(self) -> list[str]:
        """The waitlisted request ids, head first."""
        with self._lock:
            return [rec.id for rec in self._wait.values()]

    def status(self, request_id: str) -> RequestStatus:
        """Where a request stands: holding a place, waitlisted, cancelled, or holding nothing.

        Parameters
        ----------
        request_id
            Any request id.

        Returns
        -------
        RequestStatus
            ``session`` held (or None), ``waitlisted``, ``cancelled``. A starting
            request without a booking holds nothing and is neither.

        Raises
        ------
        UnknownRequestError
            The id was never used (nor carried in as used).
        """
        with self._lock:
            rec = self._live.get(request_id)
            if rec is None:
                if request_id in self._gone:
                    return RequestStatus(request_id, None, False, True)
                raise UnknownRequestError(f"unknown request {request_id}")
            return self._status_of(rec)

    def _status_of(self, rec: _Req) -> RequestStatus:
        """The status of a live request (under the lock)."""
        arc = rec.arc
        if rec.state == _HELD and arc is not None:
            return RequestStatus(rec.id, self._session_ids[arc[0]], False, False)
        if rec.state != _WAITING:
            return RequestStatus(rec.id, None, False, False)
        # The waitlist dict is in sequence order: count those ahead (a query, not the hot path).
        ahead = sum(1 for q in self._wait if q < rec.seq)
        return RequestStatus(rec.id, None, True, False, ahead + 1)

    def requests_of(
        self, *, child: str | None = None, household: str | None = None
    ) -> list[RequestStatus]:
        """The live requests of a child, or of any child of a household, in request order.

        Parameters
        ----------
        child
            A child id.
        household
            A household label (``Child.household``).

        Returns
        -------
        list of RequestStatus
            One per request that names the child (or a child of the household)
            and is not cancelled; empty when there is none.

        Raises
        ------
        ValueError
            Unless exactly one of ``child`` and ``household`` is given.
        """
        if (child is None) == (household is None):
            raise ValueError("give exactly one of child and household")
        with self._lock:
            if child is not None:
                ci = self._cidx.get(child)
                wanted = set() if ci is None else {ci}
            else:
                wanted = {
                    self._cidx[c_id]
                    for c_id, hh in self._households()
                    if hh == household and c_id in self._cidx
                }
            out = []
            for rec in self._live.values():
                kids = rec.kids
                if not kids and rec.state == _IDLE:
                    src = rec.source
                    names = src.children if isinstance(src, Request) else src["children"]
                    kids = tuple(self._cidx[c] for c in names)
                if wanted.intersection(kids):
                    out.append(self._status_of(rec))
            return out

    def _households(self) -> Iterator[tuple[str, str | None]]:
        """(child id, household) of every known child, starting and declared."""
        for ch in self._instance.children:
            yield ch.id, ch.household
        for src in self._new_children:
            if isinstance(src, Child):
                yield src.id, src.household
            else:
                yield src["id"], src.get("household")

    def occupancy(self, session_id: str) -> SessionOccupancy:
        """Places taken and caregivers needed in one session, by age group.

        Read from the counts the engine keeps (no recomputation over requests).

        Parameters
        ----------
        session_id
            A session of the instance.

        Returns
        -------
        SessionOccupancy
            Totals, the holders in request order, and one entry per age group.

        Raises
        ------
        UnknownSessionError
            No such session.
        """
        return self.occupancies([session_id])[0]

    def occupancies(self, session_ids: Sequence[str] | None = None) -> list[SessionOccupancy]:
        """:meth:`occupancy` of several sessions (all when None), the state read once.

        Parameters
        ----------
        session_ids
            Sessions of the instance, or None for every session in instance order.

        Returns
        -------
        list of SessionOccupancy
            In the order asked.

        Raises
        ------
        UnknownSessionError
            A session id that does not exist.
        """
        ids = list(self._session_ids if session_ids is None else session_ids)
        idx = []
        for sid in ids:
            s = self._sidx.get(sid)
            if s is None:
                raise UnknownSessionError(f"unknown session {sid!r}")
            idx.append(s)
        occ = self._occ
        with self._lock:
            counts = [list(occ.group_taken[s]) for s in idx]
            need = [occ.need[s] for s in idx]
            holders = [sorted(self._holders[s].values(), key=_by_order) for s in idx]
            waiting = [0] * self._S
            for rec in self._wait.values():
                for arc in rec.arcs:
                    waiting[arc[0]] += 1
        sessions = self._instance.sessions
        return [
            self._occupancy(s, counts[i], need[i], holders[i], waiting[s], sessions[s])
            for i, s in enumerate(idx)
        ]

    def _occupancy(
        self, s: int, counts: list[int], need: int, holders: list[_Req], waiting: int, sess: Session
    ) -> SessionOccupancy:
        c = self._compiled
        ratio = c.ratio.tolist()
        caps = c.group_cap[s].tolist()
        total: int | Fraction
        groups = []
        if c.pooled:
            total = Fraction(need, c.pool_lcm)  # need is kept times lcm(ratios)
            per = [Fraction(n, r) for n, r in zip(counts, ratio, strict=True)]
        else:
            total = need
            per = [-(-n // r) for n, r in zip(counts, ratio, strict=True)]
        for g, name in enumerate(c.group_names):
            groups.append(GroupOccupancy(name, counts[g], caps[g], ratio[g], per[g]))
        return SessionOccupancy(
            session=sess.id,
            capacity=int(c.capacity[s]),
            taken=sum(counts),
            caregivers_available=int(c.caregivers[s]),
            caregivers_needed=total,
            staffing="pooled" if c.pooled else "per_group",
            requests=tuple(r.id for r in holders),
            groups=tuple(groups),
            site=sess.site,
            start=sess.start.isoformat(),
            end=sess.end.isoformat(),
            waiting=waiting,
        )

    # ------------------------------------------------------------ explicit changes

    def _prefs(self, rec: _Req) -> Sequence[str]:
        src = rec.source
        if isinstance(src, Request):
            return src.preferences
        prefs: Sequence[str] = src["preferences"]
        return prefs

    def _arc_to(self, rec: _Req, sid: str, where: str) -> _Arc:
        """The arc of ``rec`` to session ``sid``, checking rules 1 and 2."""
        s = self._sidx.get(sid)
        if s is None:
            raise UnknownSessionError(f"{where}: unknown session {sid!r}")
        prefs = self._prefs(rec)
        if sid not in prefs:
            raise InvalidStateError(
                f"{where}: rule 1 broken: {sid!r} is not one of the request's preferences."
            )
        counts: dict[int, int] = {}
        for ci in rec.kids:
            g = self._group(ci, s)
            if g < 0:
                raise InvalidStateError(f"{where}: rule 2 broken: a child is not eligible.")
            counts[g] = counts.get(g, 0) + 1
        return (s, tuple(sorted(counts.items())), list(prefs).index(sid))

    def apply(
        self,
        moves: Iterable[tuple[str, str]] = (),
        drops: Iterable[str] = (),
        places: Iterable[tuple[str, str]] = (),
    ) -> list[Placement]:
        """Apply explicit changes at once (a rebalance), then one full waitlist scan.

        All the changes are checked together against FORMAT §2 rules 1-5 and 7
        (the places they leave must form a valid assignment), and either all
        happen or none does. Then the dropped requests join the end of the
        waitlist, in request order, and the waitlist is scanned once from its
        head as after a cancellation (:meth:`full_scan`): the moves and drops
        may have freed places.

        Parameters
        ----------
        moves
            (request, session): a request holding a place takes this other
            session, one of its preferences, instead.
        drops
            Requests holding a place that give it up and join the waitlist.
        places
            (request, session): a waitlisted request takes this session, one of
            its preferences, and leaves the waitlist.

        Returns
        -------
        list of Placement
            The promotions of the waitlist scan, in waitlist order.

        Raises
        ------
        UnknownRequestError
            A request id that is not known.
        UnknownSessionError
            A session id that is not known.
        InvalidStateError
            A moved or dropped request holds no place, a placed one is not
            waitlisted, a request is named twice (rule 7), a target is not a
            preference (rule 1) or not eligible (rule 2), or the places the
            changes leave break rule 3, 4 or 5. Nothing was changed.
        """
        with self._lock:
            out = self._apply(list(moves), list(drops), list(places))
            self._ops += 1
        return out

    def _apply(
        self, moves: list[tuple[str, str]], drops: list[str], places: list[tuple[str, str]]
    ) -> list[Placement]:
        seen: set[str] = set()

        def known(rid: str, what: str, want: int) -> _Req:
            where = f"{what} {rid}"
            if rid in seen:
                raise InvalidStateError(f"{where}: rule 7 broken: the request is changed twice.")
            seen.add(rid)
            rec = self._live.get(rid)
            if rec is None:
                raise UnknownRequestError(f"unknown request {rid}")
            if rec.state != want:
                held = "holds no place" if want == _HELD else "is not waitlisted"
                raise InvalidStateError(f"{where}: the request {held}.")
            return rec

        freed: list[_Req] = []
        taking: list[tuple[_Req, _Arc, str]] = []
        dropped: list[_Req] = []
        for rid, sid in moves:
            rec = known(rid, "move", _HELD)
            freed.append(rec)
            taking.append((rec, self._arc_to(rec, sid, f"move {rid}"), f"move {rid} to {sid!r}"))
        for rid in drops:
            rec = known(rid, "drop", _HELD)
            freed.append(rec)
            dropped.append(rec)
        for rid, sid in places:
            rec = known(rid, "place", _WAITING)
            taking.append((rec, self._arc_to(rec, sid, f"place {rid}"), f"place {rid} in {sid!r}"))
        # Rules 3-5 on the whole result: free first, then add one by one. Every
        # rule is monotone, so the adds all succeed exactly when the final set
        # of places is valid, whatever their order.
        occ = self._occ
        for rec in freed:
            arc = rec.arc
            assert arc is not None
            occ.remove(arc[0], rec.size, arc[1], rec.kids)
        added: list[tuple[_Req, _Arc]] = []
        for rec, arc, where in taking:
            broken = occ.violation(arc[0], rec.size, arc[1], rec.kids)
            if broken is not None:
                for r, a in reversed(added):
                    occ.remove(a[0], r.size, a[1], r.kids)
                for r in freed:
                    a0 = r.arc
                    assert a0 is not None
                    occ.add(a0[0], r.size, a0[1], r.kids)
                raise InvalidStateError(f"{where}: rule {broken} broken by the changes.")
            occ.add(arc[0], rec.size, arc[1], rec.kids)
            added.append((rec, arc))
        # Valid: nothing can fail from here on.
        holders = self._holders
        for rec in freed:
            assert rec.arc is not None
            del holders[rec.arc[0]][rec.id]
        for rec, arc, _where in taking:
            if rec.state == _WAITING:
                self._dequeue(rec)
            rec.state = _HELD
            rec.arc = arc
            holders[arc[0]][rec.id] = rec
        sidx = self._sidx
        for rec in sorted(dropped, key=_by_order):
            rec.arc = None
            rec.arcs = self._arcs(rec.kids, [sidx[p] for p in self._prefs(rec)])
            self._enqueue(rec)
        return self._full_scan()

    def full_scan(self) -> list[Placement]:
        """Scan the whole waitlist once from its head (FORMAT §3, as after a cancellation).

        Each waitlisted request feasible at that moment takes its first
        feasible preference. Between operations no waitlisted request is
        feasible (the engine's invariant, see the module notes), so this
        promotes nobody unless the state was changed from outside the
        operations; :meth:`apply` and :meth:`from_result` run it themselves.

        Returns
        -------
        list of Placement
            The promotions, in waitlist order (empty when the invariant holds).
        """
        with self._lock:
            out = self._full_scan()
            self._ops += 1
        return out

    # ------------------------------------------------------------ snapshots

    def state(self) -> dict[str, Any]:
        """The whole state as plain JSON data, for :meth:`restore` (e.g. a snapshot).

        Lists and dicts of str/int/None only (``json.dumps`` takes it as is).
        Requests of the starting instance are named by id; the others carry
        their source as JSON.

        Returns
        -------
        dict
            ``format`` (:data:`STATE_FORMAT`), ``ops``, ``children`` (declared,
            in order), ``requests`` (``[id, status, session, source]`` in request
            order, status ``held``/``waitlisted``/``idle``), ``waitlist`` (ids,
            head first), ``used`` (ids used by requests no longer present, sorted).

        Raises
        ------
        pydantic.ValidationError
            Never (sources are already valid).
        """
        with self._lock:
            recs = list(self._live.values())
            held = [r.arc[0] if r.state == _HELD and r.arc is not None else -1 for r in recs]
            states = [r.state for r in recs]
            waitlist = [r.id for r in self._wait.values()]
            live = self._live
            gone = [rid for rid in self._gone if rid not in live]
            children = list(self._new_children)
            ops = self._ops
        start = self._start_ids
        sid = self._session_ids
        names = {_HELD: "held", _WAITING: "waitlisted", _IDLE: "idle"}
        rows: list[list[Any]] = []
        for r, s, st in zip(recs, held, states, strict=True):
            src: Any
            if r.id in start:
                src = None
            elif isinstance(r.source, Request):
                src = r.source.model_dump(mode="json", exclude_none=True)
            else:
                src = r.source
            rows.append([r.id, names[st], sid[s] if s >= 0 else None, src])
        return {
            "format": STATE_FORMAT,
            "ops": ops,
            "children": [
                c.model_dump(mode="json", exclude_none=True) if isinstance(c, Child) else c
                for c in children
            ],
            "requests": rows,
            "waitlist": waitlist,
            "used": sorted(gone),
        }

    @classmethod
    def restore(
        cls,
        instance: Instance,
        state: Mapping[str, Any],
        *,
        compiled: Compiled | None = None,
    ) -> Allocator:
        """An Allocator in the state :meth:`state` gave, over the same starting instance.

        No pydantic validation: the sources are kept as the JSON data they are
        (as :func:`replay` does) and validated only by :meth:`export`. The
        places held are still checked (rules 1-5 and 7), and so is the engine's
        invariant that no waitlisted request is feasible.

        Parameters
        ----------
        instance
            The starting instance the state was built over.
        state
            What :meth:`state` returned (possibly through JSON).
        compiled
            ``compile_instance(instance)`` when the caller has it already.

        Returns
        -------
        Allocator
            Deciding every later operation as the saved one would.

        Raises
        ------
        InvalidStateError
            The data is malformed, of another format, names unknown requests,
            children or sessions, its places break a rule, or a waitlisted
            request is feasible.
        """
        self = cls.__new__(cls)
        try:
            with gc_paused():
                self._restore(instance, compiled, state)
        except InvalidStateError:
            raise
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise InvalidStateError(f"malformed allocator state: {e!r}") from e
        return self

    def _restore(
        self, instance: Instance, compiled: Compiled | None, state: Mapping[str, Any]
    ) -> None:
        if state.get("format") != STATE_FORMAT:
            raise InvalidStateError(f"not an allocator state of format {STATE_FORMAT}")
        self._setup(instance, compiled)
        cidx = self._cidx
        for ch in state["children"]:
            cid = ch["id"]
            if type(cid) is not str or cid in cidx:
                raise InvalidStateError(f"state: child {cid!r} is declared twice")
            self._add_child(cid, dt.date.fromisoformat(ch["birth_date"]))
            self._new_children.append(ch)
        start = self._live
        live: dict[str, _Req] = {}
        self._live = live
        sidx = self._sidx
        occ = self._occ
        holders = self._holders
        group = self._group
        waiting: dict[str, tuple[_Req, Sequence[str]]] = {}
        for order, (rid, status, sid, src) in enumerate(state["requests"]):
            where = f"state: request {rid!r}"
            if rid in live:
                raise InvalidStateError(f"{where} is listed twice")
            source: Request | dict[str, Any]
            if src is None:
                source = start[rid].source
                assert isinstance(source, Request)
                kid_ids: Sequence[str] = source.children
                prefs: Sequence[str] = source.preferences
            else:
                if rid in start or src["id"] != rid:
                    raise InvalidStateError(f"{where}: id used twice or not its source's")
                source = src
                kid_ids, prefs = src["children"], src["preferences"]
            rec = _new_req(rid, tuple([cidx[c] for c in kid_ids]), _NO_ARCS, source, order)
            live[rid] = rec
            if status == "held":
                s = sidx[sid]
                counts: dict[int, int] = {}
                for ci in rec.kids:
                    g = group(ci, s)
                    if g < 0:
                        raise InvalidStateError(f"{where}: rule 2 broken in {sid!r}")
                    counts[g] = counts.get(g, 0) + 1
                groups = tuple(sorted(counts.items()))
                broken = occ.violation(s, rec.size, groups, rec.kids)
                if broken is not None:
                    raise InvalidStateError(f"{where}: rule {broken} broken in {sid!r}")
                occ.add(s, rec.size, groups, rec.kids)
                rec.state = _HELD
                rec.arc = (s, groups, list(prefs).index(sid))  # ValueError: rule 1
                holders[s][rid] = rec
            elif status == "waitlisted":
                waiting[rid] = (rec, prefs)
            elif status != "idle" or src is not None:
                raise InvalidStateError(f"{where}: status {status!r}")
        for rid in state["waitlist"]:
            rec, prefs = waiting.pop(rid)
            rec.arcs = self._arcs(rec.kids, [sidx[p] for p in prefs])
            self._enqueue(rec)
        if waiting:
            raise InvalidStateError(f"state: {next(iter(waiting))!r} is waitlisted out of the list")
        self._gone.update(state["used"])
        self._gone.update(rid for rid in start if rid not in live)
        self._ops = int(state["ops"])
        self._next_order = len(live)
        # The invariant the cancellation scan relies on: nobody waitlisted fits.
        open_, G, fits = occ.open, self._G, occ.fits
        for rec in self._wait.values():
            for s, groups, _rank in rec.arcs:
                base = s * G
                if all(open_[base + g] for g, _k in groups) and fits(s, rec.size, groups, rec.kids):
                    raise InvalidStateError(
                        f"state: waitlisted {rec.id!r} fits {self._session_ids[s]!r}"
                    )

    def export(self) -> tuple[Instance, Solution]:
        """The state as an instance and a solution (FORMAT §3 "State export").

        Returns
        -------
        tuple of Instance and Solution
            The starting instance with the accepted requests appended (in event
            order), the declared children appended, the cancelled requests
            removed and no bookings; and a ``feasible`` solution (bound null)
            assigning the places held, scored against that instance.

        Raises
        ------
        pydantic.ValidationError
            Never for a state this engine built (it would mean a bug).
        """
        with self._lock:
            copy = self._export_copy()
        return self._export_from(copy)

    def _export_copy(self) -> tuple[list[_Req], list[_Arc | None], list[Child | dict[str, Any]]]:
        """What :meth:`export` needs, copied (the caller holds the lock); O(requests), no models.

        The records' ``source`` and ``size`` never change once set, so the copy
        can be turned into models later, outside any lock (:meth:`_export_from`).
        """
        recs = list(self._live.values())
        # Copied under the lock: a cancellation running after it may move them.
        held = [r.arc if r.state == _HELD else None for r in recs]
        return recs, held, list(self._new_children)

    def _export_from(
        self,
        copy: tuple[list[_Req], list[_Arc | None], list[Child | dict[str, Any]]],
        *,
        only_used_children: bool = False,
    ) -> tuple[Instance, Solution]:
        """The export of a copy taken by :meth:`_export_copy` (no lock needed).

        ``only_used_children`` keeps only the children some exported request
        names (the children of cancelled requests leave the export).
        """
        recs, held, new_children = copy
        inst = self._instance
        requests = [
            r.source if isinstance(r.source, Request) else Request.model_validate(r.source)
            for r in recs
        ]
        children = list(inst.children) + [
            c if isinstance(c, Child) else Child.model_validate(c) for c in new_children
        ]
        if only_used_children:
            used = {c for req in requests for c in req.children}
            children = [c for c in children if c.id in used]
        out = Instance(
            format=inst.format,
            name=inst.name,
            policy=inst.policy,
            objective=inst.objective,
            sites=inst.sites,
            sessions=inst.sessions,
            children=tuple(children),
            requests=tuple(requests),
            bookings=(),
        )
        serve, w_priority, w_rank = self._w
        sid = self._session_ids
        score = 0
        assignments = []
        for r, req, arc in zip(recs, requests, held, strict=True):
            if arc is not None:
                score += r.size * (serve + w_priority * req.priority - w_rank * arc[2])
                assignments.append(Assignment(request=r.id, session=sid[arc[0]]))
        solution = Solution(
            instance=inst.name,
            status=Status.FEASIBLE,
            score=score,
            bound=None,
            assignments=tuple(assignments),
            stats={"engine": "online"},
        )
        return out, solution
