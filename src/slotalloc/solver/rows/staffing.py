"""Rule 3, caregivers, in both staffing modes of FORMAT §1.

``per_group``: an integer ``y_{s,g}`` counts the caregivers of group g in
session s; ``ratio_g * y_{s,g} >= n_{s,g}`` makes it at least
``ceil(n_{s,g} / ratio_g)`` and ``sum_g y_{s,g} <= caregivers_s`` caps the total.

``pooled``: with ``L = lcm(ratios)``, ``sum_g n_{s,g} * (L / ratio_g) <= L * caregivers_s``
compares the rational need exactly in integers.
"""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation

__all__ = ["add_staffing"]


def add_staffing(f: Formulation) -> None:
    """Caregiver rows for the policy's staffing mode."""
    if f.c.pooled:
        _pooled(f)
    else:
        _per_group(f)


def _pooled(f: Formulation) -> None:
    c = f.c
    L = c.pool_lcm
    weight = c.arc_groups @ (L // c.ratio)
    arcs = np.arange(c.n_arcs, dtype=np.int64)
    f.add_grouped(
        "staffing_pooled", c.arc_sess, f.x(arcs), weight, c.n_sessions, hi=c.caregivers * L
    )


def _per_group(f: Formulation) -> None:
    c = f.c
    S, G = c.n_sessions, c.n_groups
    arc, g = np.nonzero(c.arc_groups)
    key = c.arc_sess[arc] * G + g
    n = c.arc_groups[arc, g]
    # Most children a (session, group) pair could ever hold: its candidates, capped.
    reach = np.bincount(key, weights=n, minlength=S * G).astype(np.int64)
    reach = np.minimum(reach, c.group_cap.ravel())
    reach = np.minimum(reach, np.repeat(c.capacity, G))
    pairs = np.flatnonzero(reach > 0)
    if pairs.shape[0] == 0:
        return
    ratio = c.ratio[pairs % G]
    need_max = -(-reach[pairs] // ratio)
    y = f.new_int_vars(np.zeros(pairs.shape[0]), np.minimum(need_max, c.caregivers[pairs // G]))
    f.staff_vars = y
    f.staff_pairs = pairs
    # ratio_g * y_{s,g} - sum n_{a,g} x_a >= 0, one row per pair with candidates.
    keys = np.concatenate([pairs, key])
    var = np.concatenate([y, f.x(arc)])
    coef = np.concatenate([ratio, -n])
    f.add_grouped("staffing_need", keys, var, coef, S * G, hi=(1 << 60), lo=0)
    # sum_g y_{s,g} <= caregivers_s
    f.add_grouped("staffing_total", pairs // G, y, np.ones_like(y), S, hi=c.caregivers, min_terms=1)
