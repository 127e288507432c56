"""Both fairness rules on a city: the requests above the lowest priority kept where FCFS put them.

Resolving the justified envy of a city's optimum under rule 8 moves
thousands of requests and breaks a floor; the answer was then FCFS in
priority order, which meets both rules (measured on four generated cities,
22 432-64 437 arcs: every time). Justified envy only runs from a higher
priority to a lower one, and FCFS in priority order is free of it. So every
request without a booking above the lowest priority among those without one
keeps its place in that FCFS (or stays unplaced), and the optimiser is free
with the rest: the lowest class, most requests, cannot envy anyone.

A lower request can then be envied by a kept request ``r`` only at a session
``r`` did not fit at its turn in FCFS and fits now: possible when an
unlocked booking leaves it, or when a sibling's request moves (overlap, the
per-child cap). The caller checks the answer
(:func:`slotalloc.solver.envy.envy_triples`) and resolves what is left.

The restriction is an ordinary compiled instance: the kept requests become
locked bookings at their FCFS session, and the other arcs of every kept
request (all of them when FCFS left it unplaced) are removed. Their scores
are unchanged (a locked booking has no move or drop term, and none of them
had a booking), so the restricted score of an assignment is its score.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slotalloc._typing import BoolArray, IntArray
from slotalloc.compile import Compiled, _frozen
from slotalloc.solver.rows.group_fairness import GroupFairness

__all__ = ["PriorityFix", "fix_above_lowest"]


@dataclass(frozen=True, eq=False)
class PriorityFix:
    """A compiled instance with some requests fixed, and its arcs' map to the original."""

    compiled: Compiled
    kept: IntArray  # restricted arc i is original arc kept[i]
    index: IntArray  # original arc -> restricted arc, -1 when removed
    fixed: BoolArray  # [R] the requests kept where FCFS put them

    def to_restricted(self, arcs: npt.ArrayLike) -> IntArray:
        """Original arcs (all kept) as arcs of the restricted instance."""
        out = self.index[np.asarray(arcs, dtype=np.int64)]
        if (out < 0).any():
            raise ValueError("an arc was removed by the restriction")
        return np.asarray(out, dtype=np.int64)

    def to_original(self, arcs: npt.ArrayLike) -> IntArray:
        """Restricted arcs as arcs of the original instance."""
        return np.asarray(self.kept[np.asarray(arcs, dtype=np.int64)], dtype=np.int64)

    def rule(self, rule: GroupFairness) -> GroupFairness:
        """``rule`` (computed on the original) over the restricted arcs."""
        return dataclasses.replace(rule, coef=np.ascontiguousarray(rule.coef[self.kept]))


def fix_above_lowest(c: Compiled, fcfs: npt.ArrayLike) -> PriorityFix:
    """Fix each request without a booking above the lowest such priority at ``fcfs`` (see above).

    Parameters
    ----------
    c
        The compiled instance.
    fcfs
        A valid assignment meeting both rules: FCFS in priority order, or
        that with some of its dropped bookings taken first
        (``first_come_first_served(rebook=...)``, which rule 9 does not see).
    """
    R, A = c.n_requests, c.n_arcs
    chosen = np.asarray(fcfs, dtype=np.int64)
    unbooked = c.booked_session < 0
    fixed = np.zeros(R, dtype=np.bool_)
    if unbooked.any():
        fixed = unbooked & (c.req_priority > int(c.req_priority[unbooked].min()))
    on = np.zeros(A, dtype=np.bool_)
    on[chosen] = True
    keep = ~fixed[c.arc_req] | on
    kept = np.flatnonzero(keep)
    index = np.full(A, -1, dtype=np.int64)
    index[kept] = np.arange(kept.shape[0], dtype=np.int64)
    held = chosen[fixed[c.arc_req[chosen]]]
    booked = c.booked_session.copy()
    locked = c.locked.copy()
    booked[c.arc_req[held]] = c.arc_sess[held]
    locked[c.arc_req[held]] = True
    arc_req = c.arc_req[kept]
    # children x arcs, restricted: the same (child, arc) rows, sorted as the compiler sorts them
    row_child = np.repeat(np.arange(c.n_children, dtype=np.int64), np.diff(c.child_arc_ptr))
    ok = keep[c.child_arc]
    child, arc = row_child[ok], index[c.child_arc[ok]]
    order = np.lexsort((arc, child))
    restricted = dataclasses.replace(
        c,
        booked_session=_frozen(booked),
        locked=_frozen(locked, np.bool_),
        booking_order=_frozen(np.concatenate([c.booking_order, np.sort(c.arc_req[held])])),
        arc_req=_frozen(arc_req),
        arc_sess=_frozen(c.arc_sess[kept]),
        arc_rank=_frozen(c.arc_rank[kept]),
        arc_coef=_frozen(c.arc_coef[kept]),
        arc_groups=_frozen(c.arc_groups[kept]),
        req_arc_ptr=_frozen(np.searchsorted(arc_req, np.arange(R + 1, dtype=np.int64))),
        child_arc_ptr=_frozen(np.searchsorted(child[order], np.arange(c.n_children + 1))),
        child_arc=_frozen(arc[order]),
    )
    return PriorityFix(restricted, _frozen(kept), _frozen(index), _frozen(fixed, np.bool_))
