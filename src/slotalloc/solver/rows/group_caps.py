"""Rule 3, group caps: ``sum_{a into s} n_{a,g} x_a <= cap_{s,g}`` per session s, group g."""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_group_caps"]


def add_group_caps(f: Formulation) -> None:
    """One row per (session, group) whose candidates could exceed the cap."""
    c = f.c
    G = c.n_groups
    arc, g = np.nonzero(c.arc_groups)
    f.add_grouped(
        "group_caps",
        c.arc_sess[arc] * G + g,
        f.x(arc),
        c.arc_groups[arc, g],
        c.n_sessions * G,
        hi=c.group_cap.ravel(),
    )
