"""The allocation model as plain integer arrays, shared by every backend.

A :class:`Formulation` is a variable container plus blocks of linear rows in
compressed sparse row form (``lo <= sum coef * var <= hi``). The rules
(:mod:`slotalloc.solver.rows`) each add one block, reading like the maths; the
backends turn the same blocks into a CP-SAT proto (:mod:`.cpsat_model`), an LP
for GLOP (:mod:`.bounds.lp`) or, in the benchmarks, a HiGHS MIP. Keeping one
formulation means the bound, the hint and the exact model can never disagree.

Variables ``0 .. A-1`` are the candidate arcs ``x_a`` (indexing hidden behind
:meth:`Formulation.x`); auxiliary integer variables (staffing) follow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import group_need

__all__ = ["INF", "Formulation", "LinearModel", "RowBlock", "group_rows", "safe_floor"]


#: Stands for an absent side of a row; far beyond any sum the model can reach.
INF = 1 << 60


def safe_floor(value: float, scale: float = 0.0) -> int | None:
    """An integer bound from a float one: padded for rounding error, then rounded down.

    ``scale`` is the sum of the magnitudes of the terms ``value`` was summed
    from: when large terms cancel (a drop weight of 10^10 against a score near
    zero, say) the rounding error follows them, not ``value``, so the padding
    does too.
    """
    if not (math.isfinite(value) and math.isfinite(scale)):
        return None
    return math.floor(value + 1e-6 * abs(value) + 1e-9 * abs(scale) + 1e-6)


@dataclass(frozen=True)
class RowBlock:
    """Rows ``lo[i] <= sum_k coef[k] * var[k] <= hi[i]`` for k in ``ptr[i]:ptr[i+1]``.

    ``at_most_one`` marks blocks whose rows are all ``sum x <= 1`` over Booleans,
    which CP-SAT takes as native at-most-one constraints.
    """

    name: str
    ptr: IntArray
    var: IntArray
    coef: IntArray
    lo: IntArray
    hi: IntArray
    at_most_one: bool = False

    @property
    def n_rows(self) -> int:
        return int(self.ptr.shape[0]) - 1


def group_rows(keys: IntArray, n_keys: int) -> tuple[IntArray, IntArray]:
    """Stable order grouping equal keys, and the row pointer over ``0..n_keys``."""
    order = np.argsort(keys, kind="stable")
    ptr = np.searchsorted(keys[order], np.arange(n_keys + 1, dtype=np.int64)).astype(np.int64)
    return order, ptr


@dataclass
class LinearModel:
    """Variables, their bounds, the integer objective and the row blocks.

    Maximise ``obj @ v + offset`` subject to every block; every variable is
    integer (the arcs are Booleans).
    """

    lb: IntArray
    ub: IntArray
    obj: IntArray
    offset: int = 0
    blocks: list[RowBlock] = field(default_factory=list)

    @property
    def n_vars(self) -> int:
        return int(self.lb.shape[0])

    @property
    def n_rows(self) -> int:
        return sum(b.n_rows for b in self.blocks)

    def block_rows(self) -> dict[str, tuple[int, int]]:
        """Each row block's name -> its first and past-last row (as LP duals are ordered)."""
        out: dict[str, tuple[int, int]] = {}
        row = 0
        for b in self.blocks:
            out[b.name] = (row, row + b.n_rows)
            row += b.n_rows
        return out

    @property
    def objective_step(self) -> int:
        """The gcd of the objective's coefficients: values differ from ``offset`` by its multiples.

        FORMAT's default weights are multiples of 10, so scores are too; a bound
        rounded down onto that lattice (:meth:`lattice_floor`) proves optimality
        as soon as it is less than one step above the score.
        """
        nz = np.abs(self.obj[self.obj != 0])
        return int(np.gcd.reduce(nz)) if nz.shape[0] else 1

    def lattice_floor(self, bound: int) -> int:
        """The largest value ``<= bound`` on the objective's lattice (:attr:`objective_step`)."""
        step = self.objective_step
        return bound - (bound - self.offset) % step


