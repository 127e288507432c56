"""Repair an assignment to the group rows by insertion with eviction, cheapest first.

The LP under rule 8's floors, rounded (:mod:`slotalloc.solver.fair`), ends
near the group rows but not on them: a few dozen children short in one age
group, with a surplus in another. Removing placements (what
:func:`~slotalloc.solver.rows.group_fairness.repair_group_fairness` does)
cannot raise a floor; this repair inserts requests that carry children of a
violated row's group, each into a session where it fits once the cheapest
placements there (children of groups with a surplus) make room. Those who
make room move to another session they asked for when one takes them, so a
group at its floor can still make room (mornings full, afternoons quiet).

Candidates are taken by a lazy greedy: the cost of an insertion (score of the
evicted minus the score gained) per child it brings to violated rows is kept
in a heap and recomputed when popped, since the sessions change as the repair
goes; an insertion is applied when its recomputed cost is still the smallest.
With ``prefer`` (the arcs an LP point uses), those candidates go first and the
others only when they do not reach the rows. Candidates into one session that
bring the same children per group need the same room, so only the best-scoring
of each such class is in the heap at a time (on seed 5's city, 8 129
candidates in 1 117 classes: the repair took 2.4 s instead of 3.4 s, seed 8's
1.2 s instead of 3.6 s, for the same score within 0.1 %).
Every step keeps rules 1-7 (the occupancy says so) and never lets a row that
holds fall below its bound, so the result is valid and meets every row, or the
repair returns None.
"""

from __future__ import annotations

import heapq

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy
from slotalloc.solver.rows.group_fairness import GroupFairness
from slotalloc.solver.search.rounding import round_and_repair

__all__ = ["anchored_lp_rounding", "repair_lp_rounding", "repair_rows"]


class _State:
    """The assignment under repair: occupancy, who sits where, the rows' slack."""

    def __init__(self, c: Compiled, arcs: IntArray, rule: GroupFairness) -> None:
        self.c = c
        self.rule = rule
        self.occ = Occupancy(c)
        self.gain = (c.arc_coef + c.drop_cost[c.arc_req]).tolist()
        self.arc_req = c.arc_req.tolist()
        self.arc_sess = c.arc_sess.tolist()
        ag = c.arc_groups
        self.groups: dict[int, list[tuple[int, int]]] = {}
        self._ag = ag
        self.size = c.req_size.tolist()
        self.cptr = c.req_child_ptr.tolist()
        self.kids = c.req_child.tolist()
        self.aptr = c.req_arc_ptr.tolist()
        self.prio = c.req_priority.tolist()
        #: Under rule 9: make room only with requests of at most the entrant's priority.
        self.by_priority = False
        # Bookings stay: a drop costs as much as a hundred children served.
        self.fixed = (c.locked | (c.booked_session >= 0)).tolist()
        self.placed_at = [-1] * c.n_requests
        self.in_sess: list[set[int]] = [set() for _ in range(c.n_sessions)]
        self.slack = rule.slack(arcs)
        self.active = rule.active
        for a in arcs.tolist():
            self._add(a)

    def args(self, a: int) -> tuple[int, int, list[tuple[int, int]], list[int]]:
        g = self.groups.get(a)
        if g is None:
            row = self._ag[a]
            g = [(k, int(n)) for k, n in enumerate(row.tolist()) if n]
            self.groups[a] = g
        r = self.arc_req[a]
        return self.arc_sess[a], self.size[r], g, self.kids[self.cptr[r] : self.cptr[r + 1]]

    def _add(self, a: int) -> None:
        self.occ.add(*self.args(a))
        self.placed_at[self.arc_req[a]] = a
        self.in_sess[self.arc_sess[a]].add(a)

    def _remove(self, a: int) -> None:
        self.occ.remove(*self.args(a))
        self.placed_at[self.arc_req[a]] = -1
        self.in_sess[self.arc_sess[a]].discard(a)

    def deficit(self, slack: IntArray) -> int:
        return int(-np.minimum(slack[self.active], 0).sum())

    def plan(self, a: int) -> tuple[int, list[int], list[tuple[int, int]]] | None:
        """The cheapest eviction found that lets ``a`` in: (cost, evicted, moved), or None.

        Placements in ``a``'s session are evicted by increasing score until
        ``a`` fits, never a booking, and one whose loss would push a row below
        its bound only when another of its sessions takes it now; then each
        evicted one is put back if it still fits, and the others move to
        another of their sessions where one takes them (``moved``: pairs of
        arcs, from and to). The state is left as it was.
        """
        if self.placed_at[self.arc_req[a]] >= 0:
            return None
        coef = self.rule.coef
        act = self.active
        floor = np.minimum(self.slack[act], 0)
        slack = self.slack + coef[a]
        occ = self.occ
        args = self.args(a)
        s = args[0]
        evicted: list[int] = []
        if not occ.fits(*args):
            top = self.prio[self.arc_req[a]] if self.by_priority else None
            order = sorted(
                (
                    e
                    for e in self.in_sess[s]
                    if not self.fixed[self.arc_req[e]]
                    and (top is None or self.prio[self.arc_req[e]] <= top)
                ),
                key=lambda e: (self.gain[e], e),
            )
            for e in order:
                after = slack - coef[e]
                self._remove(e)
                # A held row stays held; a violated one does not lose ground,
                # unless the child can move to another session.
                if (after[act] < floor).any():
                    if self._alt(e, s) is None:
                        self._add(e)
                        continue
                else:
                    slack = after
                evicted.append(e)
                if occ.fits(*args):
                    break
            else:
                for e in reversed(evicted):
                    self._add(e)
                return None
        occ.add(*args)
        kept: list[int] = []
        for e in reversed(evicted):
            ea = self.args(e)
            if occ.fits(*ea):
                occ.add(*ea)
                kept.append(e)
        moves: list[tuple[int, int]] = []
        for e in evicted:
            if e in kept:
                continue
            alt = self._alt(e, s)
            if alt is not None:
                occ.add(*self.args(alt))
                moves.append((e, alt))
        moved = {e for e, _ in moves}
        out = [e for e in evicted if e not in kept and e not in moved]
        after = self.slack + coef[a] - (coef[out].sum(axis=0) if out else 0)
        for _e, alt in moves:
            occ.remove(*self.args(alt))
        for e in kept:
            occ.remove(*self.args(e))
        occ.remove(*args)
        for e in evicted:
            self._add(e)
        if (after[act] < floor).any():
            return None
        cost = sum(self.gain[e] for e in out) - self.gain[a]
        cost += sum(self.gain[e] - self.gain[alt] for e, alt in moves)
        return cost, out, moves

    def _alt(self, e: int, s: int) -> int | None:
        """The best-scoring other arc of ``e``'s request (not into ``s``) that fits now."""
        r = self.arc_req[e]
        best = None
        for alt in range(self.aptr[r], self.aptr[r + 1]):
            if alt == e or self.arc_sess[alt] == s or self.gain[alt] < 0:
                continue
            if (best is None or self.gain[alt] > self.gain[best]) and self.occ.fits(
                *self.args(alt)
            ):
                best = alt
        return best

    def apply(self, a: int, evicted: list[int], moves: list[tuple[int, int]]) -> None:
        coef = self.rule.coef
        for e in evicted:
            self._remove(e)
            self.slack = self.slack - coef[e]
        for e, _alt in moves:
            self._remove(e)
        self._add(a)
        self.slack = self.slack + coef[a]
        for _e, alt in moves:
            self._add(alt)


