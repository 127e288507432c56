"""The LP relaxation, solved with GLOP, and a bound that does not trust it.

GLOP's optimum is a floating-point number. The bound reported comes instead
from weak duality: for *any* row multipliers ``y``, with ``d = obj - A^T y``,
``max obj @ v <= sum_i (y_i hi_i if y_i > 0 else y_i lo_i) + sum_j max(d_j lb_j, d_j ub_j)``.
Whatever GLOP's accuracy or sign convention, that holds, so it is evaluated
for the duals as returned and negated, in float64, padded by a tolerance
before being rounded down (the score is an integer).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

import numpy as np
from ortools.linear_solver import linear_solver_pb2 as lpb  # type: ignore[attr-defined]
from ortools.linear_solver.python import model_builder_helper as mbh

from slotalloc._typing import FloatArray
from slotalloc.solver.formulation import INF, LinearModel, safe_floor
from slotalloc.solver.params import PARAMS

__all__ = ["LpRelaxation", "solve_lp"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LpRelaxation:
    """What the relaxation gives: a fractional point and a safe integer bound."""

    values: FloatArray  # one per variable of the formulation
    duals: FloatArray  # one per row, signed so that the weak-duality bound holds with them
    objective: float
    bound: int | None  # None when GLOP did not reach an optimum
    optimal: bool


def _to_proto(f: LinearModel) -> lpb.MPModelProto:
    m = lpb.MPModelProto()
    m.maximize = True
    m.objective_offset = float(f.offset)
    var = lpb.MPVariableProto
    m.variable.extend(
        var(lower_bound=lo, upper_bound=hi, objective_coefficient=o)
        for lo, hi, o in zip(f.lb.tolist(), f.ub.tolist(), f.obj.tolist(), strict=True)
    )
    con = lpb.MPConstraintProto
    for b in f.blocks:
        ptr = b.ptr.tolist()
        v = b.var.tolist()
        cf = b.coef.astype(np.float64).tolist()
        lo = np.where(b.lo <= -INF, -np.inf, b.lo).astype(np.float64).tolist()
        hi = np.where(b.hi >= INF, np.inf, b.hi).astype(np.float64).tolist()
        m.constraint.extend(
            con(
                var_index=v[ptr[i] : ptr[i + 1]],
                coefficient=cf[ptr[i] : ptr[i + 1]],
                lower_bound=lo[i],
                upper_bound=hi[i],
            )
            for i in range(b.n_rows)
        )
    return m


def _dual_bound(f: LinearModel, y: FloatArray) -> tuple[float, float]:
    """Weak-duality bound of ``max obj @ v + offset`` for multipliers ``y``, and its scale.

    The scale is the sum of the magnitudes of every term the bound is computed
    from (for :func:`~slotalloc.solver.formulation.safe_floor`'s padding).
    """
    d = f.obj.astype(np.float64)
    total = float(f.offset)
    scale = abs(float(f.offset)) + float(np.abs(d).sum())
    start = 0
    for b in f.blocks:
        yb = y[start : start + b.n_rows]
        start += b.n_rows
        lo = b.lo.astype(np.float64)
        hi = b.hi.astype(np.float64)
        # A multiplier pushing against an absent side would be unbounded: drop it.
        yb = np.where((yb > 0) & (b.hi >= INF), 0.0, yb)
        yb = np.where((yb < 0) & (b.lo <= -INF), 0.0, yb)
        side = np.where(yb > 0, yb * hi, yb * lo)
        total += float(np.sum(side))
        rows = np.repeat(np.arange(b.n_rows), np.diff(b.ptr))
        term = b.coef * yb[rows]
        d -= np.bincount(b.var, weights=term, minlength=f.n_vars)
        scale += float(np.abs(side).sum()) + float(np.abs(term).sum())
    last = np.maximum(d * f.lb, d * f.ub)
    total += float(np.sum(last))
    scale += float(np.abs(last).sum())
    return total, scale


def solve_lp(
    f: LinearModel,
    time_limit: float | None = None,
    *,
    glop_parameters: str = PARAMS.glop_parameters,
) -> LpRelaxation:
    """Solve the relaxation with GLOP; the bound is safe even if GLOP is inexact.

    Parameters
    ----------
    f
        The formulation (integrality is dropped).
    time_limit
        Wall seconds for GLOP, or None for no limit (deterministic).
    glop_parameters
        GLOP's parameters in text form (the measured choice:
        :attr:`~slotalloc.solver.params.OptimizerParams.glop_parameters`).

    Returns
    -------
    LpRelaxation
        The fractional point and, when GLOP finished, an integer upper bound
        on the best score.
    """
    req = lpb.MPModelRequest()
    req.model.CopyFrom(_to_proto(f))
    req.solver_type = lpb.MPModelRequest.GLOP_LINEAR_PROGRAMMING
    req.solver_specific_parameters = glop_parameters
    if time_limit is not None:
        req.solver_time_limit_seconds = max(0.01, float(time_limit))
    helper = mbh.ModelSolverHelper("glop")
    resp = lpb.MPSolutionResponse()
    resp.ParseFromString(helper.solve_serialized_request(req.SerializeToString()))
    n = f.n_vars
    if resp.status != lpb.MPSOLVER_OPTIMAL or len(resp.variable_value) != n:
        log.info("LP relaxation not solved: %s", lpb.MPSolverResponseStatus.Name(resp.status))
        return LpRelaxation(np.zeros(n), np.zeros(f.n_rows), math.nan, None, optimal=False)
    values = np.asarray(resp.variable_value, dtype=np.float64)
    y = np.asarray(resp.dual_value, dtype=np.float64)
    plus, minus = _dual_bound(f, y), _dual_bound(f, -y)
    if minus[0] < plus[0]:
        y = -y
    bound = safe_floor(*min(plus, minus))
    return LpRelaxation(values, y, resp.objective_value, bound, optimal=True)