@dataclass
class Formulation(LinearModel):
    """The allocation model of one compiled instance (see the module docstring)."""

    compiled: Compiled | None = None
    #: per-group staffing: the y variables and their (session * G + group) pairs
    staff_vars: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    staff_pairs: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: LP-only staffing hull: the lambda variables, their sessions and corners [L, G]
    hull_vars: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hull_sess: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    hull_corner: IntArray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    #: group fairness (opt-in): the z variables and their (session * G + group) pairs
    fair_vars: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fair_pairs: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    #: children per home group of each arc, when the fairness rule is on [A, G]
    fair_home: IntArray | None = None

    @classmethod
    def over_arcs(cls, c: Compiled) -> Formulation:
        """One Boolean per candidate arc, no rows yet, objective zero."""
        A = c.n_arcs
        return cls(
            compiled=c,
            lb=np.zeros(A, dtype=np.int64),
            ub=np.ones(A, dtype=np.int64),
            obj=np.zeros(A, dtype=np.int64),
        )

    @property
    def c(self) -> Compiled:
        """The compiled instance the formulation is built from."""
        assert self.compiled is not None
        return self.compiled

    @property
    def n_arcs(self) -> int:
        return self.c.n_arcs

    def x(self, arcs: npt.ArrayLike) -> IntArray:
        """Variable indices of the arc Booleans ``x_a``."""
        return np.asarray(arcs, dtype=np.int64)

    def new_int_vars(self, lo: npt.ArrayLike, hi: npt.ArrayLike) -> IntArray:
        """Append integer variables with these bounds; returns their indices."""
        lo_a = np.asarray(lo, dtype=np.int64).ravel()
        hi_a = np.broadcast_to(np.asarray(hi, dtype=np.int64), lo_a.shape).ravel()
        first = self.n_vars
        self.lb = np.concatenate([self.lb, lo_a])
        self.ub = np.concatenate([self.ub, hi_a])
        self.obj = np.concatenate([self.obj, np.zeros(lo_a.shape[0], dtype=np.int64)])
        return np.arange(first, first + lo_a.shape[0], dtype=np.int64)

    def fix(self, variables: npt.ArrayLike, value: int) -> None:
        """Fix variables to one value (both bounds)."""
        v = np.asarray(variables, dtype=np.int64)
        self.lb[v] = value
        self.ub[v] = value

    def add_rows(
        self,
        name: str,
        ptr: IntArray,
        var: IntArray,
        coef: IntArray,
        lo: npt.ArrayLike,
        hi: npt.ArrayLike,
        *,
        at_most_one: bool = False,
    ) -> None:
        """Append a block of rows (see :class:`RowBlock`); empty blocks are skipped."""
        n = int(ptr.shape[0]) - 1
        if n <= 0:
            return
        lo_a = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n,)).copy()
        hi_a = np.broadcast_to(np.asarray(hi, dtype=np.int64), (n,)).copy()
        self.blocks.append(
            RowBlock(
                name,
                ptr.astype(np.int64),
                var.astype(np.int64),
                coef.astype(np.int64),
                lo_a,
                hi_a,
                at_most_one,
            )
        )

    def add_grouped(
        self,
        name: str,
        keys: IntArray,
        var: IntArray,
        coef: IntArray,
        n_keys: int,
        hi: npt.ArrayLike,
        *,
        lo: npt.ArrayLike = -INF,
        min_terms: int = 1,
        at_most_one: bool = False,
        always: bool = False,
    ) -> None:
        """One row per key ``k``: ``lo[k] <= sum of the terms with that key <= hi[k]``.

        Rows with fewer than ``min_terms`` terms, or that can never bind (the sum
        of their positive coefficients already fits under ``hi`` and ``lo`` is
        absent), are left out: they cost build time and presolve time only.
        """
        order, ptr = group_rows(keys, n_keys)
        counts = np.diff(ptr)
        hi_k = np.broadcast_to(np.asarray(hi, dtype=np.int64), (n_keys,))
        lo_k = np.broadcast_to(np.asarray(lo, dtype=np.int64), (n_keys,))
        c_sorted = coef[order]
        v_sorted = var[order]
        ub_term = np.maximum(c_sorted, 0) * self.ub[v_sorted] - np.minimum(c_sorted, 0) * (
            -self.lb[v_sorted]
        )
        reach = np.zeros(n_keys, dtype=np.int64)
        np.add.at(reach, keys[order], ub_term)
        binding = (counts >= min_terms) & ((reach > hi_k) | (lo_k > -INF) | always)
        keep = np.flatnonzero(binding)
        if keep.shape[0] == 0:
            return
        sel_counts = counts[keep]
        new_ptr = np.concatenate([[0], np.cumsum(sel_counts)]).astype(np.int64)
        idx = np.repeat(ptr[keep], sel_counts) + (
            np.arange(int(new_ptr[-1]), dtype=np.int64) - np.repeat(new_ptr[:-1], sel_counts)
        )
        self.add_rows(
            name,
            new_ptr,
            v_sorted[idx],
            c_sorted[idx],
            lo_k[keep],
            hi_k[keep],
            at_most_one=at_most_one,
        )

    def values_of_arcs(self, arcs: npt.ArrayLike) -> IntArray:
        """A full assignment of the variables from chosen arcs.

        The staffing variables take the least value their rows allow,
        ``ceil(n_{s,g} / ratio_g)`` (:func:`slotalloc.rules.group_need`), which
        is feasible whenever the arcs are; the fairness counts ``z_{s,g}`` the
        value their link rows force.
        """
        c = self.c
        v = np.zeros(self.n_vars, dtype=np.int64)
        chosen = np.asarray(arcs, dtype=np.int64)
        v[chosen] = 1
        if self.staff_vars.shape[0]:
            G = c.n_groups
            n = np.zeros(c.n_sessions * G, dtype=np.int64)
            arc, g = np.nonzero(c.arc_groups[chosen])
            np.add.at(n, c.arc_sess[chosen[arc]] * G + g, c.arc_groups[chosen[arc], g])
            pairs = self.staff_pairs
            v[self.staff_vars] = group_need(n[pairs], c.ratio[pairs % G])
        if self.fair_vars.shape[0] and self.fair_home is not None:
            G = c.n_groups
            z = np.zeros(c.n_sessions * G, dtype=np.int64)
            arc, g = np.nonzero(self.fair_home[chosen])
            np.add.at(z, c.arc_sess[chosen[arc]] * G + g, self.fair_home[chosen[arc], g])
            v[self.fair_vars] = z[self.fair_pairs]
        return v
