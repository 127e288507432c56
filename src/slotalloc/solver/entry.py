"""One solve in this process: compiled arrays -> a solver -> a :class:`~slotalloc.result.Result`.

:func:`slotalloc.solve` routes here unless an executor is asked for; the
solve-by-parts coordinator (:mod:`slotalloc.distributed`) solves each part and
each bound task here too.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Any, Literal

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Assignment, Instance, Solution, Status
from slotalloc.result import Progress, Result, SolveStats, result_from_arcs
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.infeasibility import locked_conflicts, minimal_conflicts

__all__ = ["METHODS", "Hint", "Method", "hint_arcs", "solve_single"]

#: A known assignment to start from: a result, a solution or its assignments.
Hint = Result | Solution | Iterable[Assignment]

Method = Literal["auto", "cp-sat", "fcfs"]
#: Every :data:`Method`.
METHODS = ("auto", "cp-sat", "fcfs")


def solve_single(
    instance: Instance,
    *,
    method: Method = "auto",
    time_limit: float | None = None,
    seed: int = 0,
    deterministic: bool = False,
    callback: Callable[[Progress], None] | None = None,
    compiled: Compiled | None = None,
    min_group_rate: Fraction | float | None = None,
    hint: Hint | None = None,
    focus: Iterable[str] | None = None,
) -> Result:
    """Allocate the instance's requests in this process.

    The arguments are :func:`slotalloc.solve`'s without the executor's.

    Raises
    ------
    ValueError
        For an unknown method; a ``min_group_rate`` outside [0, 1], given with
        ``method="fcfs"``, or that no starting assignment can meet together
        with the locked bookings.
    """
    t0 = time.perf_counter()
    c = compiled if compiled is not None else compile_instance(instance)
    t_compile = time.perf_counter() - t0
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method != "fcfs":
        return _optimise(
            c,
            instance,
            t0,
            t_compile,
            time_limit=time_limit,
            seed=seed,
            deterministic=deterministic,
            callback=callback,
            method=method,
            min_group_rate=min_group_rate,
            hint=None if hint is None else hint_arcs(c, hint),
            focus=None if focus is None else _session_indices(c, focus),
        )
    if min_group_rate is not None:
        raise ValueError("min_group_rate needs the optimiser, not the fcfs baseline")
    # Under FORMAT §4 rule 9 the baseline is taken in priority order: it meets the rules.
    chosen = first_come_first_served(c, priority_order=instance.policy.envy_free)
    stats = SolveStats(
        solver="fcfs",
        compile_seconds=round(t_compile, 4),
        solve_seconds=round(time.perf_counter() - t0 - t_compile, 4),
    )
    if chosen is None:
        return _infeasible(c, instance, stats)
    res = result_from_arcs(
        c, chosen, status=Status.FEASIBLE, bound=None, stats=stats, instance_name=instance.name
    )
    if callback is not None and res.score is not None:
        callback(Progress(res.score, None, time.perf_counter() - t0))
    return res


def _infeasible(compiled: Compiled, instance: Instance, stats: SolveStats) -> Result:
    return Result(
        status=Status.INFEASIBLE,
        score=None,
        bound=None,
        assignments=(),
        explanation=minimal_conflicts(compiled),
        stats=stats,
        instance_name=instance.name,
    )


def _optimise(
    c: Compiled,
    instance: Instance,
    t0: float,
    t_compile: float,
    *,
    time_limit: float | None,
    seed: int,
    deterministic: bool,
    callback: Callable[[Progress], None] | None,
    method: str,
    min_group_rate: Fraction | float | None,
    hint: IntArray | None,
    focus: IntArray | None,
) -> Result:
    # Imported here so that importing slotalloc (e.g. the online engine) loads no solver.
    from slotalloc.solver.optimizer import optimize
    from slotalloc.solver.rows.group_fairness import group_fairness

    fairness = None if min_group_rate is None else group_fairness(c, min_group_rate)
    compile_seconds = round(t_compile, 4)
    if locked_conflicts(c):
        solve_seconds = round(time.perf_counter() - t0 - t_compile, 4)
        stats = SolveStats(
            solver=method, compile_seconds=compile_seconds, solve_seconds=solve_seconds
        )
        return _infeasible(c, instance, stats)

    def relay(score: int, bound: int | None) -> None:
        if callback is not None:
            callback(Progress(score, bound, time.perf_counter() - t0))

    common: dict[str, Any] = {
        "time_limit": time_limit,
        "seed": seed,
        "deterministic": deterministic,
        "on_progress": relay if callback is not None else None,
        # Deterministic budgets count work, not the time compiling took.
        "started": None if deterministic else t0,
        "hint": hint,
        "focus": focus,
    }
    rules = instance.policy.fairness
    figures: dict[str, object]
    if rules is not None and rules.any:
        from slotalloc.solver.fair import optimize_fair

        opt: Any = optimize_fair(c, instance.policy, optimize, rate_rule=fairness, **common)
        figures = dict(opt.stats)
        figures["fairness"] = {k: v for k, v in rules.model_dump().items() if v is not None}
    else:
        opt = optimize(c, fairness=fairness, **common)
        figures = opt.stats
    stats = SolveStats(
        solver=method,
        compile_seconds=compile_seconds,
        figures=figures,
        min_group_rate=None if fairness is None else str(fairness.rate),
        solve_seconds=round(time.perf_counter() - t0 - t_compile, 4),
    )
    return result_from_arcs(
        c,
        opt.arcs,
        status=Status.OPTIMAL if opt.optimal else Status.FEASIBLE,
        bound=opt.bound,
        stats=stats,
        instance_name=instance.name,
    )


def hint_arcs(compiled: Compiled, hint: Hint) -> IntArray:
    """Candidate arcs of a hint, in its order; unknown or non-candidate pairs are skipped."""
    pairs = hint.assignments if isinstance(hint, Result | Solution) else hint
    ridx = {r: i for i, r in enumerate(compiled.request_ids)}
    sidx = {s: i for i, s in enumerate(compiled.session_ids)}
    arcs: list[int] = []
    ptr = compiled.req_arc_ptr
    for p in pairs:
        r, s = ridx.get(p.request), sidx.get(p.session)
        if r is None or s is None:
            continue
        lo, hi = int(ptr[r]), int(ptr[r + 1])
        hit = np.flatnonzero(compiled.arc_sess[lo:hi] == s)
        if hit.shape[0]:
            arcs.append(lo + int(hit[0]))
    return np.array(arcs, dtype=np.int64)


def _session_indices(compiled: Compiled, ids: Iterable[str]) -> IntArray:
    sidx = {s: i for i, s in enumerate(compiled.session_ids)}
    return np.array([sidx[s] for s in ids if s in sidx], dtype=np.int64)
