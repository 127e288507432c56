"""Rule 5, per-child cap: ``sum_{a of k} x_a <= max_sessions_per_child`` for every child k.

A child in no more requests than the cap needs no row: rule 7 lets each of
its requests take at most one arc.
"""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_child_cap"]


def add_child_cap(f: Formulation) -> None:
    """One row per child in more requests than the cap (none without a cap)."""
    c = f.c
    cap = c.max_sessions_per_child
    if cap <= 0 or c.child_arc.shape[0] == 0:
        return
    child = np.repeat(np.arange(c.n_children, dtype=np.int64), np.diff(c.child_arc_ptr))
    arcs = c.child_arc
    pairs = np.unique(child * c.n_requests + c.arc_req[arcs])
    n_requests = np.bincount(pairs // c.n_requests, minlength=c.n_children)
    keep = n_requests[child] > cap
    child, arcs = child[keep], arcs[keep]
    f.add_grouped(
        "child_cap",
        child,
        f.x(arcs),
        np.ones_like(arcs),
        c.n_children,
        hi=cap,
        min_terms=cap + 1,
        at_most_one=cap == 1,
    )
