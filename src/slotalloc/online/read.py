"""The read side: places held, the waitlist, statuses and occupancies.

Every reader takes the allocator's lock, so what it returns is one consistent
state (between two operations). None of them changes anything.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from fractions import Fraction

from slotalloc.exceptions import UnknownRequestError, UnknownSessionError
from slotalloc.models import Child, Request, Session
from slotalloc.online.core import EngineState
from slotalloc.online.outcomes import GroupOccupancy, RequestStatus, SessionOccupancy
from slotalloc.online.records import HELD, IDLE, WAITING, Req, by_order

__all__ = ["Reading"]


class Reading(EngineState):
    """Readers of the state (a mixin of :class:`~slotalloc.online.Allocator`).

    The examples use ``alloc`` as the :class:`~slotalloc.online.Allocator`
    example leaves it: ``r1`` and ``r2`` hold the two places of session
    ``am``, ``r3`` waits.
    """

    def held(self) -> dict[str, str]:
        """Request id -> session id of every place held, in request order.

        Returns
        -------
        dict of str to str
            A copy.

        Examples
        --------
        >>> alloc.held()
        {'r1': 'am', 'r2': 'am'}
        """
        sid = self._session_ids
        with self._lock:
            return {
                rid: sid[rec.arc[0]]
                for rid, rec in self._live.items()
                if rec.state == HELD and rec.arc is not None
            }

    def waitlist(self) -> list[str]:
        """The waitlisted request ids, head first (the first scanned when a place is freed).

        Returns
        -------
        list of str
            A copy.

        Examples
        --------
        >>> alloc.waitlist()
        ['r3']
        """
        with self._lock:
            return [rec.id for rec in self._waitlist]

    def status(self, request_id: str) -> RequestStatus:
        """Where a request stands: holding a place, waitlisted, cancelled, or holding nothing.

        Parameters
        ----------
        request_id
            Any request id.

        Returns
        -------
        RequestStatus
            ``session`` held (or None), ``waitlisted`` (with its ``position``),
            ``cancelled``. A starting request without a booking holds nothing
            and is neither.

        Raises
        ------
        UnknownRequestError
            The id was never used (nor carried in as used).

        Examples
        --------
        >>> alloc.status("r1")
        RequestStatus(request='r1', session='am', waitlisted=False, cancelled=False, position=None)
        >>> alloc.status("r3")
        RequestStatus(request='r3', session=None, waitlisted=True, cancelled=False, position=1)
        """
        with self._lock:
            rec = self._live.get(request_id)
            if rec is None:
                if request_id in self._gone:
                    return RequestStatus(request_id, None, False, True)
                raise UnknownRequestError(f"unknown request {request_id}")
            return self._status_of(rec)

    def _status_of(self, rec: Req, position: int | None = None) -> RequestStatus:
        """The status of a live request (under the lock); ``position`` if known."""
        arc = rec.arc
        if rec.state == HELD and arc is not None:
            return RequestStatus(rec.id, self._session_ids[arc[0]], False, False)
        if rec.state != WAITING:
            return RequestStatus(rec.id, None, False, False)
        if position is None:
            position = self._waitlist.position(rec)
        return RequestStatus(rec.id, None, True, False, position)

    def __len__(self) -> int:
        """The number of live requests: holding a place, waitlisted, or holding nothing.

        The requests not cancelled, those :meth:`export` lists: a starting
        request without a booking counts (it holds nothing and never waits), a
        cancelled one does not.

        Examples
        --------
        >>> len(alloc)
        3
        """
        with self._lock:
            return len(self._live)

    def __iter__(self) -> Iterator[RequestStatus]:
        """The :meth:`status` of every live request, in request order.

        The statuses are read at once, under the lock: operations after the
        call do not show in the iteration.

        Examples
        --------
        >>> [(s.request, s.session, s.position) for s in alloc]
        [('r1', 'am', None), ('r2', 'am', None), ('r3', None, 1)]
        """
        with self._lock:
            position = {rec.seq: i for i, rec in enumerate(self._waitlist, 1)}
            out = [
                self._status_of(rec, position.get(rec.seq) if rec.state == WAITING else None)
                for rec in self._live.values()
            ]
        return iter(out)

    def __contains__(self, request_id: object) -> bool:
        """Whether ``request_id`` names a live request (one :func:`len` counts).

        Examples
        --------
        >>> "r3" in alloc, "nobody" in alloc
        (True, False)
        """
        with self._lock:
            return request_id in self._live

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

        Examples
        --------
        >>> [s.request for s in alloc.requests_of(household="h1")]
        ['r1', 'r2']
        >>> alloc.requests_of(child="c3")[0].waitlisted
        True
        """
        if (child is None) == (household is None):
            raise ValueError("give exactly one of child and household")
        with self._lock:
            cidx = self._cidx
            if child is not None:
                ci = cidx.get(child)
                wanted = set() if ci is None else {ci}
            else:
                wanted = {cidx[c] for c, hh in self._households() if hh == household and c in cidx}
            out = []
            for rec in self._live.values():
                kids = rec.kids
                if not kids and rec.state == IDLE:
                    src = rec.source
                    names = src.children if isinstance(src, Request) else src["children"]
                    kids = tuple(cidx[c] for c in names)
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

        Examples
        --------
        >>> occ = alloc.occupancy("am")
        >>> occ.taken, occ.capacity, occ.requests, occ.waiting
        (2, 2, ('r1', 'r2'), 1)
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

        Examples
        --------
        >>> [(o.session, o.taken) for o in alloc.occupancies()]
        [('am', 2)]
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
            holders = [sorted(self._holders[s].values(), key=by_order) for s in idx]
            waiting = self._waitlist.waiting_per_session(self._S)
        sessions = self._instance.sessions
        return [
            self._occupancy(s, counts[i], need[i], holders[i], waiting[s], sessions[s])
            for i, s in enumerate(idx)
        ]

    def _occupancy(
        self, s: int, counts: list[int], need: int, holders: list[Req], waiting: int, sess: Session
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
