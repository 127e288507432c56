"""Rule 7, each request at most once: ``sum_{a in arcs(r)} x_a <= 1`` for every request r."""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_request_once"]


def add_request_once(f: Formulation) -> None:
    """One at-most-one per request with two or more candidate arcs."""
    c = f.c
    arcs = np.arange(c.n_arcs, dtype=np.int64)
    f.add_grouped(
        "request_once",
        c.arc_req,
        f.x(arcs),
        np.ones_like(arcs),
        c.n_requests,
        hi=1,
        min_terms=2,
        at_most_one=True,
    )