def repair_rows(
    c: Compiled,
    arcs: npt.ArrayLike,
    rule: GroupFairness,
    *,
    prefer: npt.NDArray[np.bool_] | None = None,
    by_priority: bool = False,
) -> IntArray | None:
    """A valid assignment meeting every active row of ``rule``, from a valid one.

    Parameters
    ----------
    c
        The compiled instance.
    arcs
        The chosen arcs of a valid assignment (rules 1-7).
    rule
        The group rows (rule 8's floors, ``min_group_rate``'s rates, or both).
    prefer
        Arcs (a mask) whose insertions are tried first, e.g. those with a
        positive value in the LP under the rows; the others follow only
        when these do not reach the rows.
    by_priority
        Make room for a request only with requests of at most its priority
        (so that the ones who make room do not envy it under rule 9).

    Returns
    -------
    numpy.ndarray or None
        The chosen arcs (sorted), valid and meeting the rows, or None when the
        insertions found do not reach them.
    """
    st = _State(c, np.asarray(arcs, dtype=np.int64), rule)
    st.by_priority = by_priority
    coef = rule.coef
    act = rule.active
    gain = c.arc_coef + c.drop_cost[c.arc_req]
    heap: list[tuple[float, int]] = []

    def help_of(a: int) -> int:
        return st.deficit(st.slack) - st.deficit(st.slack + coef[a])

    def push(a: int) -> bool:
        h = help_of(a)
        if h <= 0:
            return False
        p = st.plan(a)
        if p is None:
            return False
        heapq.heappush(heap, ((p[0]) / h, a))
        return True

    # Candidates into one session bringing the same children per group (and so
    # the same help to the rows) need the same room: only the best-scoring of
    # each such class is planned and queued, the next when it is placed or
    # fails. Seed 5's city: 8 129 candidates in 1 117 classes.
    queue: dict[int, list[int]] = {}
    klass: dict[int, int] = {}

    def push_next(k: int) -> None:
        # A class whose best member cannot get in is dropped: the others
        # need the same room (only requests placed meanwhile are skipped).
        members = queue[k]
        while members:
            a = members.pop()
            if st.placed_at[st.arc_req[a]] < 0:
                push(a)
                return

    bad = act & (st.slack < 0)
    if not bad.any():
        return np.sort(np.asarray(arcs, dtype=np.int64))
    unplaced = np.asarray(st.placed_at) < 0
    cand = unplaced[c.arc_req] & (coef[:, bad] > 0).any(axis=1)
    passes = [cand] if prefer is None else [cand & prefer, cand & ~prefer]
    for allowed in passes:
        if st.deficit(st.slack) <= 0:
            break
        # Every candidate of this pass and the ones left over from the last.
        left = [a for _k, a in heap]
        heap.clear()
        pool = np.array(sorted(set(np.flatnonzero(allowed).tolist()) | set(left)), dtype=np.int64)
        queue.clear()
        klass.clear()
        if pool.size:
            key = np.concatenate([c.arc_sess[pool, None], coef[pool], c.arc_groups[pool]], axis=1)
            _, inv = np.unique(key, axis=0, return_inverse=True)
            # Each class's members, best last (popped first): by score, then arc.
            order = np.lexsort((-pool, gain[pool], inv.ravel()))
            for i in order.tolist():
                k = int(inv.ravel()[i])
                queue.setdefault(k, []).append(int(pool[i]))
                klass[int(pool[i])] = k
            for k in sorted(queue):
                push_next(k)
        while heap and st.deficit(st.slack) > 0:
            _key, a = heapq.heappop(heap)
            h = help_of(a)
            p = st.plan(a) if h > 0 else None
            if p is None:
                push_next(klass[a])
                continue
            now = p[0] / h
            if heap and now > heap[0][0] + 1e-9:
                heapq.heappush(heap, (now, a))
                continue
            st.apply(a, p[1], p[2])
            push_next(klass[a])
    if st.deficit(st.slack) > 0:
        return None
    _fill(st)
    out = np.array([a for a in st.placed_at if a >= 0], dtype=np.int64)
    return np.sort(out)


