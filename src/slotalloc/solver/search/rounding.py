"""LP rounding with greedy repair: a valid incumbent close to the LP optimum, fast.

Locked arcs first; then the bookings where they are; then arcs in decreasing
LP value (ties: larger score contribution first), each taken when its request
is still unplaced and the occupancy says it fits; then a fill pass offering
every unplaced request its arcs by decreasing contribution. Every step keeps
the assignment valid, so the result is feasible whenever the locked bookings
are.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy
from slotalloc.solver.rows.group_fairness import GroupFairness, repair_group_fairness

__all__ = ["round_and_repair"]


def round_and_repair(
    c: Compiled,
    arc_values: npt.ArrayLike | None,
    *,
    start: IntArray | None = None,
    group_caps: IntArray | None = None,
    fairness: GroupFairness | None = None,
) -> IntArray | None:
    """Chosen arcs (sorted) of a valid assignment guided by fractional arc values.

    Parameters
    ----------
    c
        The compiled instance; its locked bookings must be consistent.
    arc_values
        One value in [0, 1] per arc (an LP point), or None for a pure greedy
        by score contribution.
    start
        Arcs to place first, in order, when they fit (e.g. a previous incumbent).
    group_caps
        Tighter per-session group caps [S, G] for the LP-guided pass (e.g. the
        caregiver split the LP favours); the fill pass uses the true caps.
    fairness
        The opt-in group-fairness rule: the greedy result is then repaired to
        meet it (:func:`~slotalloc.solver.rows.group_fairness.repair_group_fairness`).

    Returns
    -------
    numpy.ndarray or None
        The chosen arcs; None only when ``fairness`` is given and the repair
        cannot meet it.
    """
    A = c.n_arcs
    gain = c.arc_coef + c.drop_cost[c.arc_req]
    sequence, lp_from, guided = _sequence(c, gain, arc_values, start)
    caps = (c.group_cap if group_caps is None else group_caps).tolist()

    occ = Occupancy(c)
    arc_req = c.arc_req.tolist()
    arc_sess = c.arc_sess.tolist()
    cptr = c.req_child_ptr.tolist()
    kids = c.req_child.tolist()
    size = c.req_size.tolist()
    ag = c.arc_groups
    nz_arc, nz_g = np.nonzero(ag)
    groups: list[list[tuple[int, int]]] = [[] for _ in range(A)]
    for a, g, k in zip(nz_arc.tolist(), nz_g.tolist(), ag[nz_arc, nz_g].tolist(), strict=True):
        groups[a].append((g, k))
    placed = [False] * c.n_requests
    chosen: list[int] = []
    gain_l = gain.tolist()
    taken = occ.group_taken
    for i, a in enumerate(sequence):
        r = arc_req[a]
        if placed[r] or gain_l[a] < 0:
            continue
        ch = kids[cptr[r] : cptr[r + 1]]
        s = arc_sess[a]
        if lp_from <= i < guided and any(taken[s][g] + k > caps[s][g] for g, k in groups[a]):
            continue
        if occ.fits(s, size[r], groups[a], ch):
            occ.add(s, size[r], groups[a], ch)
            placed[r] = True
            chosen.append(a)
    arcs = np.sort(np.array(chosen, dtype=np.int64))
    if fairness is None or fairness.satisfied(arcs):
        return arcs
    return repair_group_fairness(c, arcs, fairness)


def _sequence(
    c: Compiled, gain: IntArray, arc_values: npt.ArrayLike | None, start: IntArray | None
) -> tuple[list[int], int, int]:
    """Arcs in the order they are offered, and where the LP-guided pass starts and ends.

    Locked arcs, then ``start``, then the bookings where they are, then arcs by
    LP value, then every arc by score contribution (the fill pass).
    """
    A = c.n_arcs
    vals = np.zeros(A) if arc_values is None else np.asarray(arc_values, dtype=np.float64)[:A]
    locked_arcs = np.flatnonzero(c.locked[c.arc_req])
    # Values near 1 first; a coarse grid so that LP noise does not reorder near-ties.
    level = np.round(vals * 64).astype(np.int64)
    by_lp = np.lexsort((np.arange(A), -gain, -level))
    by_lp = by_lp[level[by_lp] > 0]
    by_gain = np.lexsort((np.arange(A), -gain))
    order = [locked_arcs]
    if start is not None:
        order.append(np.asarray(start, dtype=np.int64))
    # Bookings kept where they are before anyone else is placed: a drop costs
    # as much as a hundred children served, and on a city with a caregiver cut,
    # letting the LP order place first left tens of needless drops (and moves
    # chained by moves) that the LNS never undid. The LNS still moves them.
    keep = np.flatnonzero(c.arc_sess == c.booked_session[c.arc_req])
    order.append(keep[np.lexsort((keep, -level[keep]))])
    lp_from = sum(o.shape[0] for o in order)
    order.append(by_lp)
    guided = sum(o.shape[0] for o in order)
    order.append(by_gain)
    return np.concatenate(order).tolist(), lp_from, guided
