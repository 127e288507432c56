"""Dropped bookings re-seated by chains of moves (ejection chains).

Where caregivers were cut in a city whose places are all booked, a booking
can stay only if another moves to make room, and that one only if a third
moves, across sessions far apart. The neighbourhood search, whose
neighbourhoods are grown around a few linked sessions, rarely holds such a
chain whole, and on a fully booked city (b1 of
``benchmarks/quality/floor_bookings.py``) the bookings alone are too large
for CP-SAT or HiGHS to arrange in seconds. A depth-first search over
sessions finds the chains directly: to seat a dropped booking at one of its
sessions, take out one placement there (unbooked ones first, cheapest
first) and seat that one elsewhere in turn, to a bounded depth; an unbooked
placement may also simply leave (a child served the less against a drop
saved). Each session is entered at most once per chain, and the depths are
tried in increasing order, so the shortest chain found is kept (the fewest
moves). A chain is applied only when it raises the score.

Every step goes through :class:`~slotalloc.rules.Occupancy`, so the result
keeps rules 1-7. The order is fixed (booking order) and the work is capped
in occupancy checks, so equal inputs give equal results; the clock (or a
stop condition) is read only when given (wall-clock runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy
from slotalloc.solver.rows.group_fairness import GroupFairness
from slotalloc.solver.search.rounding import round_and_repair

__all__ = ["reseat_and_fill", "reseat_dropped"]


class _Budget(Exception):
    """The check budget ran out in the middle of a chain."""


class _Chains:
    """The assignment under repair, with the moves of the chain being tried."""

    def __init__(
        self,
        c: Compiled,
        arcs: IntArray,
        max_checks: int,
        deadline: float | None,
        stop: Callable[[], bool] | None,
        floors: GroupFairness | None,
    ) -> None:
        self.occ = Occupancy(c)
        # Rows a placement's leaving may not break: their coefficients per arc
        # and the running slack (None: no rows).
        self._coef: list[list[int]] | None = None
        self._slack: list[int] = []
        if floors is not None:
            act = np.flatnonzero(floors.active)
            self._coef = floors.coef[:, act].tolist()
            # Counted up from nothing as the arcs are placed below.
            self._slack = floors.slack(arcs[:0])[act].tolist()
        self.gain = (c.arc_coef + c.drop_cost[c.arc_req]).tolist()
        self.arc_req = c.arc_req.tolist()
        self.arc_sess = c.arc_sess.tolist()
        self.size = c.req_size.tolist()
        self.cptr = c.req_child_ptr.tolist()
        self.kids = c.req_child.tolist()
        self.aptr = c.req_arc_ptr.tolist()
        self.locked = c.locked.tolist()
        self.booked = (c.booked_session >= 0).tolist()
        self._ag = c.arc_groups
        self._groups: dict[int, list[tuple[int, int]]] = {}
        self.at = [-1] * c.n_requests
        self.in_sess: list[set[int]] = [set() for _ in range(c.n_sessions)]
        self.checks_left = max_checks
        self.deadline = deadline
        self.stop = stop
        for a in arcs.tolist():
            self._place(a)
        #: Every move since the start, (added, arc): a chain is undone from a mark.
        self.journal: list[tuple[bool, int]] = []

    def args(self, a: int) -> tuple[int, int, list[tuple[int, int]], list[int]]:
        g = self._groups.get(a)
        if g is None:
            g = [(k, int(n)) for k, n in enumerate(self._ag[a].tolist()) if n]
            self._groups[a] = g
        r = self.arc_req[a]
        return self.arc_sess[a], self.size[r], g, self.kids[self.cptr[r] : self.cptr[r + 1]]

    def fits(self, a: int) -> bool:
        self.checks_left -= 1
        if self.checks_left < 0:
            raise _Budget
        if self.checks_left % 1024 == 0 and (
            (self.deadline is not None and time.perf_counter() > self.deadline)
            or (self.stop is not None and self.stop())
        ):
            raise _Budget
        return self.occ.fits(*self.args(a))

    def _place(self, a: int) -> None:
        if self._coef is not None:
            self._slack = [x + y for x, y in zip(self._slack, self._coef[a], strict=True)]
        self.occ.add(*self.args(a))
        self.at[self.arc_req[a]] = a
        self.in_sess[self.arc_sess[a]].add(a)

    def _unplace(self, a: int) -> None:
        if self._coef is not None:
            self._slack = [x - y for x, y in zip(self._slack, self._coef[a], strict=True)]
        self.occ.remove(*self.args(a))
        self.at[self.arc_req[a]] = -1
        self.in_sess[self.arc_sess[a]].discard(a)

    def add(self, a: int) -> None:
        self._place(a)
        self.journal.append((True, a))

    def remove(self, a: int) -> None:
        self._unplace(a)
        self.journal.append((False, a))

    def rollback(self, mark: int) -> None:
        """Undo every move after ``mark`` (a position in the journal)."""
        for added, a in reversed(self.journal[mark:]):
            if added:
                self._unplace(a)
            else:
                self._place(a)
        del self.journal[mark:]

    def rows_hold(self) -> bool:
        """Whether every row given (the floors) still holds."""
        return all(x >= 0 for x in self._slack)

    def delta(self, mark: int) -> int:
        """The score change since ``mark`` (a request placed gains its arc's score and its drop)."""
        return sum(self.gain[a] if added else -self.gain[a] for added, a in self.journal[mark:])

    def seat(self, r: int, depth: int, entered: set[int]) -> bool:
        """Place the unplaced request ``r``, moving others to at most ``depth`` levels.

        On failure the state is as it was (the journal may hold moves undone
        in pairs, which change nothing).
        """
        mine = sorted(range(self.aptr[r], self.aptr[r + 1]), key=lambda a: (-self.gain[a], a))
        for a in mine:
            if self.fits(a):
                self.add(a)
                return True
        if depth == 0:
            return False
        for a in mine:
            s = self.arc_sess[a]
            if s in entered:
                continue
            entered.add(s)
            # Unbooked placements first, cheapest first: the least lost if they leave.
            held = sorted(
                (e for e in self.in_sess[s] if not self.locked[self.arc_req[e]]),
                key=lambda e: (self.booked[self.arc_req[e]], self.gain[e], e),
            )
            for e in held:
                self.remove(e)
                if self.fits(a):
                    self.add(a)
                    q = self.arc_req[e]
                    if self.seat(q, depth - 1, entered):
                        return True
                    if not self.booked[q] and self.rows_hold():
                        return True  # q leaves
                    self.remove(a)
                self.add(e)
        return False


def reseat_dropped(
    c: Compiled,
    arcs: IntArray,
    *,
    depths: tuple[int, ...] = (1, 2, 4, 8, 16),
    max_checks: int = 2_000_000,
    rounds: int = 3,
    deadline: float | None = None,
    stop: Callable[[], bool] | None = None,
    floors: GroupFairness | None = None,
) -> tuple[IntArray, int]:
    """``arcs`` with dropped bookings re-seated by chains of moves where that raises the score.

    Parameters
    ----------
    c
        The compiled instance.
    arcs
        A valid assignment (rules 1-7).
    depths
        The chain depths tried in turn for each dropped booking (the first
        that seats it is kept).
    max_checks
        Occupancy checks allowed in all (a chain cut short is undone).
    rounds
        Passes over the dropped bookings, while one seats any.
    deadline
        ``time.perf_counter()`` at which to stop (None: the check cap alone).
    stop
        Polled with the clock: stop when it returns True (wall-clock runs only).
    floors
        Rows (rule 8's floors) that ``arcs`` meets and that an unbooked
        placement's leaving must keep.

    Returns
    -------
    tuple
        The arcs (sorted) of a valid assignment scoring at least as well as
        ``arcs``, and the number of bookings seated.
    """
    st = _Chains(c, np.asarray(arcs, dtype=np.int64), max_checks, deadline, stop, floors)
    total = 0
    order = [r for r in c.booking_order.tolist() if st.booked[r]]
    try:
        for _ in range(rounds):
            seated = 0
            for r in order:
                if st.at[r] >= 0:
                    continue
                for depth in depths:
                    mark = len(st.journal)
                    try:
                        found = st.seat(r, depth, set())
                    except _Budget:
                        st.rollback(mark)
                        raise
                    if not found:
                        del st.journal[mark:]  # undone in pairs already
                        continue
                    if st.delta(mark) > 0:
                        seated += 1
                        total += 1
                        del st.journal[mark:]
                    else:
                        st.rollback(mark)
                    break
            if not seated:
                break
    except _Budget:
        pass
    return np.asarray(sorted(a for a in st.at if a >= 0), dtype=np.int64), total


def reseat_and_fill(
    c: Compiled,
    arcs: IntArray,
    *,
    max_checks: int,
    deadline: float | None,
    stop: Callable[[], bool] | None = None,
    floors: GroupFairness | None = None,
) -> tuple[IntArray, int]:
    """:func:`reseat_dropped`, then the requests left out offered their sessions again.

    A chain may have let an unbooked placement go; the greedy fill
    (:func:`~slotalloc.solver.search.rounding.round_and_repair`) gives every
    unplaced request its sessions where they still fit. Returns the arcs
    and the number of bookings seated (``arcs`` itself when none).
    """
    reseated, seated = reseat_dropped(
        c, arcs, max_checks=max_checks, deadline=deadline, stop=stop, floors=floors
    )
    if seated == 0:
        return arcs, 0
    filled = round_and_repair(c, None, start=reseated)
    assert filled is not None  # None only under a fairness rule, and none is passed
    if not np.isin(reseated, filled).all():
        # The fill skips arcs scoring below zero, which rule 8's search may
        # place to meet a floor: keep the chains' answer whole then.
        return reseated, seated
    return filled, seated
