"""Explicit changes: starting from a batch result, a rebalance, the literal full scan.

These are the operations that change many places at once, outside FORMAT §3's
book and cancel: each checks the places it leaves against §2 rules 1-5 and 7
(all or nothing), then runs one full waitlist scan (:meth:`Waitlist.scan_all
<slotalloc.online.waitlist.Waitlist.scan_all>`), since freed places may fit
waitlisted requests.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Self

from slotalloc.compile import Compiled
from slotalloc.exceptions import InvalidStateError, UnknownRequestError, UnknownSessionError
from slotalloc.models import Instance, Request, Solution
from slotalloc.online.core import EngineState
from slotalloc.online.outcomes import Placement
from slotalloc.online.records import HELD, IDLE, WAITING, Arc, Req, by_order

if TYPE_CHECKING:
    from slotalloc.result import Result

__all__ = ["Changes"]

# What apply() takes: (request, new arc, where for messages).
_Taking = list[tuple[Req, Arc, str]]


class Changes(EngineState):
    """:meth:`from_result`, :meth:`apply`, :meth:`full_scan` (a mixin of the Allocator)."""

    @classmethod
    def from_result(
        cls,
        instance: Instance,
        result: Result | Solution,
        *,
        compiled: Compiled | None = None,
    ) -> Self:
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
        self._enqueue_idle()
        self.initial_promotions = self._full_scan()
        return self

    def _enqueue_idle(self) -> None:
        """Waitlist, in request order, the requests holding nothing that some preference
        could take (one no preference could ever take would wait forever, FORMAT §3)."""
        cidx = self._cidx
        for rec in self._live.values():
            if rec.state == IDLE:
                source = rec.source
                assert isinstance(source, Request)
                rec.kids = tuple(cidx[c] for c in source.children)
                rec.size = len(rec.kids)
                arcs = self._arcs(rec.kids, source.preferences)
                if arcs:
                    self._waitlist.enqueue(rec, arcs)

    def full_scan(self) -> list[Placement]:
        """Scan the whole waitlist once from its head (FORMAT §3, as after a cancellation).

        Each waitlisted request feasible at that moment takes its first
        feasible preference. Between operations no waitlisted request is
        feasible (the engine's invariant, see :mod:`slotalloc.online.waitlist`),
        so this promotes nobody unless the state was changed from outside the
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
            freed, taking, dropped = self._changes(list(moves), list(drops), list(places))
            self._check_changes(freed, taking)
            self._commit_changes(freed, taking, dropped)
            out = self._full_scan()
            self._ops += 1
        return out

    def _changes(
        self, moves: list[tuple[str, str]], drops: list[str], places: list[tuple[str, str]]
    ) -> tuple[list[Req], _Taking, list[Req]]:
        """The records the changes free, those taking an arc, those dropped (rules 1, 2, 7)."""
        seen: set[str] = set()

        def known(rid: str, what: str, want: int) -> Req:
            where = f"{what} {rid}"
            if rid in seen:
                raise InvalidStateError(f"{where}: rule 7 broken: the request is changed twice.")
            seen.add(rid)
            rec = self._live.get(rid)
            if rec is None:
                raise UnknownRequestError(f"unknown request {rid}")
            if rec.state != want:
                held = "holds no place" if want == HELD else "is not waitlisted"
                raise InvalidStateError(f"{where}: the request {held}.")
            return rec

        freed: list[Req] = []
        taking: _Taking = []
        dropped: list[Req] = []
        for rid, sid in moves:
            rec = known(rid, "move", HELD)
            freed.append(rec)
            taking.append((rec, self._arc_to(rec, sid, f"move {rid}"), f"move {rid} to {sid!r}"))
        for rid in drops:
            rec = known(rid, "drop", HELD)
            freed.append(rec)
            dropped.append(rec)
        for rid, sid in places:
            rec = known(rid, "place", WAITING)
            taking.append((rec, self._arc_to(rec, sid, f"place {rid}"), f"place {rid} in {sid!r}"))
        return freed, taking, dropped

    def _arc_to(self, rec: Req, sid: str, where: str) -> Arc:
        """The arc of ``rec`` to session ``sid``, checking rules 1 and 2."""
        s = self._sidx.get(sid)
        if s is None:
            raise UnknownSessionError(f"{where}: unknown session {sid!r}")
        prefs = self._prefs(rec)
        if sid not in prefs:
            raise InvalidStateError(
                f"{where}: rule 1 broken: {sid!r} is not one of the request's preferences."
            )
        groups = self._groups_in(rec.kids, s)
        if groups is None:
            raise InvalidStateError(f"{where}: rule 2 broken: a child is not eligible.")
        return (s, groups, list(prefs).index(sid))

    def _check_changes(self, freed: list[Req], taking: _Taking) -> None:
        """Rules 3-5 on the places the changes leave, counted in; or nothing changed.

        Free first, then add one by one. Every rule is monotone, so the adds
        all succeed exactly when the final set of places is valid, whatever
        their order.
        """
        occ = self._occ
        for rec in freed:
            arc = rec.arc
            assert arc is not None
            occ.remove(arc[0], rec.size, arc[1], rec.kids)
        added: list[tuple[Req, Arc]] = []
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

    def _commit_changes(self, freed: list[Req], taking: _Taking, dropped: list[Req]) -> None:
        """The records follow the counts :meth:`_check_changes` left (nothing can fail)."""
        holders = self._holders
        for rec in freed:
            assert rec.arc is not None
            del holders[rec.arc[0]][rec.id]
        waitlist = self._waitlist
        for rec, arc, _where in taking:
            if rec.state == WAITING:
                waitlist.remove(rec)
            self._hold(rec, arc)
        for rec in sorted(dropped, key=by_order):
            waitlist.enqueue(rec, self._arcs(rec.kids, self._prefs(rec)))
