"""Large-neighbourhood search: re-optimise a few linked sessions at a time.

Each step frees every request that could go to a handful of sessions grown
breadth-first from a seed (so requests competing for the same places move
together), fixes everything else, and solves that small exact sub-model with
CP-SAT, hinted with the incumbent. A sub-model solved to optimality grows the
next neighbourhood; one cut short shrinks it. The incumbent never gets worse
and stays valid: the sub-model contains every row the freed variables touch.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slotalloc.solver.cpsat_run import run_cpsat
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.neighbourhood import SessionGraph, free_variables, restrict

__all__ = ["LnsBudget", "LnsOutcome", "large_neighbourhood_search"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class LnsBudget:
    """Either a wall-clock deadline (``time.perf_counter()`` value) or a deterministic budget."""

    deadline: float | None = None
    dtime: float | None = None
    step_seconds: float = 1.0
    step_dtime: float = 0.5


@dataclass(frozen=True)
class LnsOutcome:
    values: IntArray
    objective: int
    steps: int
    improving_steps: int
    dtime: float


def large_neighbourhood_search(
    f: Formulation,
    values: IntArray,
    objective: int,
    budget: LnsBudget,
    *,
    seed: int = 0,
    start_arcs: int = 1500,
    on_improve: Callable[[IntArray, int], None] | None = None,
) -> LnsOutcome:
    """Improve a feasible assignment of ``f`` until the budget runs out.

    Parameters
    ----------
    f
        The full formulation.
    values
        A feasible assignment of every variable (copied, not modified).
    objective
        Its objective value (the score).
    budget
        Wall-clock deadline or deterministic budget (then the run is reproducible).
    seed
        Seeds the neighbourhood choice and CP-SAT.
    start_arcs
        Initial neighbourhood size in arcs.
    on_improve
        Called with the new values and score after every improvement.
    """
    c = f.c
    rng = np.random.default_rng(seed)
    graph = SessionGraph(c)
    cur = values.copy()
    best = objective
    active = np.flatnonzero(np.bincount(c.arc_sess, minlength=c.n_sessions) > 0)
    if active.shape[0] == 0:
        return LnsOutcome(cur, best, 0, 0, 0.0)
    seeds: list[int] = []
    size = float(start_arcs)
    steps = improving = 0
    spent = 0.0
    while True:
        if budget.deadline is not None:
            left = budget.deadline - time.perf_counter()
            if left <= 0.05:
                break
            step_time: float | None = min(budget.step_seconds, left)
            step_dtime: float | None = None
        else:
            assert budget.dtime is not None
            left = budget.dtime - spent
            if left <= 1e-3:
                break
            step_time = None
            step_dtime = min(budget.step_dtime, left)
        if not seeds:
            seeds = rng.permutation(active).tolist()
        reqs = graph.grow(seeds.pop(), int(size), rng)
        if reqs.shape[0] == 0:
            continue
        free = free_variables(f, reqs)
        sub, idx = restrict(f, free, cur)
        run = run_cpsat(
            sub,
            hint=cur[idx],
            max_time=step_time,
            max_dtime=step_dtime,
            seed=int(rng.integers(1 << 30)),
        )
        steps += 1
        spent += run.deterministic_time
        if run.values is not None and run.objective is not None and run.objective > best:
            cur[idx] = run.values
            best = run.objective
            improving += 1
            if on_improve is not None:
                on_improve(cur, best)
        size = min(size * 1.25, 20000.0) if run.optimal else max(size * 0.7, 100.0)
    log.debug("LNS: %d steps, %d improving, score %d", steps, improving, best)
    return LnsOutcome(cur, best, steps, improving, spent)
