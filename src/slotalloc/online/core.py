"""The engine's state and the rules every operation shares (internal).

:class:`EngineState` holds what the :class:`~slotalloc.online.Allocator` knows
(children, requests, the places held, the waitlist) and the one home of each
rule its operations apply: a child's age group (rule 2, :meth:`~EngineState._group`),
what a request brings to a session (:meth:`~EngineState._groups_in`,
:meth:`~EngineState._arcs`), taking a place (:meth:`~EngineState._hold`,
:meth:`~EngineState._hold_all`) and promoting from the waitlist
(:meth:`~EngineState._promote`). The operations are mixins over it:
admission, reading, explicit changes, persistence, export.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from slotalloc.compile import Compiled, compile_instance
from slotalloc.exceptions import ChildConflictError, InvalidStateError
from slotalloc.models import Child, Instance, Request
from slotalloc.online.eligibility import SessionClasses
from slotalloc.online.outcomes import Placement
from slotalloc.online.records import HELD, Arc, Req, new_req
from slotalloc.online.waitlist import Waitlist
from slotalloc.rules import Occupancy

__all__ = ["EngineState"]


class EngineState:
    """What the engine knows, and the rules shared by its operations.

    Built by :meth:`_setup` (every constructor calls it first); the operations
    are the mixins of :class:`~slotalloc.online.Allocator`.
    """

    _lock: threading.Lock
    _instance: Instance
    _compiled: Compiled
    _session_ids: tuple[str, ...]
    _sidx: dict[str, int]
    _G: int
    _S: int
    _single: list[tuple[tuple[int, int], ...]]
    _classes: SessionClasses
    _class_of: list[int]
    _class_rep: list[int]
    _occ: Occupancy
    _w: tuple[int, int, int]
    _cidx: dict[str, int]
    _birth: list[dt.date]
    _rows: list[list[int]]
    _row_of_date: dict[dt.date, list[int]]
    _new_children: list[Child | dict[str, Any]]
    _live: dict[str, Req]
    _gone: set[str]
    _next_order: int
    _start_ids: frozenset[str]
    _holders: list[dict[str, Req]]
    _waitlist: Waitlist
    _ops: int
    initial_promotions: list[Placement]

    def _setup(self, instance: Instance, compiled: Compiled | None) -> None:
        """The state of ``instance`` with nothing held and nobody waiting."""
        c = compiled if compiled is not None else compile_instance(instance)
        self._lock = threading.Lock()
        self._instance = instance
        self._compiled = c
        self._session_ids = c.session_ids
        self._sidx = dict(instance.session_index)
        self._G = c.n_groups
        self._S = c.n_sessions
        self._single = [((g, 1),) for g in range(self._G)]
        self._classes = SessionClasses(c)
        self._class_of = self._classes.class_of
        self._class_rep = self._classes.rep
        self._occ = Occupancy(c)
        obj = instance.objective
        self._w = (obj.serve, obj.priority, obj.rank)
        # children: eligibility depends on a child only through its birth date, so
        # children born the same day share one row (one list object)
        self._cidx = {}
        self._birth = []
        self._rows = []
        self._row_of_date = {}
        self._new_children = []
        dates = list(dict.fromkeys(ch.birth_date for ch in instance.children))
        self._row_of_date.update(zip(dates, self._eligibility(dates), strict=True))
        for ch in instance.children:
            self._add_child(ch.id, ch.birth_date)
        # requests: an id is used when it is live or gone (cancelled, or carried in)
        self._live = {}
        self._gone = set()
        for i, r in enumerate(instance.requests):
            self._live[r.id] = new_req(r.id, (), r, i)
        self._next_order = len(instance.requests)
        self._start_ids = frozenset(self._live)
        self._holders = [{} for _ in range(self._S)]  # per session, for occupancy()
        self._waitlist = Waitlist(self._S, self._G, by_priority=instance.policy.envy_free)
        self._ops = 0
        self.initial_promotions = []

    # ------------------------------------------------------------ children and rule 2

    def _add_child(
        self, cid: str, birth: dt.date, source: Child | dict[str, Any] | None = None
    ) -> bool:
        """Register a child unless it is known; whether it was new.

        ``source`` is kept when given (a declared child, not a starting one).

        Raises
        ------
        ChildConflictError
            The child is known with another birth date (nothing changed).
        """
        cidx = self._cidx
        known = cidx.get(cid)
        if known is not None:
            if self._birth[known] != birth:
                # Never the known date: an error must not disclose stored personal data.
                raise ChildConflictError(
                    f"child {cid!r} is declared with a birth date that differs from the one known"
                )
            return False
        births = self._birth
        cidx[cid] = len(births)
        births.append(birth)
        row = self._row_of_date.get(birth)
        if row is None:
            row = self._row_of_date[birth] = self._eligibility([birth])[0]
        self._rows.append(row)
        if source is not None:
            self._new_children.append(source)
        return True

    def _forget_children(self, ids: Sequence[str]) -> None:
        """Give back the declared children just added (a refused event changes nothing)."""
        for cid in ids:
            del self._cidx[cid]
            self._new_children.pop()
            self._birth.pop()
            self._rows.pop()

    def _eligibility(self, dates: Sequence[dt.date]) -> list[list[int]]:
        """Per birth date, its age group in each session class, or -1 (``group_of``)."""
        return self._classes.rows(dates)

    def _group(self, ci: int, s: int) -> int:
        """The age group of child ``ci`` in session ``s``, or -1 (as ``group_of``)."""
        return self._rows[ci][self._class_of[s]]

    def _groups_in(self, kids: Sequence[int], s: int) -> tuple[tuple[int, int], ...] | None:
        """What children ``kids`` bring to session ``s``: sorted (group, count); None
        when one of them is not eligible there (rule 2)."""
        k = self._class_of[s]
        rows = self._rows
        counts: dict[int, int] = {}
        for ci in kids:
            g = rows[ci][k]
            if g < 0:
                return None
            counts[g] = counts.get(g, 0) + 1
        return tuple(sorted(counts.items()))

    def _one_child_arcs(self, ci: int, pref_ids: Sequence[str]) -> tuple[list[Arc], list[int], int]:
        """The arcs of a one-child request (nine requests in ten), for admission.

        Every preference is looked up, so an unknown one raises KeyError before
        any change. Returns the arcs, their (session, group) waitlist slots, and
        the index of the first arc that rule 3 leaves open for one more child
        (``Occupancy.open``; -1 when none is: rule 3 is the usual refusal, so such
        a request is waitlisted without any ``try_add``).
        """
        sidx = self._sidx
        row = self._rows[ci]
        class_of = self._class_of
        single = self._single
        G = self._G
        open_ = self._occ.open
        arcs: list[Arc] = []
        slots: list[int] = []
        first = -1
        for rank, p in enumerate(pref_ids):
            s = sidx[p]
            g = row[class_of[s]]
            if g < 0:
                continue
            k = s * G + g
            if first < 0 and open_[k]:
                first = len(slots)
            arcs.append((s, single[g], rank))
            slots.append(k)
        return arcs, slots, first

    def _arcs(self, kids: Sequence[int], pref_ids: Sequence[str]) -> list[Arc]:
        """The eligible preferences of a request, in rank order, with their group counts.

        Raises KeyError for an unknown session.
        """
        if len(kids) == 1:
            return self._one_child_arcs(kids[0], pref_ids)[0]
        sidx = self._sidx
        arcs: list[Arc] = []
        for rank, p in enumerate(pref_ids):
            s = sidx[p]
            groups = self._groups_in(kids, s)
            if groups is not None:
                arcs.append((s, groups, rank))
        return arcs

    def _prefs(self, rec: Req) -> Sequence[str]:
        """A request's preference ids, from its source."""
        src = rec.source
        if isinstance(src, Request):
            return src.preferences
        prefs: Sequence[str] = src["preferences"]
        return prefs

    # ------------------------------------------------------------ places held

    def _hold(self, rec: Req, arc: Arc) -> None:
        """Record that ``rec`` holds ``arc`` (its children are already counted there)."""
        rec.state = HELD
        rec.arc = arc
        self._holders[arc[0]][rec.id] = rec

    def _hold_all(self, held: Iterable[tuple[str, str]], what: str) -> None:
        """Take the places already held, checking each against those before it.

        Raises
        ------
        InvalidStateError
            Naming the first place (``what[i]``) that breaks rule 1, 2, 3, 4, 5 or 7.
        """
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
            groups = self._groups_in(kids, s)
            if groups is None:
                cid = next(
                    c for c, ci in zip(source.children, kids, strict=True) if self._group(ci, s) < 0
                )
                raise InvalidStateError(
                    f"{where}: rule 2 broken: child {cid!r} is not eligible for {sid!r}."
                )
            broken = occ.violation(s, len(kids), groups, kids)
            if broken is not None:
                raise InvalidStateError(f"{where}: rule {broken} broken with the places before it.")
            occ.add(s, len(kids), groups, kids)
            rec.kids = kids
            rec.size = len(kids)
            self._hold(rec, (s, groups, source.preferences.index(sid)))

    def _promote(self, promoted: list[Req]) -> list[Placement]:
        """Move the requests a scan placed from the waitlist to their places."""
        sid = self._session_ids
        out: list[Placement] = []
        remove = self._waitlist.remove
        for rec in promoted:
            remove(rec)
            arc = rec.arc
            assert arc is not None
            self._hold(rec, arc)
            out.append(Placement(rec.id, sid[arc[0]]))
        return out

    def _full_scan(self) -> list[Placement]:
        """The literal scan over the whole waitlist, its promotions taken (under the lock)."""
        return self._promote(self._waitlist.scan_all(self._occ))
