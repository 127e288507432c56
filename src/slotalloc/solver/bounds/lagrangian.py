"""A bound tighter than the LP's: each session's integer sub-problem solved exactly.

Dualise the rows that link sessions (request at most once, overlaps, per-child
cap) with multipliers ``u >= 0``; what is left splits by session. With reduced
profits ``p_a = obj_a - sum_i u_i A_ia``, for every ``u >= 0``::

    OPT <= L(u) = offset + sum_i u_i hi_i + sum_s max { p @ x : x in X_s }

where ``X_s`` holds the arc sets session ``s`` can take by rule 3 (capacity,
group caps, staffing), its locked arcs included (weak duality). At the LP's
duals ``L(u)`` is at most the LP bound, and smaller by what the LP gains inside
one session from fractions: half a sibling request filling the last place, or
a mix of two caregiver splits (measured 0.3 % on the generated city, where the
LP with the staffing hull is 0.7 % above the optimum).

Each session's sub-problem is solved exactly by dynamic programming over its
group counts ``n`` (a table of at most ``prod_g (cap_g + 1)`` states, "best
reduced profit with exactly these counts"): the single-child arcs of a group
enter together as a concave prefix sum along that group's axis, multi-child
arcs one by one as in a 0/1 knapsack, locked arcs as forced moves; the states
breaking capacity or staffing (per group: ``sum_g ceil(n_g / ratio_g)``,
pooled: the lcm-scaled sum) are then masked out. Everything is float64 and the
result is padded before being rounded down, as for the LP bound.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.rules import over_session_limits
from slotalloc.solver.formulation import INF, Formulation, group_rows, safe_floor

__all__ = [
    "COUPLING_BLOCKS",
    "MAX_STAGE_STATES",
    "MAX_STATES",
    "Lagrangian",
    "SessionAnswer",
    "improve_multipliers",
    "lagrangian_bound",
    "session_best",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Row blocks that link sessions; every other block of the formulation is per session.
#: ``group_floor`` is FORMAT §4 rule 8 over the arcs, written ``-P_g <= -F_g``
#: (:func:`~slotalloc.solver.rows.group_fairness.add_floor_coupling`).
COUPLING_BLOCKS = frozenset({"request_once", "overlap", "child_cap", "group_floor"})
#: Session blocks the sub-problem solves exactly (anything else: no Lagrangian bound).
_SESSION_BLOCKS = frozenset(
    {
        "capacity",
        "group_caps",
        "staffing_need",
        "staffing_total",
        "staffing_pooled",
        "staffing_hull_convex",
        "staffing_hull",
    }
)
#: Most states of one session's sub-problem table (a few MB of float64).
MAX_STATES = 200_000
#: Most table states kept to trace one session's best arc set back (~40 MB).
MAX_STAGE_STATES = 5_000_000
#: Reduced profits below this are treated as not worth taking (the DP is exact either way).
_EPS = 1e-9


class Lagrangian:
    """``L(u)`` of one formulation, evaluated as often as a multiplier search needs.

    Parameters
    ----------
    f
        The formulation (the LP's, with or without the staffing hull).

    Raises
    ------
    ValueError
        When ``f`` holds a row block the sub-problems do not model (the
        group-fairness rule) or a coupling row with a lower side, or when a
        session's sub-problem table would exceed :data:`MAX_STATES` (a policy
        with many age groups).
    """

    def __init__(self, f: Formulation) -> None:
        c = f.c
        self.c = c
        A = c.n_arcs
        self._obj = f.obj[:A].astype(np.float64)
        self._offset = float(f.offset)
        rows_of: list[npt.NDArray[np.int64]] = []
        var, coef, hi, where = [], [], [], []
        start = n_rows = 0
        for b in f.blocks:
            if b.name in COUPLING_BLOCKS:
                if bool((b.lo > -INF).any()):
                    raise ValueError(f"coupling block {b.name!r} has a lower side")
                rows_of.append(np.repeat(np.arange(b.n_rows), np.diff(b.ptr)) + n_rows)
                var.append(b.var)
                coef.append(b.coef.astype(np.float64))
                hi.append(b.hi.astype(np.float64))
                where.append(np.arange(start, start + b.n_rows))
                n_rows += b.n_rows
            elif b.name not in _SESSION_BLOCKS:
                raise ValueError(f"no Lagrangian sub-problem models the {b.name!r} rows")
            start += b.n_rows
        cat = np.concatenate
        empty_i, empty_f = np.zeros(0, dtype=np.int64), np.zeros(0)
        #: positions of the coupling rows among all rows of ``f``
        self.rows = cat(where) if where else empty_i
        self._entry_row = cat(rows_of) if rows_of else empty_i
        self._entry_var = cat(var) if var else empty_i
        self._entry_coef = cat(coef) if coef else empty_f
        self._hi = cat(hi) if hi else empty_f
        self._forced = f.lb[:A] >= 1
        self._allowed = f.ub[:A] >= 1
        self._order, self._ptr = group_rows(c.arc_sess, c.n_sessions)
        self._ratio = c.ratio.tolist()
        self._lcm = c.pool_lcm if c.pooled else 0
        # The sub-problem's table has prod_g (n_g + 1) states: fine for the national
        # standard's three groups (at most 11 x 16 x 21), not for a policy with many.
        allowed = np.flatnonzero(self._allowed)
        reach = np.zeros((c.n_sessions, c.n_groups), dtype=np.int64)
        np.add.at(reach, c.arc_sess[allowed], c.arc_groups[allowed])
        dims = np.minimum(np.minimum(reach, c.group_cap), c.capacity[:, None]) + 1
        states = np.prod(dims.astype(np.float64), axis=1)
        if states.shape[0] and float(states.max()) > MAX_STATES:
            raise ValueError(
                f"a session's sub-problem would have {states.max():.0f} states "
                f"(more than {MAX_STATES})"
            )

    @property
    def n_rows(self) -> int:
        """Coupling rows (the multipliers' length)."""
        return int(self._hi.shape[0])

    def multipliers(self, duals: FloatArray) -> FloatArray:
        """Coupling-row multipliers from one dual per row of the formulation, clipped at 0."""
        return np.maximum(duals[self.rows], 0.0)

    def safe_bound(self, value: float, u: FloatArray) -> int | None:
        """``value = L(u)`` as an integer bound, padded by the magnitudes it was summed from.

        Every number :meth:`evaluate` adds up (offset, ``u_i hi_i``, reduced
        profits, session values) is at most ``|offset| + sum |u_i hi_i| +
        2 (sum |obj_a| + sum |u_i A_ia|)`` in absolute value, summed.
        """
        scale = (
            abs(self._offset)
            + float(np.abs(u * self._hi).sum())
            + 2.0 * float(np.abs(self._obj).sum())
            + 2.0 * float(np.abs(self._entry_coef * u[self._entry_row]).sum())
        )
        return safe_floor(value, scale)

    def reduced_profit(self, u: FloatArray) -> FloatArray:
        """Per arc, ``obj_a - sum_i u_i A_ia``."""
        c = self.c
        return (
            self._obj
            - np.bincount(
                self._entry_var,
                weights=self._entry_coef * u[self._entry_row],
                minlength=c.n_arcs,
            )[: c.n_arcs]
        )

    def evaluate(self, u: FloatArray, *, choose: bool = False) -> tuple[float, IntArray | None]:
        """``L(u)`` for coupling multipliers ``u >= 0`` and, if asked, a maximising arc set.

        Returns ``(inf, None)`` when a session cannot take its locked arcs (no
        bound then); the arc set is None unless ``choose``.
        """
        c = self.c
        profit = self.reduced_profit(u)
        total = self._offset + float(u @ self._hi)
        usable = self._allowed & (self._forced | (profit > _EPS))
        chosen: list[IntArray] = []
        for s in range(c.n_sessions):
            arcs = self._order[self._ptr[s] : self._ptr[s + 1]]
            arcs = arcs[usable[arcs]]
            if arcs.shape[0] == 0:
                continue
            best = session_best(
                profit[arcs],
                c.arc_groups[arcs],
                self._forced[arcs],
                int(c.capacity[s]),
                c.group_cap[s].tolist(),
                int(c.caregivers[s]),
                self._ratio,
                self._lcm,
                choose=choose,
            )
            if best is None:
                return math.inf, None
            total += best.value
            if choose:
                chosen.append(arcs[best.chosen])
        picked = (np.concatenate(chosen) if chosen else np.zeros(0, np.int64)) if choose else None
        return total, picked

    def subgradient(self, arcs: IntArray) -> FloatArray:
        """``hi - A x`` at the arc set ``x``: the slack of every coupling row."""
        x = np.zeros(self.c.n_arcs)
        x[arcs] = 1.0
        used = np.bincount(
            self._entry_row,
            weights=self._entry_coef * x[self._entry_var],
            minlength=self.n_rows,
        )
        return self._hi - used


def lagrangian_bound(f: Formulation, duals: FloatArray) -> int | None:
    """``floor(L(u))`` (padded) for the LP's row duals ``u``, or None when it does not apply.

    Parameters
    ----------
    f
        The formulation the duals belong to (rows in block order).
    duals
        One multiplier per row, signed so that the weak-duality bound of the
        LP holds with them (:func:`~.lp.solve_lp` returns them that way).
        Only the coupling rows' multipliers are used, clipped at zero.

    Returns
    -------
    int or None
        A valid upper bound on the score; None when the formulation holds a
        row block the sub-problem does not model (the fairness rule) or a
        session cannot take its locked arcs.
    """
    try:
        lag = Lagrangian(f)
    except ValueError:
        return None
    u = lag.multipliers(duals)
    value, _ = lag.evaluate(u)
    return lag.safe_bound(value, u)


def improve_multipliers(
    lag: Lagrangian,
    u: FloatArray,
    lower: float,
    *,
    steps: int,
    deadline: float | None = None,
    patience: int = 3,
    theta: float = 1.0,
) -> tuple[float, FloatArray, int]:
    """Polyak subgradient steps from ``u``: the least ``L`` seen, its ``u``, and the steps taken.

    ``lower`` is a known score (the steps aim at it). Every ``L(u)`` met is a
    valid bound, so stopping at any time is safe; with ``deadline`` None the
    run is deterministic. The step factor halves after ``patience`` steps
    without a better bound.
    """
    value, picked = lag.evaluate(u, choose=True)
    best, best_u = value, u
    stale = 0
    done = 0
    while done < steps and picked is not None:
        if deadline is not None and time.perf_counter() >= deadline:
            break
        g = lag.subgradient(picked)
        # A multiplier at zero with slack left cannot go lower: leave it out of the step.
        g = np.where((u <= 0.0) & (g > 0.0), 0.0, g)
        norm = float(g @ g)
        if norm <= 0.0:
            break  # the relaxed solution meets every coupling row: L(u) is the optimum
        u = np.maximum(u - theta * max(value - lower, 1.0) / norm * g, 0.0)
        value, picked = lag.evaluate(u, choose=True)
        done += 1
        if value < best:
            best, best_u = value, u
            stale = 0
        else:
            stale += 1
            if stale >= patience:
                theta *= 0.5
                stale = 0
    return best, best_u, done


def _shift(table: FloatArray, d: list[int]) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Slices moving every state ``n`` to ``n + d`` (None when nothing stays inside)."""
    src, dst = [], []
    for k, size in zip(d, table.shape, strict=True):
        if k >= size:
            return None
        src.append(slice(0, size - k))
        dst.append(slice(k, size))
    return tuple(src), tuple(dst)


@dataclass(frozen=True)
class SessionAnswer:
    """One session's sub-problem: its best value and (when asked) a best arc set."""

    value: float
    chosen: IntArray


def session_best(
    profit: FloatArray,
    groups: npt.NDArray[np.int64],
    forced: npt.NDArray[np.bool_],
    capacity: int,
    group_cap: list[int],
    caregivers: int,
    ratio: list[int],
    pool_lcm: int,
    *,
    choose: bool = False,
) -> SessionAnswer | None:
    """Best reduced profit of one session's arcs under rule 3, and (if asked) its arcs.

    Returns None when the forced (locked) arcs alone break rule 3; otherwise
    the value and the indices of a maximising set (empty unless ``choose``,
    and empty too when keeping the tables to trace it back would exceed
    :data:`MAX_STAGE_STATES`: the set only steers the multiplier search, and
    every value it meets stays a valid bound). ``pool_lcm`` is 0 under
    ``per_group`` staffing (as for :func:`slotalloc.rules.caregiver_need`).
    """
    G = groups.shape[1]
    reach = groups.sum(axis=0).tolist()
    dims = [min(group_cap[g], capacity, reach[g]) + 1 for g in range(G)]
    single = groups.sum(axis=1) == 1
    table, firsts = _single_child_table(profit, groups, single & ~forced, dims)
    others = np.flatnonzero(forced | ~single).tolist()
    if choose and len(others) * table.size > MAX_STAGE_STATES:
        choose = False
    stages: list[tuple[FloatArray, int]] = []  # (table before, arc), to trace back
    for a in others:
        moved = np.full(dims, -np.inf)
        sl = _shift(table, groups[a].tolist())
        if sl is not None:
            moved[sl[1]] = table[sl[0]] + profit[a]
        if choose:
            stages.append((table, a))
        table = moved if forced[a] else np.maximum(table, moved)
    # The group caps bound the table's axes; capacity and staffing mask its states.
    bad = over_session_limits(np.indices(dims), capacity, caregivers, ratio, pool_lcm)
    masked = np.where(bad, -np.inf, table)
    flat = int(np.argmax(masked))
    best = float(masked.flat[flat])
    if not math.isfinite(best):
        return None
    if not choose:
        return SessionAnswer(best, np.zeros(0, dtype=np.int64))
    n = [int(x) for x in np.unravel_index(flat, dims)]
    return SessionAnswer(best, _trace_back(n, table, stages, forced, groups, firsts))


def _single_child_table(
    profit: FloatArray, groups: IntArray, free_single: BoolArray, dims: list[int]
) -> tuple[FloatArray, list[IntArray]]:
    """The table of the free single-child arcs alone, and each group's arcs by profit.

    From the empty table their counts add up group by group, so the table is
    the outer sum of each group's best prefix sums (-inf past its arcs). The
    other arcs follow one by one; max-plus steps commute.
    """
    G = len(dims)
    table = np.zeros(dims)
    firsts: list[IntArray] = []
    for g in range(G):
        idx = np.flatnonzero(free_single & (groups[:, g] == 1))
        idx = idx[np.argsort(-profit[idx], kind="stable")][: dims[g] - 1]
        line = np.full(dims[g], -np.inf)
        line[0] = 0.0
        line[1 : idx.shape[0] + 1] = np.cumsum(profit[idx])
        shape = [1] * G
        shape[g] = dims[g]
        table = table + line.reshape(shape)
        firsts.append(idx)
    return table, firsts


def _trace_back(
    n: list[int],
    table: FloatArray,
    stages: list[tuple[FloatArray, int]],
    forced: BoolArray,
    groups: IntArray,
    firsts: list[IntArray],
) -> IntArray:
    """The arcs of a best set ending at counts ``n``, sorted: stage by stage, then singles."""
    picked: list[int] = []
    after = table
    for before, a in reversed(stages):
        if forced[a] or after[tuple(n)] != before[tuple(n)]:
            picked.append(a)
            n = [x - y for x, y in zip(n, groups[a].tolist(), strict=True)]
        after = before
    # What is left of the counts are single-child arcs: each group's best ones.
    for g, first in enumerate(firsts):
        picked.extend(first[: n[g]].tolist())
    return np.array(sorted(picked), dtype=np.int64)
