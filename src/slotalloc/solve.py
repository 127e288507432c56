"""The public entry point: validated instance -> compiled arrays -> solver -> Result."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Assignment, Instance, Solution, Status
from slotalloc.result import Result, result_from_arcs
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.infeasibility import locked_conflicts, minimal_conflicts

__all__ = ["Hint", "Method", "Progress", "hint_arcs", "solve"]

#: A known assignment to start from: a result, a solution or its assignments.
Hint = Result | Solution | Iterable[Assignment]

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
        explanation=minimal_conflicts(compiled),
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
    min_group_rate: Fraction | float | None = None,
    hint: Hint | None = None,
    focus: Iterable[str] | None = None,
    executor: Literal["inprocess", "process", "ray"] | None = None,
    address: str | None = None,
    workers: int | None = None,
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
    min_group_rate
        Opt-in fairness rule (optimiser only): every age group's service rate
        at least this fraction (in [0, 1]) of the overall rate, rates counted
        over child places by the children's age group on their first
        preference's date (docs/fairness.md). None (default): no such rule.
        A float is read as the decimal it prints (0.8 is exactly 4/5).
    hint
        A known assignment (e.g. the solution before a small change of the
        instance): its places that still fit are taken first as one starting
        point (optimiser only), so with a valid hint the result scores at
        least as well. Requests or sessions it names that the instance lacks,
        and pairs that are not candidates, are ignored.
    focus
        Session ids the large-neighbourhood search re-optimises first (e.g.
        the sessions a small change touched); unknown ids are ignored.
    executor, address, workers
        Solve by parts (independent components, large ones cut geographically)
        on an executor: ``"inprocess"``, ``"process"`` (a local process pool) or
        ``"ray"`` (``address`` of a cluster, or a local Ray with ``workers``
        CPUs); see :func:`slotalloc.distributed.solve_distributed`. None
        (default): one process.

    Returns
    -------
    Result
        ``INFEASIBLE`` (with a minimal explanation: a smallest-by-inclusion
        set of conflicting locked bookings and the rules they break) exactly
        when the locked bookings alone break a rule; otherwise a valid
        assignment, its score and a proven upper bound (``OPTIMAL`` only when
        the two are equal). The baseline reports no bound.

    Raises
    ------
    ValueError
        For an unknown method; ``executor`` with another method than the
        optimiser or with ``min_group_rate``, ``hint`` or ``focus`` (not
        supported across parts); ``address`` or ``workers`` without
        ``executor``; a ``min_group_rate`` outside [0, 1], or given
        with ``method="fcfs"`` (the baseline follows FORMAT only), or that no
        starting assignment can meet together with the locked bookings.
    """
    if executor is not None:
        if method not in ("auto", "cp-sat"):
            raise ValueError(f"executor {executor!r} needs the optimiser, not method {method!r}")
        if min_group_rate is not None or hint is not None or focus is not None:
            raise ValueError("min_group_rate, hint and focus are not supported with an executor")
        # Imported here: the distributed package itself imports this module.
        from slotalloc.distributed import solve_distributed

        return solve_distributed(
            instance,
            executor=executor,
            address=address,
            workers=workers,
            time_limit=time_limit,
            seed=seed,
            deterministic=deterministic,
            callback=callback,
            compiled=compiled,
        )
    if address is not None or workers is not None:
        raise ValueError("address and workers need an executor")
    t0 = time.perf_counter()
    c = compiled if compiled is not None else compile_instance(instance)
    t_compile = time.perf_counter() - t0
    if method not in _METHODS:
        raise ValueError(f"unknown method {method!r}")
    if method != "fcfs":
        return _optimise(
            c,
            instance,
            t0,
            t_compile,
            time_limit,
            seed,
            deterministic,
            callback,
            method,
            min_group_rate,
            None if hint is None else hint_arcs(c, hint),
            None if focus is None else _session_indices(c, focus),
        )
    if min_group_rate is not None:
        raise ValueError("min_group_rate needs the optimiser, not the fcfs baseline")
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
    min_group_rate: Fraction | float | None,
    hint: npt.NDArray[np.int64] | None,
    focus: npt.NDArray[np.int64] | None,
) -> Result:
    # Imported here so that importing slotalloc (e.g. the online engine) loads no solver.
    from slotalloc.solver.optimizer import optimize
    from slotalloc.solver.rows.group_fairness import group_fairness

    fairness = None if min_group_rate is None else group_fairness(c, min_group_rate)

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
        fairness=fairness,
        hint=hint,
        focus=focus,
    )
    stats.update(opt.stats)
    if fairness is not None:
        stats["min_group_rate"] = str(fairness.rate)
    stats["solve_seconds"] = round(time.perf_counter() - t0 - t_compile, 4)
    return result_from_arcs(
        c,
        opt.arcs,
        status=Status.OPTIMAL if opt.optimal else Status.FEASIBLE,
        bound=opt.bound,
        stats=stats,
        instance_name=instance.name,
    )


def hint_arcs(compiled: Compiled, hint: Hint) -> npt.NDArray[np.int64]:
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


def _session_indices(compiled: Compiled, ids: Iterable[str]) -> npt.NDArray[np.int64]:
    sidx = {s: i for i, s in enumerate(compiled.session_ids)}
    return np.array([sidx[s] for s in ids if s in sidx], dtype=np.int64)
