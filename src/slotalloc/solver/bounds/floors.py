"""The Lagrangian bound under FORMAT §4 rule 8: the floors dualised beside the coupling rows.

``L(u, mu) = max_x score(x) + mu (P(x) - F) + u (hi - A x)`` splits by
session as the plain one does (:mod:`slotalloc.solver.bounds.lagrangian`),
so for every ``u, mu >= 0`` it bounds the score of every assignment meeting
the floors ``P_g(x) >= F_g`` (weak duality). At the duals of the LP under the
floors it is at most that LP's bound, and tighter by what the LP gains inside
one session from fractions (measured on a generated city, seed 21: 10 034 230
against 10 075 445).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from slotalloc._typing import FloatArray, IntArray
from slotalloc.compile import Compiled
from slotalloc.solver.bounds.lagrangian import Lagrangian, improve_multipliers
from slotalloc.solver.build import build_formulation
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.rows.group_fairness import GroupFairness, add_floor_coupling
from slotalloc.solver.rows.staffing_hull import add_staffing_hull

__all__ = ["FloorLagrangian"]


@dataclass
class FloorLagrangian:
    """The Lagrangian bound with rule 8's floors dualised beside the coupling rows.

    ``L(u, mu) = max_x score(x) + mu (P(x) - F) + u (hi - A x)`` splits by
    session as the plain one does (:mod:`slotalloc.solver.bounds.lagrangian`),
    so for every ``u, mu >= 0`` it bounds the score of every assignment
    meeting the floors. It starts from the LP's duals (a floor row's dual
    gives ``mu_g``) and its multipliers, floors' included, are improved last,
    aimed at the final score.
    """

    lag: Lagrangian
    #: The multipliers at the LP's duals (coupling rows, then the floors).
    u0: FloatArray
    #: Positions of the floor rows among the multipliers.
    floor_at: IntArray
    #: Wall seconds of the last evaluation (what one multiplier step costs).
    seconds: float

    @staticmethod
    def build(
        c: Compiled, rule: GroupFairness, f_lp: Formulation, duals: FloatArray
    ) -> FloorLagrangian | None:
        """The bound's model, its multipliers taken from the LP under the floors.

        Parameters
        ----------
        c
            The compiled instance.
        rule
            Rule 8's rows (:func:`~slotalloc.solver.rows.group_fairness.group_floor`).
        f_lp
            The LP's formulation (with the floor rows over session counts).
        duals
            The LP's row duals, one per row of ``f_lp``.

        Returns
        -------
        FloorLagrangian or None
            None when the rule holds ``min_group_rate``'s rows or no floor,
            or a session's sub-problem is too large (no Lagrangian then).
        """
        if rule.rate is not None:
            return None  # min_group_rate's rows have no sub-problem
        t = time.perf_counter()
        f = build_formulation(c)
        add_staffing_hull(f)
        ks = add_floor_coupling(f, rule)
        if ks.shape[0] == 0:
            return None
        try:
            lag = Lagrangian(f)
        except ValueError:
            return None
        full = np.zeros(f.n_rows)
        at_lp = f_lp.block_rows()
        at = f.block_rows()
        for name, (lo, hi) in at.items():
            if name == "group_floor":
                # A ">=" row of a maximisation has a dual <= 0; "-P <= -F" takes its negation.
                for j, k in enumerate(ks.tolist()):
                    src = at_lp.get(rule.names[k])
                    if src is not None:
                        full[lo + j] = -float(duals[src[0]])
            elif name in at_lp:
                src_lo, src_hi = at_lp[name]
                if src_hi - src_lo == hi - lo:
                    full[lo:hi] = duals[src_lo:src_hi]
        u0 = lag.multipliers(full)
        floor_lo = at["group_floor"][0]
        floor_at = np.flatnonzero((lag.rows >= floor_lo) & (lag.rows < floor_lo + ks.shape[0]))
        out = FloorLagrangian(lag, u0, floor_at, 0.0)
        out.seconds = time.perf_counter() - t
        return out

    def prices(self) -> FloatArray:
        """``mu_g`` of the floor rows at the LP's duals."""
        return self.u0[self.floor_at]

    def bound(self, u: FloatArray) -> int | None:
        """``L(u)`` as a safe integer bound; None when a session cannot take its locked arcs."""
        t = time.perf_counter()
        value, _ = self.lag.evaluate(u)
        self.seconds = time.perf_counter() - t
        return None if not np.isfinite(value) else self.lag.safe_bound(value, u)

    def improve(self, score: int, steps: int, deadline: float | None) -> int | None:
        """The least bound of a subgradient search from ``u0`` aimed at ``score``."""
        value, u, _done = improve_multipliers(
            self.lag, self.u0, float(score), steps=steps, deadline=deadline
        )
        return None if not np.isfinite(value) else self.lag.safe_bound(value, u)
