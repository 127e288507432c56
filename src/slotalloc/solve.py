"""The public entry point: validated instance -> compiled arrays -> solver -> Result.

:func:`solve` solves in this process (:func:`slotalloc.solver.entry.solve_single`)
or, given an :class:`ExecutorConfig`, by parts on an executor
(:func:`slotalloc.distributed.solve_distributed`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from slotalloc.compile import Compiled
from slotalloc.models import Instance
from slotalloc.result import Progress, Result
from slotalloc.solver.entry import Hint, Method, hint_arcs, solve_single

__all__ = ["ExecutorConfig", "ExecutorName", "Hint", "Method", "Progress", "hint_arcs", "solve"]

ExecutorName = Literal["inprocess", "process", "ray"]


@dataclass(frozen=True)
class ExecutorConfig:
    """Where :func:`solve` runs the parts when it solves by parts.

    Attributes
    ----------
    name
        ``"inprocess"`` (tasks one after another in this process),
        ``"process"`` (a local process pool) or ``"ray"``.
    address
        Ray cluster address (``"auto"``, ``"ray://host:10001"``); only with
        ``"ray"``. Without it, a running Ray is joined, or a local one with
        ``workers`` CPUs is started (and stopped afterwards).
    workers
        Tasks run at once (default: the machine's or cluster's CPUs).
    """

    name: ExecutorName = "inprocess"
    address: str | None = None
    workers: int | None = None


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
    executor: ExecutorConfig | ExecutorName | None = None,
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
        The budget; None means 10 (:data:`~slotalloc.solver.params.DEFAULT_TIME_LIMIT`)
        in every mode. By default it is wall seconds for the whole call,
        compiling included. With ``deterministic=True`` it is CP-SAT
        deterministic-time units (a measure of work, not of time; compiling is
        not counted). By parts (``executor``), wall seconds for the whole call,
        or with ``deterministic=True`` deterministic units shared among the
        parts in proportion to their size. ``method="fcfs"`` ignores it (the
        baseline runs to its end in milliseconds).
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
    executor
        Solve by parts (independent components, large ones cut geographically)
        on the executor an :class:`ExecutorConfig` names; see
        :func:`slotalloc.distributed.solve_distributed`. None (default): one
        process. An executor's name alone (``"process"``) is deprecated: pass
        ``ExecutorConfig("process")``.
    address, workers
        Deprecated: pass them in the :class:`ExecutorConfig`.

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
        supported across parts); an unknown executor, or an ``address``
        without Ray; ``address`` or ``workers`` without ``executor``, or
        beside an :class:`ExecutorConfig`; a ``min_group_rate`` outside
        [0, 1], or given with ``method="fcfs"`` (the baseline follows FORMAT
        only), or that no starting assignment can meet together with the
        locked bookings.
    ImportError
        For the ``"ray"`` executor without Ray installed.
    """
    config = _executor_config(executor, address, workers)
    if config is None:
        return solve_single(
            instance,
            method=method,
            time_limit=time_limit,
            seed=seed,
            deterministic=deterministic,
            callback=callback,
            compiled=compiled,
            min_group_rate=min_group_rate,
            hint=hint,
            focus=focus,
        )
    if method not in ("auto", "cp-sat"):
        raise ValueError(f"executor {config.name!r} needs the optimiser, not method {method!r}")
    if min_group_rate is not None or hint is not None or focus is not None:
        raise ValueError("min_group_rate, hint and focus are not supported with an executor")
    # Imported here: importing slotalloc loads no executor machinery.
    from slotalloc.distributed import solve_distributed

    return solve_distributed(
        instance,
        executor=config.name,
        address=config.address,
        workers=config.workers,
        time_limit=time_limit,
        seed=seed,
        deterministic=deterministic,
        callback=callback,
        compiled=compiled,
    )


def _executor_config(
    executor: ExecutorConfig | ExecutorName | None, address: str | None, workers: int | None
) -> ExecutorConfig | None:
    """The executor asked for, from the configuration or the deprecated keywords."""
    if isinstance(executor, ExecutorConfig):
        if address is not None or workers is not None:
            raise ValueError("address and workers go in the ExecutorConfig")
        return executor
    if executor is None:
        if address is not None or workers is not None:
            raise ValueError("address and workers need an executor")
        return None
    warnings.warn(
        "solve(executor=<name>, address=..., workers=...) is deprecated: pass "
        "executor=ExecutorConfig(<name>, address=..., workers=...)",
        DeprecationWarning,
        stacklevel=3,
    )
    # Checked by the coordinator, as for a configuration.
    return ExecutorConfig(executor, address, workers)
