"""Assemble the allocation model: every rule of FORMAT §2 plus the score."""

from __future__ import annotations

from slotalloc.compile import Compiled
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.objective import set_score_objective
from slotalloc.solver.rows.capacity import add_capacity
from slotalloc.solver.rows.child_cap import add_child_cap
from slotalloc.solver.rows.group_caps import add_group_caps
from slotalloc.solver.rows.group_fairness import GroupFairness, add_group_fairness
from slotalloc.solver.rows.locked import add_locked
from slotalloc.solver.rows.overlap import add_overlap
from slotalloc.solver.rows.request_once import add_request_once
from slotalloc.solver.rows.staffing import add_staffing

__all__ = ["build_formulation"]


def build_formulation(c: Compiled, fairness: GroupFairness | None = None) -> Formulation:
    """The exact model of the instance (rules 3-7; rules 1-2 live in the arcs).

    ``fairness`` adds the opt-in group-fairness rows
    (:mod:`slotalloc.solver.rows.group_fairness`). Assumes the locked bookings are consistent (see
    :func:`slotalloc.solver.infeasibility.locked_conflicts`); otherwise the
    model is simply infeasible.
    """
    f = Formulation.over_arcs(c)
    add_locked(f)
    add_request_once(f)
    add_capacity(f)
    add_group_caps(f)
    add_staffing(f)
    add_overlap(f)
    add_child_cap(f)
    if fairness is not None:
        add_group_fairness(f, fairness)
    set_score_objective(f)
    return f
