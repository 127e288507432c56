"""Rule 6, locked bookings: ``x_a = 1`` for the one arc the compiler kept per locked request."""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_locked"]


def add_locked(f: Formulation) -> None:
    """Fix the locked arcs to 1 (the caller checked the locked bookings are consistent)."""
    c = f.c
    locked_arcs = np.flatnonzero(c.locked[c.arc_req])
    f.fix(f.x(locked_arcs), 1)
