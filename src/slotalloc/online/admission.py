"""Admission: book and cancel, the engine's hot path (FORMAT §3).

* **book**: the request takes its first preference, by rank, that is feasible
  now (§2 rules 2-5 and 7 hold with it added); otherwise it joins the end of
  the waitlist. A request no preference could ever take (no preference takes
  every child at its age) is refused.
* **cancel** of a place held: the place is freed, then the waitlist is scanned
  once from its head (:meth:`Waitlist.scan_after_free
  <slotalloc.online.waitlist.Waitlist.scan_after_free>`). **cancel** of a
  waitlisted request removes it, without a scan.
* Errors change nothing: every check runs before the first change, and the
  children a refused book declared are given back.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    ChildConflictError,
    DuplicateRequestError,
    IneligibleRequestError,
    UnknownChildError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.models import Child, Request
from slotalloc.online.core import EngineState
from slotalloc.online.outcomes import Cancellation, Decision, Placement
from slotalloc.online.records import IDLE, WAITING, Arc, Req, new_req
from slotalloc.rules import Rule

__all__ = ["Admission"]

_new = object.__new__


# A declared child: (id, birth date, source model or JSON data).
Declared = tuple[str, dt.date, Child | dict[str, Any]]


def _as_request(request: object) -> Request:
    """A :class:`Request` from a model or a mapping of its fields (validated)."""
    if isinstance(request, Request):
        return request
    if isinstance(request, Mapping):
        return Request.model_validate(request)
    raise TypeError(
        f"book() takes a slotalloc.Request or a mapping of its fields, not {type(request).__name__}"
    )


def _as_child(child: object) -> Child:
    """A :class:`Child` from a model or a mapping of its fields (validated)."""
    if isinstance(child, Child):
        return child
    if isinstance(child, Mapping):
        return Child.model_validate(child)
    raise TypeError(
        "book() takes children as slotalloc.Child objects or mappings of their fields, "
        f"not {type(child).__name__}"
    )


class Admission(EngineState):
    """:meth:`book` and :meth:`cancel` (a mixin of :class:`~slotalloc.online.Allocator`)."""

    def book(
        self,
        request: Request | Mapping[str, Any],
        children: Sequence[Child | Mapping[str, Any]] = (),
    ) -> Decision:
        """Book a request: its first feasible preference now, else the end of the waitlist.

        Parameters
        ----------
        request
            A validated :class:`~slotalloc.Request`, or a mapping of its fields
            (FORMAT §1, validated by ``Request.model_validate``); its id must
            not have been used before.
        children
            Children not known yet, as :class:`~slotalloc.Child` objects or
            mappings of their fields (re-declaring a known child with the same
            birth date is allowed).

        Returns
        -------
        Decision
            ``session`` taken (None when waitlisted), ``waitlisted``, and the
            ``reason`` when waitlisted.

        Raises
        ------
        TypeError
            ``request`` is neither a Request nor a mapping (or a child neither
            a Child nor a mapping).
        pydantic.ValidationError
            A mapping given is not a valid request or child (FORMAT §1).
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

        Examples
        --------
        With ``alloc`` from the :class:`~slotalloc.online.Allocator` example
        (its one session is full):

        >>> alloc.book({"id": "r4", "children": ["c4"], "preferences": ["am"]},
        ...            [{"id": "c4", "birth_date": "2023-03-01"}])
        Decision(request='r4', session=None, waitlisted=True, reason='capacity')
        """
        if type(request) is not Request:
            request = _as_request(request)
        # Fields read from the models' __dict__, where pydantic v2 keeps them: a plain
        # attribute read first searches the model class's long MRO for a descriptor
        # (measured ~18 ns a field against ~4 ns; three to four fields a book).
        declared: Sequence[Declared] = ()
        if len(children) == 1:
            c = children[0]
            if type(c) is not Child:
                c = _as_child(c)
            f = c.__dict__
            declared = ((f["id"], f["birth_date"], c),)
        elif children:
            declared = [(k.id, k.birth_date, k) for k in map(_as_child, children)]
        f = request.__dict__
        lock = self._lock
        lock.acquire()  # not `with`: its __enter__/__exit__ look-ups cost more than these calls
        try:
            rec = self._admit(f["id"], f["children"], f["preferences"], declared, request)
            # Read under the lock: a cancellation right after it may promote this
            # request, and the decision must say what this book did.
            arc = rec.arc
            reason = None
            if arc is None:
                # Why the first preference cannot take it now. Its only caller, so
                # written here: nine books in ten on a busy day are waitlisted, and a
                # method call would add a frame (~30 ns, 0.3 % of a book, measured).
                arcs = rec.arcs
                if not arcs or arcs[0][2] != 0:
                    reason = Rule.ELIGIBILITY
                else:
                    s, groups, _rank = arcs[0]
                    reason = self._occ.refusal(s, rec.size, groups, rec.kids)
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

    def _admit(
        self,
        rid: str,
        kid_ids: Sequence[str],
        pref_ids: Sequence[str],
        declared: Sequence[Declared],
        source: Request | dict[str, Any],
    ) -> Req:
        """Check a book event, then place or waitlist it. Raises before changing anything.

        The caller holds the lock (:meth:`book`, :func:`~slotalloc.online.replay`).
        """
        if rid in self._live or rid in self._gone:
            raise DuplicateRequestError(f"request id {rid!r} was used before")
        added: Sequence[str] = ()  # children added here, given back if the event is refused
        if len(declared) == 1:
            cid, born, src = declared[0]
            if self._add_child(cid, born, src):
                added = (cid,)
        elif declared:
            added = self._declare_many(declared)
        cidx = self._cidx
        try:
            if len(kid_ids) == 1:
                kids: tuple[int, ...] = (cidx[kid_ids[0]],)
                arcs, slots, first = self._one_child_arcs(kids[0], pref_ids)
            else:
                kids = tuple([cidx[c] for c in kid_ids])
                arcs = self._arcs(kids, pref_ids)
        except KeyError:
            self._refuse_unknown(kid_ids, pref_ids, added)
        if not arcs:
            self._refuse_ineligible(rid, added)
        # Nothing can fail from here on.
        order = self._next_order
        self._next_order = order + 1
        rec = self._live[rid] = new_req(rid, kids, source, order)
        if len(kids) > 1:
            self._place_or_wait(rec, arcs)
            return rec
        # One child (nine requests in ten): only the arcs rule 3 leaves open for one
        # more child are tried, from the first one (none open, the usual case on a
        # busy day: the request waits without any try_add).
        if first >= 0:
            open_ = self._occ.open
            try_add = self._occ.try_add
            for i in range(first, len(slots)):
                if open_[slots[i]]:
                    arc = arcs[i]
                    if try_add(arc[0], 1, arc[1], kids):
                        self._hold(rec, arc)
                        return rec
        self._waitlist.add(rec, arcs, slots)
        return rec

    def _place_or_wait(self, rec: Req, arcs: list[Arc]) -> None:
        """A request of several children takes its first feasible arc, else waits."""
        G = self._G
        size = rec.size
        kids = rec.kids
        open_ = self._occ.open
        try_add = self._occ.try_add
        for arc in arcs:
            s, groups, _rank = arc
            base = s * G
            for g, _k in groups:
                if not open_[base + g]:
                    break  # one more child of group g does not fit s (rule 3): nor do these
            else:
                if try_add(s, size, groups, kids):
                    self._hold(rec, arc)
                    return
        self._waitlist.enqueue(rec, arcs)

    def _declare_many(self, declared: Sequence[Declared]) -> list[str]:
        """Register the declared children not known yet (several); the ids added.

        Raises ChildConflictError having changed nothing. The caller gives the
        added children back (:meth:`_forget_children`) if the event is refused
        after all.
        """
        if len({d[0] for d in declared}) < len(declared):
            seen: set[str] = set()
            for cid, _bd, _src in declared:
                if cid in seen:
                    raise ChildConflictError(f"child {cid!r} is declared twice")
                seen.add(cid)
        added: list[str] = []
        try:
            for cid, bd, src in declared:
                if self._add_child(cid, bd, src):
                    added.append(cid)
        except ChildConflictError:
            self._forget_children(added)
            raise
        return added

    def _refuse_unknown(
        self, kid_ids: Sequence[str], pref_ids: Sequence[str], added: Sequence[str]
    ) -> NoReturn:
        """Refuse a book naming an unknown child (first) or session, changing nothing."""
        error: BookingError
        missing = [c for c in kid_ids if c not in self._cidx]
        if missing:
            error = UnknownChildError(f"unknown child {missing[0]!r}")
        else:
            bad = next(p for p in pref_ids if p not in self._sidx)
            error = UnknownSessionError(f"unknown session {bad!r}")
        if added:
            self._forget_children(added)
        raise error from None

    def _refuse_ineligible(self, rid: str, added: Sequence[str]) -> NoReturn:
        """Refuse a request no preference could ever take (FORMAT §3), changing nothing."""
        if added:
            self._forget_children(added)
        raise IneligibleRequestError(
            f"request {rid!r}: no preference for which every child of the request is "
            "eligible at its age (rule 2), so it could never be placed"
        )

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

        Examples
        --------
        With ``alloc`` from the :class:`~slotalloc.online.Allocator` example:
        ``r1`` leaves, and ``r3``, at the head of the waitlist, takes its place.

        >>> alloc.cancel("r1")
        Cancellation(request='r1', session='am', promoted=[Placement(request='r3', session='am')])
        >>> alloc.cancel("r1")
        Traceback (most recent call last):
        ...
        slotalloc.exceptions.AlreadyCancelledError: request r1 is already cancelled
        """
        with self._lock:
            session, promoted = self._cancel(request_id)
            seq = self._ops
            self._ops = seq + 1
        return Cancellation(request_id, session, promoted, seq)

    def _cancel(self, rid: str) -> tuple[str | None, list[Placement]]:
        """:meth:`cancel` under the lock: the session freed (or None) and the promotions."""
        rec = self._live.get(rid)
        if rec is None or rec.state == IDLE:
            if rec is None and rid in self._gone:
                raise AlreadyCancelledError(f"request {rid} is already cancelled")
            raise UnknownRequestError(f"unknown request {rid}")
        del self._live[rid]
        self._gone.add(rid)
        if rec.state == WAITING:
            self._waitlist.remove(rec)
            return None, []
        arc = rec.arc
        assert arc is not None
        s = arc[0]
        occ = self._occ
        occ.remove(s, rec.size, arc[1], rec.kids)
        del self._holders[s][rid]
        rec.state = IDLE
        return self._session_ids[s], self._promote(self._waitlist.scan_after_free(occ, s, rec.kids))
