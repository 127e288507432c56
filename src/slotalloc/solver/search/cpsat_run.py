"""One CP-SAT solve of a :class:`~slotalloc.solver.formulation.LinearModel`, with our parameters.

Measured on 2 cores: a single worker with ``linearization_level=2`` proves
sample-sized models in milliseconds where the defaults (or two workers) give
no proof in 30 s; so every sub-model of the search is solved that way.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from ortools.sat.python import cp_model

from slotalloc._typing import IntArray
from slotalloc.solver.cpsat_model import set_hint, to_cp_model
from slotalloc.solver.formulation import LinearModel, safe_floor

__all__ = ["CpRun", "run_cpsat"]


@dataclass(frozen=True)
class CpRun:
    """Outcome of one solve: values (None without a solution), integer bound, proof."""

    values: IntArray | None
    objective: int | None
    bound: int | None
    optimal: bool
    infeasible: bool
    deterministic_time: float
    wall_time: float


class _Relay(cp_model.CpSolverSolutionCallback):
    def __init__(self, fn: Callable[[int], None]) -> None:
        super().__init__()
        self._fn = fn

    def on_solution_callback(self) -> None:
        self._fn(round(self.objective_value))


def run_cpsat(
    m: LinearModel,
    *,
    hint: IntArray | None = None,
    max_time: float | None = None,
    max_dtime: float | None = None,
    seed: int = 0,
    num_workers: int = 1,
    linearization_level: int = 2,
    on_solution: Callable[[int], None] | None = None,
    extra: dict[str, object] | None = None,
    stop: threading.Event | None = None,
) -> CpRun:
    """Solve ``m`` (maximise); the bound is rounded down safely from CP-SAT's.

    ``stop``, once set, ends the search early (e.g. a MIP beside it proved the
    optimum); the best solution found so far is returned.
    """
    model = to_cp_model(m)
    if hint is not None:
        set_hint(model, hint)
    solver = cp_model.CpSolver()
    p = solver.parameters
    p.num_workers = num_workers
    p.linearization_level = linearization_level
    p.random_seed = seed
    if max_time is not None:
        p.max_time_in_seconds = max(0.01, max_time)
    if max_dtime is not None:
        p.max_deterministic_time = max(0.001, max_dtime)
    for k, v in (extra or {}).items():
        setattr(p, k, v)
    cb = _Relay(on_solution) if on_solution is not None else None
    finished = threading.Event()
    watcher = None
    if stop is not None:
        ev = stop

        def watch() -> None:
            while not finished.is_set():
                if ev.wait(0.05):
                    solver.stop_search()
                    return

        watcher = threading.Thread(target=watch, name="slotalloc-cpsat-stop", daemon=True)
        watcher.start()
    try:
        status = solver.solve(model, cb)
    finally:
        finished.set()
        if watcher is not None:
            watcher.join()
    values: IntArray | None = None
    objective: int | None = None
    bound: int | None = None
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        values = np.asarray(solver.response_proto.solution, dtype=np.int64)
        objective = int(m.obj @ values) + m.offset
    b = solver.best_objective_bound
    # Stopped before its objective was loaded, CP-SAT reports a bound of 0 that
    # bounds nothing (seen under a budget spent in presolve): no bound then.
    no_bound = (
        status == cp_model.UNKNOWN
        and b == 0.0
        and solver.response_proto.inner_objective_lower_bound == 0
    )
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE, cp_model.UNKNOWN) and not no_bound:
        bound = safe_floor(b)
        if objective is not None and status == cp_model.OPTIMAL:
            bound = objective
    return CpRun(
        values=values,
        objective=objective,
        bound=bound,
        optimal=status == cp_model.OPTIMAL,
        infeasible=status == cp_model.INFEASIBLE,
        deterministic_time=float(solver.response_proto.deterministic_time),
        wall_time=float(solver.wall_time),
    )
