"""Opt-in rule: every age group's service rate at least a fraction of the overall rate.

Definition (see docs/fairness.md). A request's child has a *home group*: the
policy group of its age on the date of the request's first preference (as in
the fairness audit). Only *servable* requests count, those with at least one
candidate arc. For group g,

* demand ``D_g`` = children of group g in servable requests (a child counts
  once per request),
* served ``P_g`` = children of group g in placed requests,
* ``D = sum_g D_g`` and ``P = sum_g P_g``.

With ``alpha = p / q`` the rule asks ``P_g / D_g >= alpha * P / D`` for every
group with ``D_g > 0``, i.e. the linear, integer row

``sum_a x_a (q D h_{r(a),g} - p D_g size_a) >= 0``

(``h_{r,g}``: children of group g in request r). Removing placements of other
groups only helps group g, and the all-locked assignment is the only one the
rule can fail on its own, so a greedy repair (remove, then refill) restores
it from any valid assignment (:func:`repair_group_fairness`).
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from math import gcd

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy, age_months, group_at_age
from slotalloc.solver.formulation import INF, Formulation

__all__ = [
    "GroupFairness",
    "add_floor_coupling",
    "add_group_fairness",
    "as_fraction",
    "group_fairness",
    "group_floor",
    "group_service",
    "repair_group_fairness",
]


#: Coefficients stay below this so that a row's sum over every arc fits in int64.
_COEF_LIMIT = 1 << 40


def as_fraction(rate: Fraction | float | int) -> Fraction:
    """The rate as an exact fraction in [0, 1].

    Floats are read as the shortest decimal that prints them (0.8 is 4/5, not
    the binary double), so coefficients stay small integers.

    Raises
    ------
    ValueError
        When the rate is outside [0, 1] or not a number.
    """
    if isinstance(rate, bool) or not isinstance(rate, Fraction | float | int):
        raise ValueError(f"min_group_rate must be a number in [0, 1], not {rate!r}")
    frac = Fraction(repr(rate)) if isinstance(rate, float) else Fraction(rate)
    if not 0 <= frac <= 1:
        raise ValueError(f"min_group_rate must be in [0, 1], not {rate}")
    return frac


@dataclass(frozen=True)
class GroupFairness:
    """The rule's integer data for one compiled instance.

    One row per group for the rate (``min_group_rate``) and, for FORMAT §4
    rule 8 (:func:`group_floor`), one per group with a floor. ``coef[a, k]``
    is arc a's term in row k, ``rhs[k]`` its right-hand side and
    ``weights[k, g]`` its coefficient on the session counts ``z_{s,g}`` of the
    formulation; ``active[k]`` marks the rows in force; ``home[r, g]`` the
    children of group g in request r; ``demand[g]`` is ``D_g``.
    """

    rate: Fraction | None
    home: IntArray  # [R, G]
    demand: IntArray  # [G]
    active: npt.NDArray[np.bool_]  # [K]
    coef: IntArray  # [A, K]
    weights: IntArray  # [K, G]
    rhs: IntArray  # [K]
    names: tuple[str, ...]  # [K]

    def slack(self, arcs: npt.ArrayLike) -> IntArray:
        """Row values ``sum_a coef[a, k] - rhs[k]`` of chosen arcs (>= 0 when met)."""
        chosen = np.asarray(arcs, dtype=np.int64)
        total = self.coef[chosen].sum(axis=0) if chosen.shape[0] else np.zeros_like(self.rhs)
        return np.asarray(total - self.rhs, dtype=np.int64)

    def satisfied(self, arcs: npt.ArrayLike) -> bool:
        """Whether the chosen arcs meet the rule."""
        return bool((self.slack(arcs)[self.active] >= 0).all())


def _home_groups(c: Compiled) -> IntArray:
    """Children of each group per servable request, by age at the first preference."""
    R, G = c.n_requests, c.n_groups
    home = np.zeros((R, G), dtype=np.int64)
    servable = np.diff(c.req_arc_ptr) > 0
    if R == 0:
        return home
    first = c.req_pref[c.req_pref_ptr[:-1]]
    owner = np.repeat(np.arange(R, dtype=np.int64), c.req_size)
    b = c.birth[c.req_child]
    d = c.sess_date[first[owner]]
    age = age_months(b[:, 0], b[:, 1], b[:, 2], d[:, 0], d[:, 1], d[:, 2])
    g = group_at_age(age, c.month_group)
    ok = (g >= 0) & servable[owner]
    np.add.at(home, (owner[ok], g[ok]), 1)
    return home


def group_fairness(c: Compiled, rate: Fraction | float | int) -> GroupFairness:
    """The rule's rows for this instance.

    Raises
    ------
    ValueError
        When the rate is outside [0, 1], or its denominator is so large that the
        integer coefficients would overflow.
    """
    frac = as_fraction(rate)
    p, q = frac.numerator, frac.denominator
    home = _home_groups(c)
    demand = home.sum(axis=0)
    D = int(demand.sum())
    h = home[c.arc_req]
    size = h.sum(axis=1)  # home-group children of the arc (all its children when servable)
    if q * max(D, 1) * max(int(c.req_size.max(initial=1)), 1) >= _COEF_LIMIT // max(c.n_arcs, 1):
        raise ValueError(f"min_group_rate {frac} has too large a denominator")
    coef = q * D * h - p * size[:, None] * demand[None, :]
    # Divide each row by the gcd of its terms: the same row, smaller coefficients.
    for g in range(c.n_groups):
        col = coef[:, g]
        div = 0
        for v in np.unique(np.abs(col)).tolist():
            div = gcd(div, int(v))
        if div > 1:
            coef[:, g] = col // div
    active = demand > 0
    weights = np.zeros((c.n_groups, c.n_groups), dtype=np.int64)
    for g in range(c.n_groups):
        # Unreduced: add_group_fairness divides by the gcd of the terms present.
        weights[g] = np.where(np.arange(c.n_groups) == g, q * D, 0) - p * int(demand[g])
    names = tuple(f"group_fairness_{n}" for n in c.group_names)
    rhs = np.zeros(c.n_groups, dtype=np.int64)
    return GroupFairness(
        frac, home, demand, active, np.ascontiguousarray(coef), weights, rhs, names
    )


def group_floor(
    c: Compiled, fcfs_arcs: npt.ArrayLike, *, also: GroupFairness | None = None
) -> GroupFairness:
    """FORMAT §4 rule 8: every group's child places at least those of ``fcfs_arcs``.

    One row per age group, ``sum_a home[r(a), g] x_a >= P_g(F)``, over the
    home-group counts (the children of a request by their age on the date of
    its first preference), with ``F`` first-come-first-served; ``also`` (the
    rate rule) keeps its rows beside them.
    """
    home = _home_groups(c)
    h = home[c.arc_req]
    chosen = np.asarray(fcfs_arcs, dtype=np.int64)
    floor = h[chosen].sum(axis=0) if chosen.shape[0] else np.zeros(c.n_groups, dtype=np.int64)
    G = c.n_groups
    rule = GroupFairness(
        None if also is None else also.rate,
        home,
        home.sum(axis=0),
        floor > 0,
        np.ascontiguousarray(h, dtype=np.int64),
        np.eye(G, dtype=np.int64),
        np.asarray(floor, dtype=np.int64),
        tuple(f"group_floor_{n}" for n in c.group_names),
    )
    if also is None:
        return rule
    return GroupFairness(
        also.rate,
        home,
        rule.demand,
        np.concatenate([also.active, rule.active]),
        np.ascontiguousarray(np.hstack([also.coef, rule.coef])),
        np.vstack([also.weights, rule.weights]),
        np.concatenate([also.rhs, rule.rhs]),
        also.names + rule.names,
    )


def add_floor_coupling(f: Formulation, rule: GroupFairness) -> IntArray:
    """Rule 8's floors over the arcs, ``-sum_a h_{r(a),g} x_a <= -F_g``, as one block.

    The block ``group_floor`` is what a Lagrangian bound dualises (a coupling
    row in the upper-bound form it takes); the solver's own model keeps the
    rows over the session counts (:func:`add_group_fairness`). Returns the
    rule's row index of each row added, in order.
    """
    c = f.c
    ks = [
        k
        for k, name in enumerate(rule.names)
        if name.startswith("group_floor_") and bool(rule.active[k])
    ]
    if not ks:
        return np.zeros(0, dtype=np.int64)
    h = rule.home[c.arc_req]
    var, coef, ptr = [], [], [0]
    for k in ks:
        g = int(np.flatnonzero(rule.weights[k])[0])
        arcs = np.flatnonzero(h[:, g])
        var.append(f.x(arcs))
        coef.append(-h[arcs, g])
        ptr.append(ptr[-1] + arcs.shape[0])
    f.add_rows(
        "group_floor",
        np.asarray(ptr, dtype=np.int64),
        np.concatenate(var),
        np.concatenate(coef),
        -INF,
        -rule.rhs[ks],
    )
    return np.asarray(ks, dtype=np.int64)


def group_service(c: Compiled, arcs: npt.ArrayLike) -> tuple[IntArray, IntArray]:
    """Served and demanded children per home group (``P_g``, ``D_g``) of chosen arcs."""
    home = _home_groups(c)
    chosen = np.asarray(arcs, dtype=np.int64)
    served = home[c.arc_req[chosen]].sum(axis=0) if chosen.shape[0] else np.zeros(c.n_groups)
    return np.asarray(served, dtype=np.int64), home.sum(axis=0)


def add_group_fairness(f: Formulation, rule: GroupFairness) -> None:
    """The rule's rows, aggregated by session.

    One integer ``z_{s,g}`` per (session, group) that could receive home-group
    children, tied by ``z_{s,g} = sum_{a into s} h_{r(a),g} x_a``; then per
    active group ``sum_{s,g'} z_{s,g'} (q D [g' = g] - p D_g) >= 0``. The
    same rule as ``sum_a coef[a, g] x_a >= 0``, but the group rows run over
    sessions, not arcs: GLOP solves the city LP in ~1.5 s instead of ~10 s
    with rows over every arc.
    """
    c = f.c
    S, G = c.n_sessions, c.n_groups
    h = rule.home[c.arc_req]
    arc, g = np.nonzero(h)
    key = c.arc_sess[arc] * G + g
    n = h[arc, g]
    reach = np.bincount(key, weights=n, minlength=S * G).astype(np.int64)
    pairs = np.flatnonzero(reach > 0).astype(np.int64)
    if pairs.shape[0] == 0:
        return
    z = f.new_int_vars(np.zeros(pairs.shape[0]), np.minimum(reach[pairs], 1 << 40))
    f.fair_vars, f.fair_pairs, f.fair_home = z, pairs, h
    f.add_grouped(
        "group_fairness_link",
        np.concatenate([pairs, key]),
        np.concatenate([z, f.x(arc)]),
        np.concatenate([np.ones_like(z), -n]),
        S * G,
        lo=0,
        hi=0,
        always=True,
    )
    zg = pairs % G
    for k in np.flatnonzero(rule.active).tolist():
        coef = rule.weights[k, zg]
        div = 0
        for v in np.unique(np.abs(coef)).tolist():
            div = gcd(div, int(v))
        coef = coef // max(div, 1)
        nz = np.flatnonzero(coef)
        ptr = np.array([0, nz.shape[0]], dtype=np.int64)
        f.add_rows(rule.names[k], ptr, z[nz], coef[nz], int(rule.rhs[k]), INF)


def repair_group_fairness(c: Compiled, arcs: npt.ArrayLike, rule: GroupFairness) -> IntArray | None:
    """A valid assignment meeting the rule, derived from a valid one.

    Removes the cheapest unlocked placements carrying no child of a violated
    group until every row holds (removal never breaks a FORMAT rule), then
    refills by decreasing score contribution with arcs that fit and leave every
    row no worse than "met or improved".

    Returns
    -------
    numpy.ndarray or None
        The chosen arcs (sorted), or None when even keeping only what the locked
        bookings force and refilling cannot meet the rule.
    """
    chosen = set(np.asarray(arcs, dtype=np.int64).tolist())
    coef = rule.coef
    act = rule.active
    gain = c.arc_coef + c.drop_cost[c.arc_req]
    locked = c.locked[c.arc_req]
    slack = rule.slack(np.array(sorted(chosen), dtype=np.int64))
    h = rule.home[c.arc_req]
    while True:
        bad = act & (slack < 0)
        if not bad.any():
            break
        cand = np.array(sorted(chosen), dtype=np.int64)
        cand = cand[~locked[cand] & (h[cand][:, bad].sum(axis=1) == 0)]
        if cand.shape[0] == 0:
            break
        cand = cand[np.lexsort((cand, gain[cand]))]
        changed = False
        for a in cand.tolist():
            new = slack - coef[a]
            # Keep the rows that hold holding, unless nothing else is left to remove.
            if (new[act & ~bad] < 0).any():
                continue
            chosen.discard(a)
            slack = new
            changed = True
            if ((slack >= 0) & bad).any():
                break  # a row now holds: recompute which ones are violated
        if not changed:
            a = int(cand[0])
            chosen.discard(a)
            slack = slack - coef[a]
    # Refill what the removals (or the rule) left room for.
    occ = Occupancy(c)
    placed = np.zeros(c.n_requests, dtype=np.bool_)
    for a in sorted(chosen):
        occ.add(*_arc_args(c, a))
        placed[c.arc_req[a]] = True
    for a in np.lexsort((np.arange(c.n_arcs), -gain)).tolist():
        r = int(c.arc_req[a])
        if placed[r] or gain[a] < 0:
            continue
        new = slack + coef[a]
        if ((new < 0) & (new < slack))[act].any():
            continue
        args = _arc_args(c, a)
        if occ.fits(*args):
            occ.add(*args)
            placed[r] = True
            chosen.add(a)
            slack = new
    if (slack[act] < 0).any():
        return None
    return np.array(sorted(chosen), dtype=np.int64)


def _arc_args(c: Compiled, a: int) -> tuple[int, int, list[tuple[int, int]], list[int]]:
    r = int(c.arc_req[a])
    groups = [(g, int(k)) for g, k in enumerate(c.arc_groups[a].tolist()) if k]
    kids = c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()
    return int(c.arc_sess[a]), int(c.req_size[r]), groups, kids
