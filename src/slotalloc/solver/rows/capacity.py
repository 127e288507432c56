"""Rule 3, capacity: ``sum_{a into s} size_a * x_a <= capacity_s`` for every session s."""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_capacity"]


def add_capacity(f: Formulation) -> None:
    """One row per session whose candidates could exceed its capacity."""
    c = f.c
    arcs = np.arange(c.n_arcs, dtype=np.int64)
    f.add_grouped("capacity", c.arc_sess, f.x(arcs), c.arc_size, c.n_sessions, hi=c.capacity)
