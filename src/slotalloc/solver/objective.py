"""The FORMAT §2 score as an integer objective with a constant offset.

``score = sum_a arc_coef_a x_a - sum_r drop_r (1 - placed_r)`` and
``placed_r = sum_{a in arcs(r)} x_a`` (rule 7 keeps it 0/1), so
``score = sum_a (arc_coef_a + drop_{r(a)}) x_a - sum_r drop_r``.
"""

from __future__ import annotations

from slotalloc.solver.formulation import Formulation

__all__ = ["set_score_objective"]


def set_score_objective(f: Formulation) -> None:
    """Set ``obj`` over the arc variables and ``offset`` so the objective is the score."""
    c = f.c
    A = c.n_arcs
    f.obj[:A] = c.arc_coef + c.drop_cost[c.arc_req]
    f.obj[A:] = 0
    f.offset = -int(c.drop_cost.sum())
