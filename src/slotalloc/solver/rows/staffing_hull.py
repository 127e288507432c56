"""A tighter LP for per-group staffing: the convex hull of each session's staffing.

With ``y_{s,g}`` relaxed to fractions, the LP treats caregivers as divisible
between groups (as if staffing were pooled), which is where most of its gap
to the integer optimum comes from. For one session with ``K`` caregivers, the
group counts ``n_g`` it can hold are the union, over integer splits ``y``
(``sum_g y_g <= K``), of the boxes ``0 <= n_g <= min(ratio_g y_g, U_g)``
(``U_g``: the most children of group g that could ever come). Boxes are closed
downwards, so the hull is ``n_g <= sum_p corner_{p,g} lambda_p``,
``sum_p lambda_p <= 1``, ``lambda >= 0``, over the maximal splits p. Valid for
every integer solution (take ``lambda`` at its split), exact for one session,
and small: a few dozen splits per session.

Only the LP bound uses it; CP-SAT keeps the plain integer ``y`` rows.
"""

from __future__ import annotations

import itertools
from functools import cache

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.solver.formulation import Formulation

__all__ = ["add_staffing_hull", "corner_caps"]


def _dominates(q: tuple[int, ...], p: tuple[int, ...]) -> bool:
    return all(a >= b for a, b in zip(q, p, strict=True))


@cache
def _corners(K: int, U: tuple[int, ...], ratio: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Maximal achievable group counts over integer caregiver splits (undominated)."""
    ymax = [min(K, -(-u // r)) for u, r in zip(U, ratio, strict=True)]
    pts = set()
    for y in itertools.product(*(range(m + 1) for m in ymax)):
        if sum(y) <= K:
            pts.add(tuple(min(r * yy, u) for yy, r, u in zip(y, ratio, U, strict=True)))
    arr = sorted(pts, reverse=True)
    keep = [p for p in arr if not any(q != p and _dominates(q, p) for q in arr)]
    return tuple(keep)


def add_staffing_hull(f: Formulation) -> None:
    """Add the hull rows and ``lambda`` columns (LP only; no-op for pooled staffing)."""
    c = f.c
    if c.pooled:
        return
    S, G = c.n_sessions, c.n_groups
    arc, g = np.nonzero(c.arc_groups)
    n = c.arc_groups[arc, g]
    key = c.arc_sess[arc] * G + g
    demand = np.bincount(key, weights=n, minlength=S * G).astype(np.int64).reshape(S, G)
    U = np.minimum(np.minimum(demand, c.group_cap), c.capacity[:, None])
    ratio = tuple(int(r) for r in c.ratio.tolist())
    lam_lo: list[int] = []
    sess_of_lam: list[int] = []
    corner_rows: list[tuple[int, ...]] = []
    for s in range(S):
        u = tuple(int(v) for v in U[s].tolist())
        if not any(u):
            continue
        corners = _corners(int(c.caregivers[s]), u, ratio)
        if len(corners) == 1 and corners[0] == u:
            continue  # staffing never binds here
        for p in corners:
            sess_of_lam.append(s)
            corner_rows.append(p)
            lam_lo.append(0)
    if not sess_of_lam:
        return
    sess_l = np.array(sess_of_lam, dtype=np.int64)
    corner = np.array(corner_rows, dtype=np.int64).reshape(-1, G)
    lam = f.new_int_vars(np.zeros(sess_l.shape[0]), 1)
    f.hull_vars, f.hull_sess, f.hull_corner = lam, sess_l, corner
    # sum_p lambda_{s,p} <= 1
    f.add_grouped("staffing_hull_convex", sess_l, lam, np.ones_like(lam), S, hi=1)
    # sum_a n_{a,g} x_a - sum_p corner_{p,g} lambda_{s,p} <= 0, for sessions with lambdas
    has = np.zeros(S, dtype=np.bool_)
    has[sess_l] = True
    sel = has[c.arc_sess[arc]]
    li, lg = np.nonzero(corner)
    keys = np.concatenate([key[sel], sess_l[li] * G + lg])
    var = np.concatenate([f.x(arc[sel]), lam[li]])
    coef = np.concatenate([n[sel], -corner[li, lg]])
    f.add_grouped("staffing_hull", keys, var, coef, S * G, hi=0, always=True)


def corner_caps(f: Formulation, values: npt.ArrayLike) -> IntArray:
    """Per-session group caps [S, G] from an LP point: the corner keeping most children.

    For each session with a hull, the caregiver split whose corner covers the
    most of the LP's group counts (ties: the larger ``lambda``); elsewhere the
    session's own group caps.
    """
    c = f.c
    v = np.asarray(values, dtype=np.float64)
    caps = c.group_cap.copy()
    if f.hull_vars.shape[0] == 0:
        return caps
    S, G = c.n_sessions, c.n_groups
    x = v[: c.n_arcs]
    n_lp = np.zeros((S, G))
    arc, g = np.nonzero(c.arc_groups)
    np.add.at(n_lp, (c.arc_sess[arc], g), x[arc] * c.arc_groups[arc, g])
    covered = np.minimum(f.hull_corner, n_lp[f.hull_sess] + 1e-9).sum(axis=1)
    lam = v[f.hull_vars]
    order = np.lexsort((-lam, -covered, f.hull_sess))
    first = np.ones(order.shape[0], dtype=np.bool_)
    first[1:] = f.hull_sess[order][1:] != f.hull_sess[order][:-1]
    best = order[first]
    caps[f.hull_sess[best]] = np.minimum(caps[f.hull_sess[best]], f.hull_corner[best])
    return caps
