"""The public entry point: validated instance -> compiled arrays -> solver -> Result."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Literal

from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance, Status
from slotalloc.result import Result, result_from_arcs
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.infeasibility import locked_conflicts

__all__ = ["Method", "Progress", "solve"]

Method = Literal["auto", "cp-sat", "fcfs"]
_METHODS = ("auto", "cp-sat", "fcfs")


class Progress:
    """One progress report: incumbent score, bound, relative gap and elapsed seconds."""

    __slots__ = ("bound", "elapsed", "gap", "score")

    def __init__(self, score: int, bound: int | None, elapsed: float) -> None:
        self.score = score
        self.bound = bound
        self.gap = None if bound is None else (bound - score) / max(1, abs(bound))
        self.elapsed = elapsed


def _infeasible(compiled: Compiled, instance: Instance, stats: dict[str, object]) -> Result:
    return Result(
        status=Status.INFEASIBLE,
        score=None,
        bound=None,
        assignments=(),
        explanation=locked_conflicts(compiled),
        stats=stats,
        instance_name=instance.name,
    )


def solve(
    instance: Instance,
    *,
    method: Method = "auto",
    time_limit: float | None = None,
    seed: int = 0,
    deterministic: bool = False,
    callback: Callable[[Progress], None] | None = None,
    compiled: Compiled | None = None,
) -> Result:
    """Allocate the instance's requests to sessions.

    Parameters
    ----------
    instance
        A validated instance.
    method
        ``"auto"`` (default) or ``"cp-sat"``: the optimiser (LP bound, LP
        rounding, CP-SAT whole or by large-neighbourhood search; see
        :mod:`slotalloc.solver.optimizer`). ``"fcfs"``: first-come-first-served,
        the FORMAT §2 baseline.
    time_limit
        Wall seconds for the whole call, compiling included (default 10); with
        ``deterministic=True``, a CP-SAT deterministic-time budget instead.
    seed
        Seeds the search.
    deterministic
        Identical status, score, bound and assignments on every run with equal
        arguments; wall-clock figures appear only in ``stats``.
    callback
        Called from the calling thread with a :class:`Progress` on each better
        incumbent and on bound changes.
    compiled
        The compiled instance, when the caller already has it.

    Returns
    -------
    Result
        ``INFEASIBLE`` (with an explanation) exactly when the locked bookings
        alone break a rule; otherwise a valid assignment, its score and a proven
        upper bound (``OPTIMAL`` only when the two are equal). The baseline
        reports no bound.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    t0 = time.perf_counter()
    c = compiled if compiled is not None else compile_instance(instance)
    t_compile = time.perf_counter() - t0
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method != "fcfs":
        return _optimise(
            c, instance, t0, t_compile, time_limit, seed, deterministic, callback, method
        )
    chosen = first_come_first_served(c)
    stats: dict[str, object] = {
        "solver": "fcfs",
        "compile_seconds": round(t_compile, 4),
        "solve_seconds": round(time.perf_counter() - t0 - t_compile, 4),
    }
    if chosen is None:
        return _infeasible(c, instance, stats)
    res = result_from_arcs(
        c, chosen, status=Status.FEASIBLE, bound=None, stats=stats, instance_name=instance.name
    )
    if callback is not None and res.score is not None:
        callback(Progress(res.score, None, time.perf_counter() - t0))
    return res


def _optimise(
    c: Compiled,
    instance: Instance,
    t0: float,
    t_compile: float,
    time_limit: float | None,
    seed: int,
    deterministic: bool,
    callback: Callable[[Progress], None] | None,
    method: str,
) -> Result:
    # Imported here so that importing slotalloc (e.g. the online engine) loads no solver.
    from slotalloc.solver.optimizer import optimize

    stats: dict[str, object] = {"solver": method, "compile_seconds": round(t_compile, 4)}
    if locked_conflicts(c):
        stats["solve_seconds"] = round(time.perf_counter() - t0 - t_compile, 4)
        return _infeasible(c, instance, stats)

    def relay(score: int, bound: int | None) -> None:
        if callback is not None:
            callback(Progress(score, bound, time.perf_counter() - t0))

    opt = optimize(
        c,
        time_limit=time_limit,
        seed=seed,
        deterministic=deterministic,
        on_progress=relay if callback is not None else None,
        started=None if deterministic else t0,
    )
    stats.update(opt.stats)
    stats["solve_seconds"] = round(time.perf_counter() - t0 - t_compile, 4)
    return result_from_arcs(
        c,
        opt.arcs,
        status=Status.OPTIMAL if opt.optimal else Status.FEASIBLE,
        bound=opt.bound,
        stats=stats,
        instance_name=instance.name,
    )
