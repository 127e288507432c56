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

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from heapq import heapify, heappop, heapreplace
from typing import TYPE_CHECKING, Any, NamedTuple

from slotalloc.compile import Compiled, compile_instance, group_of
from slotalloc.exceptions import (
    BookingError,
    ChildConflictError,
    DuplicateRequestError,
    InvalidStateError,
    UnknownChildError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.models import Assignment, Child, Instance, Request, Solution, Status
from slotalloc.state import Occupancy

if TYPE_CHECKING:
    from slotalloc.result import Result

__all__ = ["Allocator", "Cancellation", "Decision", "Placement"]

# Request states.
_IDLE = 0  # a request of the starting instance without a place: holds nothing, never waits
_HELD = 1
_WAITING = 2

_NO_ARCS: list[Any] = []  # shared placeholder: a request's arcs matter only while it waits

# Eligibility cache entry not computed yet (group_of answers a group or -1).
_UNKNOWN = -2

# An arc is (session index, ((group, count), ...), rank): what the request
# brings to that session, computed once when the request arrives.
_Arc = tuple[int, tuple[tuple[int, int], ...], int]


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
    sequence
        Position of this operation in the allocator's serial order (successful
        operations only, from 0): the order the lock serialised them in.
    """

    __slots__ = ("request", "sequence", "session", "waitlisted")

    def __init__(self, request: str, session: str | None, sequence: int) -> None:
        self.request = request
        self.session = session
        self.waitlisted = session is None
        self.sequence = sequence

    def __repr__(self) -> str:
        return (
            f"Decision(request={self.request!r}, session={self.session!r}, "
            f"waitlisted={self.waitlisted})"
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


class _Req:
    """One request the engine knows (plain slots: this is the hot path)."""

    __slots__ = ("arc", "arcs", "id", "kids", "priority", "seq", "size", "source", "state")

    def __init__(
        self,
        rid: str,
        kids: tuple[int, ...],
        arcs: list[_Arc],
        priority: int,
        source: Request | dict[str, Any],
    ) -> None:
        self.id = rid
        self.kids = kids
        self.size = len(kids)
        self.arcs = arcs
        self.priority = priority
        self.source = source
        self.state = _IDLE
        self.arc: _Arc | None = None
        self.seq = -1


class Allocator:
    """Online booking over a starting instance (FORMAT §3).

    Parameters
    ----------
    instance
        The world (policy, sessions, children) and the places already held (its
        bookings, in file order). Its requests without a booking hold nothing,
        are not waitlisted, and their ids count as used. ``locked`` is ignored.

    Raises
    ------
    InvalidStateError
        When the bookings break one of FORMAT §2 rules 1-5 or 7; the message
        names the first booking (in file order) that does.

    Notes
    -----
    Thread-safe: each public method runs under one lock (see the module notes).
    """

    def __init__(self, instance: Instance, *, compiled: Compiled | None = None) -> None:
        self._setup(instance, compiled)
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
        # asked of group_of once per class (on a representative session), not once
        # per session. A city has hundreds of sessions but a handful of classes.
        classes: dict[tuple[int, ...], int] = {}
        self._class_of: list[int] = []
        self._class_rep: list[int] = []
        keys = zip(c.sess_date.tolist(), c.min_months.tolist(), c.max_months.tolist(), strict=True)
        for s, (date, lo, hi) in enumerate(keys):
            k = classes.setdefault((*date, lo, hi), len(classes))
            if k == len(self._class_rep):
                self._class_rep.append(s)
            self._class_of.append(k)
        self._occ = Occupancy(c)
        obj = instance.objective
        self._w = (obj.serve, obj.priority, obj.rank)
        # children
        self._cidx: dict[str, int] = {}
        self._birth: list[dt.date] = []
        self._rows: list[list[int]] = []
        self._row_of_date: dict[dt.date, list[int]] = {}
        self._new_children: list[Child | dict[str, Any]] = []
        for ch in instance.children:
            self._add_child(ch.id, ch.birth_date)
        # requests
        self._used: set[str] = set()
        self._live: dict[str, _Req] = {}
        for r in instance.requests:
            self._used.add(r.id)
            self._live[r.id] = _Req(r.id, (), [], r.priority, r)
        # waitlist: FIFO by sequence number, with indices by (session, group) and by child
        self._wait: dict[int, _Req] = {}
        self._wait_sg: list[dict[int, _Req]] = [{} for _ in range(self._S * self._G)]
        self._wait_c: dict[int, dict[int, _Req]] = {}
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
            row = self._row_of_date[birth] = [_UNKNOWN] * len(self._class_rep)
        self._rows.append(row)
        return ci

    def _group(self, ci: int, s: int) -> int:
        """The age group of child ``ci`` in session ``s``, or -1 (cached ``group_of``)."""
        k = self._class_of[s]
        row = self._rows[ci]
        g = row[k]
        if g == _UNKNOWN:
            g = row[k] = group_of(self._compiled, self._birth[ci], self._class_rep[k])
        return g

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
                if g < 0:
                    if g != _UNKNOWN:
                        continue
                    g = self._group(ci, s)
                    if g < 0:
                        continue
                arcs.append((s, single[g], rank))
            return arcs
        group = self._group
        for rank, s in enumerate(sessions):
            counts: dict[int, int] = {}
            for ci in kids:
                g = group(ci, s)
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

    @classmethod
    def from_result(cls, instance: Instance, result: Result) -> Allocator:
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
            A batch result, e.g. ``slotalloc.solve(instance, method="fcfs")``.

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
        self._setup(instance, None)
        self._hold_all(((a.request, a.session) for a in result.assignments), "assignments")
        sidx, cidx = self._sidx, self._cidx
        for rec in self._live.values():
            if rec.state == _IDLE:
                source = rec.source
                assert isinstance(source, Request)
                rec.kids = tuple(cidx[c] for c in source.children)
                rec.size = len(rec.kids)
                rec.arcs = self._arcs(rec.kids, [sidx[p] for p in source.preferences])
                self._enqueue(rec)
        self.initial_promotions = self._full_scan()
        return self

    # ------------------------------------------------------------ waitlist

    def _enqueue(self, rec: _Req) -> None:
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
                    wsg[base + g][seq] = rec
            wc = self._wait_c
            for ci in rec.kids:
                d = wc.get(ci)
                if d is None:
                    wc[ci] = {seq: rec}
                else:
                    d[seq] = rec

    def _dequeue(self, rec: _Req) -> None:
        seq = rec.seq
        del self._wait[seq]
        if rec.arcs:
            wsg, G = self._wait_sg, self._G
            for s, groups, _rank in rec.arcs:
                base = s * G
                for g, _k in groups:
                    del wsg[base + g][seq]
            wc = self._wait_c
            for ci in rec.kids:
                d = wc[ci]
                del d[seq]
                if not d:
                    del wc[ci]

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
        for rec in promoted:
            self._dequeue(rec)
            rec.state = _HELD
            assert rec.arc is not None
            out.append(Placement(rec.id, sid[rec.arc[0]]))
        return out

    def _scan_after_free(self, s: int, freed: tuple[int, ...]) -> list[Placement]:
        """The waitlist scan after a place of children ``freed`` in ``s`` was freed.

        Visits only the candidates (see the module notes), in FIFO order, by a
        merge of the index streams: one per age group with room left in ``s``,
        one per freed child. Index dicts are not changed while iterated: the
        promoted requests leave the waitlist after the scan.
        """
        occ = self._occ
        G = self._G
        wsg = self._wait_sg
        streams: list[Any] = []
        group_of_stream: list[int] = []  # age group of a session stream, -1 for a child stream
        base = s * G
        for g in range(G):
            d = wsg[base + g]
            if d and occ.room_for_one(s, g):
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
            rec = wait[seq]
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
        priority: int,
        source: Request | dict[str, Any],
    ) -> _Req:
        """Check a book event, then place or waitlist it. Raises before changing anything."""
        if rid in self._used:
            raise DuplicateRequestError(f"request id {rid!r} was used before")
        cidx = self._cidx
        added: list[str] = []
        if declared:
            if len(declared) > 1 and len({d[0] for d in declared}) < len(declared):
                seen: set[str] = set()
                for cid, _bd, _src in declared:
                    if cid in seen:
                        raise ChildConflictError(f"child {cid!r} is declared twice")
                    seen.add(cid)
            birth = self._birth
            for cid, bd, _src in declared:
                ci = cidx.get(cid)
                if ci is not None and birth[ci] != bd:
                    raise ChildConflictError(
                        f"child {cid!r} is declared born {bd.isoformat()}, "
                        f"but is known born {birth[ci].isoformat()}"
                    )
            # Taken now and given back below if the event is refused after all.
            new_children = self._new_children
            for cid, bd, src in declared:
                if cid not in cidx:
                    self._add_child(cid, bd)
                    new_children.append(src)
                    added.append(cid)
        try:
            kids = tuple([cidx[c] for c in kid_ids])
            sessions = [self._sidx[p] for p in pref_ids]
        except KeyError:
            error: BookingError
            missing = [c for c in kid_ids if c not in cidx]
            if missing:
                error = UnknownChildError(f"unknown child {missing[0]!r}")
            else:
                bad = next(p for p in pref_ids if p not in self._sidx)
                error = UnknownSessionError(f"unknown session {bad!r}")
            if added:
                self._forget_children(added)
            raise error from None
        # Nothing can fail from here on.
        rec = _Req(rid, kids, _NO_ARCS, priority, source)
        self._used.add(rid)
        self._live[rid] = rec
        occ = self._occ
        try_add = occ.try_add
        if len(kids) == 1:
            # One child (nine requests in ten): arcs built and tried in the same pass,
            # and a request placed at once never needs the rest of its arcs.
            ci = kids[0]
            row = self._rows[ci]
            class_of = self._class_of
            single = self._single
            open_ = occ.open
            G = self._G
            arcs: list[_Arc] = []
            for rank, s in enumerate(sessions):
                g = row[class_of[s]]
                if g < 0:
                    if g != _UNKNOWN:
                        continue
                    g = self._group(ci, s)
                    if g < 0:
                        continue
                groups = single[g]
                arc = (s, groups, rank)
                # Rule 3 is the usual refusal, and Occupancy.open answers it for one child.
                if open_[s * G + g] and try_add(s, 1, groups, kids):
                    rec.state = _HELD
                    rec.arc = arc
                    return rec
                arcs.append(arc)
        else:
            arcs = self._arcs(kids, sessions)
            size = len(kids)
            for arc in arcs:
                if try_add(arc[0], size, arc[1], kids):
                    rec.state = _HELD
                    rec.arc = arc
                    return rec
        rec.arcs = arcs
        self._enqueue(rec)
        return rec

    def _forget_children(self, ids: list[str]) -> None:
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
        """
        declared = [(c.id, c.birth_date, c) for c in children] if children else ()
        with self._lock:
            rec = self._admit(
                request.id,
                request.children,
                request.preferences,
                declared,
                request.priority,
                request,
            )
            seq = self._ops
            self._ops = seq + 1
        arc = rec.arc
        return Decision(rec.id, None if arc is None else self._session_ids[arc[0]], seq)

    def _cancel(self, rid: str) -> tuple[str | None, list[Placement]]:
        rec = self._live.get(rid)
        if rec is None or rec.state == _IDLE:
            raise UnknownRequestError(f"unknown request {rid}")
        del self._live[rid]
        if rec.state == _WAITING:
            self._dequeue(rec)
            return None, []
        arc = rec.arc
        assert arc is not None
        s = arc[0]
        self._occ.remove(s, rec.size, arc[1], rec.kids)
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
        UnknownRequestError
            The request holds no place and is not waitlisted (never booked,
            already cancelled, a starting request without a booking, or unknown).
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
            recs = list(self._live.values())
            new_children = list(self._new_children)
        inst = self._instance
        requests = [
            r.source if isinstance(r.source, Request) else Request.model_validate(r.source)
            for r in recs
        ]
        children = list(inst.children) + [
            c if isinstance(c, Child) else Child.model_validate(c) for c in new_children
        ]
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
        for r in recs:
            if r.state == _HELD and r.arc is not None:
                score += r.size * (serve + w_priority * r.priority - w_rank * r.arc[2])
                assignments.append(Assignment(request=r.id, session=sid[r.arc[0]]))
        solution = Solution(
            instance=inst.name,
            status=Status.FEASIBLE,
            score=score,
            bound=None,
            assignments=tuple(assignments),
            stats={"engine": "online"},
        )
        return out, solution