def _fill(st: _State) -> None:
    """Place every request that still fits, by decreasing score, keeping the rows."""
    c = st.c
    coef = st.rule.coef
    act = st.active
    gain = c.arc_coef + c.drop_cost[c.arc_req]
    for a in np.lexsort((np.arange(c.n_arcs), -gain)).tolist():
        if st.placed_at[st.arc_req[a]] >= 0 or st.gain[a] < 0:
            continue
        after = st.slack + coef[a]
        if (after[act] < 0).any():
            continue
        args = st.args(a)
        if st.occ.fits(*args):
            st.apply(a, [], [])


def repair_lp_rounding(
    c: Compiled,
    values: npt.ArrayLike,
    rule: GroupFairness,
    prefer_value: float,
    start: IntArray | None = None,
    *,
    rounded: IntArray | None = None,
) -> IntArray | None:
    """An LP point rounded without the rows, then repaired to them by insertion.

    The insertions try first the arcs worth more than ``prefer_value`` in the
    LP (``prefer_value >= 1``: no preference). ``start`` (e.g. the bookings
    as :mod:`slotalloc.solver.search.bookings` arranges them) is placed
    before the rounding. ``rounded``: that rounding, when the caller has it
    (``round_and_repair(c, values, start=start)``). None when the rounding
    or the repair fails.
    """
    vals = np.asarray(values, dtype=np.float64)[: c.n_arcs]
    if rounded is None:
        rounded = round_and_repair(c, vals, start=start)
    if rounded is None:
        return None
    prefer = vals > prefer_value if prefer_value < 1 else None
    return repair_rows(c, rounded, rule, prefer=prefer)


def anchored_lp_rounding(
    c: Compiled,
    values: npt.ArrayLike,
    rule: GroupFairness,
    fcfs: IntArray,
    prefer_value: float,
    start: IntArray | None = None,
    *,
    rounded: IntArray | None = None,
) -> IntArray | None:
    """The LP point rounded around FCFS's placements of the groups it leaves short.

    For when :func:`repair_lp_rounding` fails (tight rooms, many bookings and
    locks: little to evict). A floor is FCFS's own count, so FCFS's placements
    that carry a group's children reach that group's floor by themselves, and
    they fit together (they are part of a valid assignment). They go first, the
    LP's rounding fills around them, and the repair makes up the other rows.
    The shortest row is anchored alone first, then the two shortest, and so
    on, last every row (all of FCFS, filled around: it meets every floor); the
    first that meets every row is returned, None if none does. ``start`` is
    placed before the anchor: the bookings arranged alone, whose drops cost
    more than the few placements of a short group they may displace.
    ``rounded`` as in :func:`repair_lp_rounding`.
    """
    vals = np.asarray(values, dtype=np.float64)[: c.n_arcs]
    if rounded is None:
        rounded = round_and_repair(c, vals, start=start)
    if rounded is None:
        return None
    slack = rule.slack(rounded)
    rows = np.flatnonzero(rule.active & (slack < 0))
    rows = rows[np.argsort(slack[rows], kind="stable")]
    fcfs = np.asarray(fcfs, dtype=np.int64)
    carries = rule.coef[fcfs] > 0
    prefer = vals > prefer_value if prefer_value < 1 else None
    tries = [rows[:k] for k in range(1, rows.shape[0] + 1)] + [np.flatnonzero(rule.active)]
    for anchored in tries:
        anchor = fcfs[carries[:, anchored].any(axis=1)]
        first = anchor if start is None else np.concatenate([start, anchor])
        placed = round_and_repair(c, vals, start=first)
        if placed is None:
            continue
        out = placed if rule.satisfied(placed) else repair_rows(c, placed, rule, prefer=prefer)
        if out is not None:
            return out
    return None
