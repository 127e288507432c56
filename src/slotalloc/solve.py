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

Method = Literal["fcfs"]


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
    method: Method = "fcfs",
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
        ``"fcfs"``: first-come-first-served, the FORMAT §2 baseline.
    time_limit, seed, deterministic, callback
        Search controls; the baseline is deterministic and ignores them.
    compiled
        The compiled instance, when the caller already has it.

    Returns
    -------
    Result
        ``INFEASIBLE`` (with an explanation) exactly when the locked bookings
        alone break a rule; otherwise a valid assignment and its score.

    Raises
    ------
    ValueError
        For an unknown method.
    """
    t0 = time.perf_counter()
    c = compiled if compiled is not None else compile_instance(instance)
    t_compile = time.perf_counter() - t0
    if method != "fcfs":
        raise ValueError(f"unknown method {method!r}")
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
