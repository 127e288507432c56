"""Where the parts run: in this process, a local process pool, or a Ray cluster.

Every executor runs the same task function, :func:`run_task`, on a
:class:`PartTask` (plain data: the part's instance document and the solve
arguments) and returns a :class:`PartAnswer`. Solver models are built where
the task runs: CP-SAT models do not pickle, and plain data crosses any boundary.

Results come back as they finish (``wait(..., FIRST_COMPLETED)`` for the
pool, ``ray.wait`` for Ray), each tagged with its task id, so the caller can
report progress and merge in a fixed order afterwards (results therefore do
not depend on which worker finished first).

Ray is imported only inside :class:`RayExecutor`; install the ``ray`` extra
(``pip install 'slotalloc[ray]'``) to use it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Protocol

__all__ = [
    "EXECUTORS",
    "Executor",
    "InProcessExecutor",
    "PartAnswer",
    "PartTask",
    "ProcessExecutor",
    "RayExecutor",
    "make_executor",
    "run_task",
]

log = logging.getLogger(__name__)

EXECUTORS = ("inprocess", "process", "ray")

#: ``(request id, session id)``: an assignment as plain data.
Pair = tuple[str, str]


@dataclass(frozen=True)
class PartTask:
    """One part (or a bound task) to solve where an executor puts it.

    Attributes
    ----------
    instance
        The part's FORMAT §1 instance document (JSON-able).
    time_limit
        As :func:`slotalloc.solve`'s.
    seed
        As :func:`slotalloc.solve`'s.
    deterministic
        As :func:`slotalloc.solve`'s.
    hint
        Assignments to start from, or None.
    """

    instance: dict[str, Any]
    time_limit: float
    seed: int
    deterministic: bool
    hint: tuple[Pair, ...] | None = None


@dataclass(frozen=True)
class PartAnswer:
    """What a task sends back: the part's result as plain data.

    Attributes
    ----------
    status
        The result's status value (``"optimal"``, ``"feasible"``, ``"infeasible"``).
    score
        The part's score, or None when infeasible.
    bound
        The part's proven bound, or None.
    assignments
        The part's assignments.
    seconds
        Wall seconds the task took, validation included.
    pid
        The process that ran it.
    lp_seconds
        Wall seconds of the part's LP relaxation, when the optimiser ran one.
    """

    status: str
    score: int | None
    bound: int | None
    assignments: tuple[Pair, ...]
    seconds: float
    pid: int
    lp_seconds: float | None = None


def run_task(task: PartTask) -> PartAnswer:
    """Solve one part: validate its document, solve it in this process.

    Raises
    ------
    pydantic.ValidationError
        If the document is not a valid instance (a bug in the decomposition).
    """
    # Imported here so that a worker pays for the solver only when it runs a task.
    from slotalloc.models import Assignment, Instance
    from slotalloc.solver.entry import solve_single

    t0 = time.perf_counter()
    instance = Instance.model_validate(task.instance, strict=True)
    hint = task.hint
    res = solve_single(
        instance,
        time_limit=task.time_limit,
        seed=task.seed,
        deterministic=task.deterministic,
        hint=None if hint is None else [Assignment(request=r, session=s) for r, s in hint],
    )
    lp_seconds = res.stats.figures.get("lp_seconds")
    return PartAnswer(
        status=str(res.status),
        score=res.score,
        bound=res.bound,
        assignments=tuple((a.request, a.session) for a in res.assignments),
        seconds=round(time.perf_counter() - t0, 3),
        pid=os.getpid(),
        lp_seconds=lp_seconds if isinstance(lp_seconds, float) else None,
    )


class Executor(Protocol):
    """What the coordinator needs from an executor."""

    name: str
    workers: int

    def submit(self, task_id: int, task: PartTask, cpus: int = 1) -> None:
        """Queue a task."""

    def results(self, task_ids: list[int]) -> Iterator[tuple[int, PartAnswer]]:
        """Yield ``(task_id, result)`` for these tasks as they finish."""

    def close(self) -> None:
        """Release workers (leaves an external Ray cluster running)."""


class InProcessExecutor:
    """Runs each task in the calling process, lazily, in submission order."""

    name = "inprocess"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = 1
        self._queue: dict[int, PartTask] = {}

    def submit(self, task_id: int, task: PartTask, cpus: int = 1) -> None:
        self._queue[task_id] = task

    def results(self, task_ids: list[int]) -> Iterator[tuple[int, PartAnswer]]:
        for t in sorted(task_ids):
            yield t, run_task(self._queue.pop(t))

    def close(self) -> None:
        self._queue.clear()


class ProcessExecutor:
    """A local :class:`~concurrent.futures.ProcessPoolExecutor` (forkserver or spawn).

    Not ``fork``: the parent may hold solver threads, and a forked child of a
    threaded process can deadlock. A task whose worker dies is resubmitted to a
    fresh pool, up to ``max_retries`` times.
    """

    name = "process"

    def __init__(self, workers: int | None = None, max_retries: int = 2) -> None:
        self.workers = max(1, workers or (os.cpu_count() or 1))
        self.max_retries = max_retries
        methods = multiprocessing.get_all_start_methods()
        self._ctx = multiprocessing.get_context(
            "forkserver" if "forkserver" in methods else "spawn"
        )
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx)
        self._tasks: dict[int, PartTask] = {}
        self._futures: dict[int, Future[PartAnswer]] = {}
        self._tries: dict[int, int] = {}

    def submit(self, task_id: int, task: PartTask, cpus: int = 1) -> None:
        self._tasks[task_id] = task
        self._tries[task_id] = 0
        self._futures[task_id] = self._pool.submit(run_task, task)

    def _restart(self, pending: list[int]) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=self._ctx)
        for t in pending:
            self._futures[t] = self._pool.submit(run_task, self._tasks[t])

    def results(self, task_ids: list[int]) -> Iterator[tuple[int, PartAnswer]]:
        pending = set(task_ids)
        while pending:
            by_future = {self._futures[t]: t for t in pending}
            done, _ = wait(list(by_future), return_when=FIRST_COMPLETED)
            broken: list[int] = []
            for fut in sorted(done, key=by_future.__getitem__):
                t = by_future[fut]
                try:
                    out = fut.result()
                except BrokenProcessPool:
                    broken.append(t)
                    continue
                pending.discard(t)
                del self._futures[t], self._tasks[t]
                yield t, out
            if broken:
                # The pool is unusable once a worker dies: every unfinished task
                # on it must go again, but only the ones that saw the crash count it.
                for t in broken:
                    self._tries[t] += 1
                    if self._tries[t] > self.max_retries:
                        raise RuntimeError(f"task {t} failed {self._tries[t]} times")
                    log.warning("worker died under task %d; retrying", t)
                self._restart(sorted(pending))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Tasks on Ray: remote functions with ``num_cpus`` and ``max_retries``.

    Connects to ``address`` (``"auto"`` or ``ray://...``) or starts a local Ray
    with ``workers`` CPUs when none is running. A Ray this executor started is
    shut down on :meth:`close`; one it joined is left alone.
    """

    name = "ray"

    def __init__(
        self, workers: int | None = None, address: str | None = None, max_retries: int = 3
    ) -> None:
        import ray

        self._ray = ray
        self._owns = False
        if not ray.is_initialized():
            if address is not None:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(
                    num_cpus=workers or os.cpu_count() or 1,
                    include_dashboard=False,
                    log_to_driver=False,
                )
                self._owns = True
        total = int(ray.cluster_resources().get("CPU", 1))
        self.workers = min(workers, total) if workers else total
        self.max_retries = max_retries
        self._remote = ray.remote(run_task)
        self._refs: dict[int, Any] = {}

    def submit(self, task_id: int, task: PartTask, cpus: int = 1) -> None:
        opts = self._remote.options(
            num_cpus=cpus, max_retries=self.max_retries, retry_exceptions=False
        )
        self._refs[task_id] = opts.remote(task)

    def results(self, task_ids: list[int]) -> Iterator[tuple[int, PartAnswer]]:
        by_ref = {self._refs[t]: t for t in task_ids}
        pending = list(by_ref)
        while pending:
            done, pending = self._ray.wait(pending, num_returns=1)
            for ref in done:
                t = by_ref[ref]
                del self._refs[t]
                yield t, self._ray.get(ref)

    def close(self) -> None:
        for ref in self._refs.values():
            self._ray.cancel(ref, force=True)
        self._refs.clear()
        if self._owns:
            self._ray.shutdown()


def make_executor(
    executor: str, *, workers: int | None = None, address: str | None = None
) -> InProcessExecutor | ProcessExecutor | RayExecutor:
    """Build the named executor.

    Raises
    ------
    ValueError
        For an unknown executor name, or an ``address`` given to a local one.
    ImportError
        For ``"ray"`` when Ray is not installed.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; expected one of {EXECUTORS}")
    if address is not None and executor != "ray":
        raise ValueError("address is only meaningful with executor='ray'")
    if executor == "inprocess":
        return InProcessExecutor(workers)
    if executor == "process":
        return ProcessExecutor(workers)
    try:
        return RayExecutor(workers, address)
    except ImportError as e:
        raise ImportError("executor='ray' needs Ray: pip install 'slotalloc[ray]'") from e
