"""Rule 5, per-child cap: ``sum_{a of k} x_a <= max_sessions_per_child`` for every child k."""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_child_cap"]


def add_child_cap(f: Formulation) -> None:
    """One row per child with more candidate arcs than the cap (none without a cap)."""
    c = f.c
    cap = c.max_sessions_per_child
    if cap <= 0 or c.child_arc.shape[0] == 0:
        return
    child = np.repeat(np.arange(c.n_children, dtype=np.int64), np.diff(c.child_arc_ptr))
    f.add_grouped(
        "child_cap",
        child,
        f.x(c.child_arc),
        np.ones_like(c.child_arc),
        c.n_children,
        hi=cap,
        min_terms=cap + 1,
        at_most_one=cap == 1,
    )
