"""The coordinator of a solve by parts: budget, tasks, merging, border passes.

The steps are the package's (:mod:`slotalloc.distributed`); each part and bound
task runs :func:`slotalloc.solver.entry.solve_single` where the executor puts it.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.distributed.decompose import (
    Decomposition,
    InstanceTables,
    border_parts,
    decompose,
    repair,
)
from slotalloc.distributed.executors import (
    EXECUTORS,
    Executor,
    PartAnswer,
    PartTask,
    make_executor,
)
from slotalloc.models import Instance, Status
from slotalloc.result import Progress, Result, SolveStats, result_from_arcs, score_of_arcs
from slotalloc.solver.entry import solve_single
from slotalloc.solver.params import DEFAULT_TIME_LIMIT, PARAMS
from slotalloc.verify import locked_conflicts

__all__ = ["DistributedParams", "solve_distributed"]

log = logging.getLogger(__name__)

_GOLDEN = (math.sqrt(5) - 1) / 2
#: A bound task's deterministic budget: so small that the task's work is its LP
#: (which deterministic runs do not limit) and the LP point's rounding.
_BOUND_TASK_LIMIT = 0.01


@dataclass(frozen=True)
class DistributedParams:
    """Tuning constants of the solve by parts."""

    #: Share of the budget for the first cut when a component is cut (the rest:
    #: border passes).
    first_cut_share: float = 0.45
    #: Shortest wall seconds per part worth a border pass (measured on ten-city: at
    #: ~4 s under load a pass found nothing, at ~7 s it gained ~0.1% of the score).
    pass_part_seconds: float = 10.0
    #: Most border passes of a wall-clock run (deterministic runs make one).
    max_border_passes: int = 8
    #: Wall seconds left below which no border pass starts.
    min_pass_left: float = 2.0
    #: Share of the wall budget the parts may use; the rest builds the result.
    budget_use: float = 0.97


PARAMS_BY_PARTS = DistributedParams()


def solve_distributed(
    instance: Instance,
    *,
    executor: str = "inprocess",
    address: str | None = None,
    workers: int | None = None,
    time_limit: float | None = None,
    seed: int = 0,
    deterministic: bool = False,
    callback: Callable[[Progress], None] | None = None,
    compiled: Compiled | None = None,
    part_requests: int = 25_000,
    border_passes: int | None = None,
    params: DistributedParams = PARAMS_BY_PARTS,
) -> Result:
    """Allocate the instance's requests by solving parts of it on an executor.

    Parameters
    ----------
    instance
        A validated instance.
    executor
        ``"inprocess"`` (tasks one after another in this process),
        ``"process"`` (a local process pool) or ``"ray"``.
    address
        Ray cluster address (``"auto"``, ``"ray://host:10001"``); only with
        ``executor="ray"``. Without it, a running Ray is joined, or a local
        one with ``workers`` CPUs is started (and stopped afterwards).
    workers
        Tasks run at once (default: the machine's or cluster's CPUs).
    time_limit
        Wall seconds for the whole call, compiling included (default 10); with
        ``deterministic=True``, CP-SAT deterministic-time units (default 10)
        shared among the parts in proportion to their size.
    seed
        Seeds each part's search and the border pass's cutting axes.
    deterministic
        Equal status, score, bound and assignments on every run with equal
        arguments, whatever the executor and the number of workers.
    callback
        Called in the calling thread with a :class:`~slotalloc.result.Progress`
        (merged score so far, bound when known) each time a part finishes.
    compiled
        The compiled instance, when the caller already has it.
    part_requests
        Target requests per part (components are packed up to it, larger
        ones cut into parts of about this size).
    border_passes
        Re-optimisation passes across the first cut's borders, each part
        hinted with the incumbent. Default: one when deterministic, else as
        many as the time limit allows (at most
        :attr:`DistributedParams.max_border_passes`).
    params
        Tuning constants (:class:`DistributedParams`).

    Returns
    -------
    Result
        As :func:`slotalloc.solve`: ``INFEASIBLE`` exactly when the
        locked bookings alone break a rule; otherwise a valid assignment of
        the whole instance, its score and a proven bound. ``stats.figures``
        holds ``executor``, ``workers``, ``parts``, ``components``,
        ``part_seconds`` and the phases' times.

    Raises
    ------
    ValueError
        For an unknown executor, an ``address`` without Ray, or a
        non-positive ``part_requests``.
    ImportError
        For ``executor="ray"`` without Ray installed.
    """
    t0 = time.perf_counter()
    if executor not in EXECUTORS:
        raise ValueError(f"unknown executor {executor!r}; expected one of {EXECUTORS}")
    if address is not None and executor != "ray":
        raise ValueError("address is only meaningful with executor='ray'")
    if part_requests < 1:
        raise ValueError("part_requests must be >= 1")
    limit = DEFAULT_TIME_LIMIT if time_limit is None else max(0.0, float(time_limit))
    c = compiled if compiled is not None else compile_instance(instance)
    if locked_conflicts(instance):
        # Nothing to distribute: the whole-instance solve explains the conflict.
        return solve_single(
            instance, time_limit=limit, seed=seed, deterministic=deterministic, compiled=c
        )

    run = _Run(instance, c, t0, limit, seed, deterministic, callback, params)
    tables = InstanceTables(instance)
    dec = decompose(instance, c, part_requests=part_requests, seed=seed, tables=tables)
    run.figures["decompose_seconds"] = round(time.perf_counter() - t0, 3)
    ex = make_executor(executor, workers=workers, address=address)
    try:
        run.figures["executor"] = ex.name
        run.figures["workers"] = ex.workers
        run.first_cut(ex, dec, tables)
        run.collect_bounds(ex, dec)
        if dec.giant:
            default = 1 if deterministic else params.max_border_passes
            passes = border_passes if border_passes is not None else default
            for k in range(max(0, passes)):
                if not deterministic and run.left() < params.min_pass_left:
                    break
                run.border_pass(ex, dec, tables, k, passes)
    finally:
        ex.close()
    return run.result(dec)


class _Run:
    """State of one distributed solve: incumbent, bounds, budget, figures."""

    def __init__(
        self,
        instance: Instance,
        c: Compiled,
        t0: float,
        limit: float,
        seed: int,
        deterministic: bool,
        callback: Callable[[Progress], None] | None,
        params: DistributedParams,
    ) -> None:
        self.instance = instance
        self.c = c
        self.t0 = t0
        self.limit = limit
        self.seed = seed
        self.deterministic = deterministic
        self.callback = callback
        self.params = params
        self.current = np.full(c.n_requests, -1, dtype=np.int64)
        self.sid = {s: i for i, s in enumerate(c.session_ids)}
        self.rid = {r: i for i, r in enumerate(c.request_ids)}
        # arcs keyed by request * S + session, for mapping answers back to arcs
        key = c.arc_req * max(1, c.n_sessions) + c.arc_sess
        self.key_order = np.argsort(key, kind="stable")
        self.key_sorted = key[self.key_order]
        self.part_bounds: dict[int, int | None] = {}
        self.giant_bounds: dict[int, int | None] = {}
        self.bound_tasks: dict[int, int] = {}  # task id -> component
        #: The solve's own figures (SolveStats.figures), in the order recorded.
        self.figures: dict[str, Any] = {}
        self.part_seconds: list[float] = []
        self.next_task = 0

    # -------------------------------------------------------------- budget

    def left(self) -> float:
        return self.t0 + self.limit * self.params.budget_use - time.perf_counter()

    def part_limits(self, sizes: list[int], share: float, slots: int, lp_arcs: int) -> list[float]:
        """Each part's limit: a share of the budget, in proportion to its arcs."""
        total = max(1, sum(sizes))
        if self.deterministic:
            return [max(0.05, self.limit * share * s / total) for s in sizes]
        wall = max(0.5, self.left() * share)
        # Parts run `slots` at a time; the bound task takes a slot for its LP.
        slot_seconds = max(wall, wall * slots - PARAMS.lp_seconds_per_arc * lp_arcs)
        return [min(wall, max(0.5, slot_seconds * s / total)) for s in sizes]

    # -------------------------------------------------------------- merging

    def arcs(self, current: IntArray | None = None) -> IntArray:
        cur = self.current if current is None else current
        r = np.flatnonzero(cur >= 0)
        key = r * max(1, self.c.n_sessions) + cur[r]
        pos = np.searchsorted(self.key_sorted, key)
        return self.key_order[pos].astype(np.int64)

    def pairs_to_current(self, pairs: tuple[tuple[str, str], ...], into: IntArray) -> None:
        for rq, ss in pairs:
            s = self.sid.get(ss)
            if s is not None:  # placeholders have capacity 0, so they never come back
                into[self.rid[rq]] = s

    def contribution(self, reqs: IntArray, current: IntArray) -> int:
        """Score of these requests alone (the score is a sum over requests)."""
        cur = np.full(self.c.n_requests, -1, dtype=np.int64)
        cur[reqs] = current[reqs]
        part = score_of_arcs(self.c, self.arcs(cur))
        outside = np.ones(self.c.n_requests, dtype=np.bool_)
        outside[reqs] = False
        return part + int(self.c.drop_cost[outside].sum())

    def progress(self) -> None:
        if self.callback is None:
            return
        score = score_of_arcs(self.c, self.arcs())
        self.callback(Progress(score, self.bound(), time.perf_counter() - self.t0))

    def bound(self) -> int | None:
        vals = list(self.part_bounds.values()) + list(self.giant_bounds.values())
        if not vals or any(v is None for v in vals):
            return None
        has_arc = np.diff(self.c.req_arc_ptr) > 0
        # Requests with no candidate arc are in no part: their drops are certain.
        return sum(int(v) for v in vals if v is not None) - int(self.c.drop_cost[~has_arc].sum())

    def merge_check(self) -> None:
        arcs, dropped = repair(self.c, self.arcs())
        if dropped:
            log.info("merge repair dropped %d assignments", dropped)
        self.figures["repair_dropped"] = self.figures.get("repair_dropped", 0) + dropped
        self.current[:] = -1
        self.current[self.c.arc_req[arcs]] = self.c.arc_sess[arcs]

    # -------------------------------------------------------------- tasks

    def task(
        self, doc: dict[str, Any], tl: float, seed: int, hint: IntArray | None = None
    ) -> PartTask:
        """The task of one part; ``hint``: its requests to start from the incumbent."""
        pairs = None
        if hint is not None:
            sid, rid = self.c.session_ids, self.c.request_ids
            pairs = tuple((rid[r], sid[self.current[r]]) for r in hint if self.current[r] >= 0)
        return PartTask(doc, tl, seed, self.deterministic, pairs)

    def run_parts(
        self, ex: Executor, jobs: list[tuple[int, PartTask]]
    ) -> Iterator[tuple[int, PartAnswer]]:
        """Submit ``(index, task)`` jobs; yield ``(index, answer)`` as answers come."""
        ids: dict[int, int] = {}
        for index, task in jobs:
            ids[self.next_task] = index
            ex.submit(self.next_task, task)
            self.next_task += 1
        for tid, out in ex.results(list(ids)):
            self.part_seconds.append(out.seconds)
            yield ids[tid], out

    # -------------------------------------------------------------- phases

    def submit_bound_tasks(self, ex: Executor, dec: Decomposition, tables: InstanceTables) -> int:
        """One whole-LP task per cut component; the arcs their LPs hold."""
        c = self.c
        lp_arcs = 0
        for comp, (sess, reqs) in sorted(dec.giant.items()):
            doc = tables.document(c, sess, reqs, name=f"{tables.head['name']}/component{comp}")
            tid = self.next_task
            self.next_task += 1
            ex.submit(tid, PartTask(doc, _BOUND_TASK_LIMIT, self.seed, True))
            self.bound_tasks[tid] = comp
            lp_arcs += int(np.diff(c.req_arc_ptr)[reqs].sum())
        return lp_arcs

    def first_cut(self, ex: Executor, dec: Decomposition, tables: InstanceTables) -> None:
        t = time.perf_counter()
        c = self.c
        # Bound tasks first, so their long LPs start at once.
        lp_arcs = self.submit_bound_tasks(ex, dec, tables)
        sizes = [int(np.diff(c.req_arc_ptr)[p.requests].sum()) for p in dec.parts]
        share = self.params.first_cut_share if dec.giant else 1.0
        limits = self.part_limits(sizes, share, ex.workers, lp_arcs)
        jobs = [
            (p.index, self.task(p.document, tl, self.seed + p.index))
            for p, tl in zip(dec.parts, limits, strict=True)
            if p.document["sessions"]
        ]
        answered: set[int] = set()
        for index, out in self.run_parts(ex, jobs):
            answered.add(index)
            self.pairs_to_current(out.assignments, self.current)
            if dec.parts[index].independent:
                self.part_bounds[index] = out.bound
            self.progress()
        for p in dec.parts:  # parts without sessions place nothing
            if p.independent and p.index not in answered:
                self.part_bounds[p.index] = (
                    -int(c.drop_cost[p.requests].sum()) if not p.document["sessions"] else None
                )
        for r, s in dec.pinned.items():
            self.current[r] = s
        self.merge_check()
        self.figures["first_cut_seconds"] = round(time.perf_counter() - t, 3)
        self.figures["first_cut_score"] = score_of_arcs(c, self.arcs())

    def collect_bounds(self, ex: Executor, dec: Decomposition) -> None:
        t = time.perf_counter()
        if not self.bound_tasks:
            return
        c = self.c
        for tid, out in ex.results(sorted(self.bound_tasks)):
            comp = self.bound_tasks[tid]
            self.giant_bounds[comp] = out.bound
            self.figures.setdefault("bound_tasks", []).append(
                {
                    "component": comp,
                    "seconds": out.seconds,
                    "bound": out.bound,
                    "lp_seconds": out.lp_seconds,
                }
            )
            # The bound task's own (LP-rounded) answer, where it beats the parts.
            alt = np.full(c.n_requests, -1, dtype=np.int64)
            self.pairs_to_current(out.assignments, alt)
            comp_reqs = dec.giant[comp][1]
            if self.contribution(comp_reqs, alt) > self.contribution(comp_reqs, self.current):
                log.info("component %d: the bound task's rounding beats the parts", comp)
                self.current[comp_reqs] = alt[comp_reqs]
        self.merge_check()
        self.figures["bound_wait_seconds"] = round(time.perf_counter() - t, 3)

    def border_todo(
        self, dec: Decomposition, tables: InstanceTables, k: int
    ) -> list[tuple[IntArray, dict[str, Any]]]:
        """Pass ``k``'s parts: (requests it may change, instance document) each."""
        rng = np.random.default_rng([self.seed, k])
        # Golden-angle turns from 45 degrees (seeded jitter): every pass cuts
        # across the borders of the first cut and of the passes before it.
        angle = math.pi / 4 + float(rng.uniform(-0.1, 0.1)) + k * math.pi * _GOLDEN
        todo: list[tuple[IntArray, dict[str, Any]]] = []
        for comp, members in sorted(dec.giant.items()):
            # One part more on odd passes, so cut positions shift, not only turn.
            n = sum(1 for p in dec.parts if p.component == comp) + k % 2
            for _, free, doc in border_parts(
                self.instance,
                self.c,
                tables,
                members,
                n,
                self.current,
                angle=angle,
                name=f"{tables.head['name']}/border{k}-{comp}-",
            ):
                if doc["sessions"] and free.shape[0]:
                    todo.append((free, doc))
        return todo

    def border_pass(
        self, ex: Executor, dec: Decomposition, tables: InstanceTables, k: int, passes: int
    ) -> None:
        t = time.perf_counter()
        todo = self.border_todo(dec, tables, k)
        sizes = [len(doc["requests"]) for _, doc in todo]
        share = (1.0 - self.params.first_cut_share) / passes
        if not self.deterministic:
            # Passes of at least ~pass_part_seconds per part: shorter ones spend
            # their time on the parts' LPs and find little.
            per_part = self.params.pass_part_seconds * len(todo)
            per_pass = max(1.0, min(passes - k, self.left() * ex.workers / per_part))
            share = 1.0 / per_pass
        limits = self.part_limits(sizes, share, ex.workers, 0)
        jobs: list[tuple[int, PartTask]] = []
        for i, ((_, doc), tl) in enumerate(zip(todo, limits, strict=True)):
            mine = np.array([self.rid[r["id"]] for r in doc["requests"]], dtype=np.int64)
            # Start from the incumbent: with a valid hint a part never scores worse.
            jobs.append((i, self.task(doc, tl, self.seed + 1000 * (k + 1) + i, hint=mine)))
        answers = dict(self.run_parts(ex, jobs))
        accepted, gain = self.accept(todo, answers)
        self.merge_check()
        self.progress()
        self.figures.setdefault("border_passes", []).append(
            {
                "parts": len(todo),
                "accepted": accepted,
                "gain": gain,
                "seconds": round(time.perf_counter() - t, 3),
            }
        )

    def accept(
        self, todo: list[tuple[IntArray, dict[str, Any]]], answers: dict[int, PartAnswer]
    ) -> tuple[int, int]:
        """Take each part's answer where it scores better; (parts taken, score gained)."""
        accepted = gain = 0
        for i in sorted(answers):  # fixed order: the result does not depend on timing
            free, _ = todo[i]
            answer = np.full(self.c.n_requests, -1, dtype=np.int64)
            self.pairs_to_current(answers[i].assignments, answer)
            new = self.current.copy()
            new[free] = answer[free]  # fixed requests in the part stay as they are
            before = self.contribution(free, self.current)
            after = self.contribution(free, new)
            if after > before:
                self.current[free] = new[free]
                accepted += 1
                gain += after - before
        return accepted, gain

    def result(self, dec: Decomposition) -> Result:
        c = self.c
        arcs = self.arcs()
        bound = self.bound()
        score = score_of_arcs(c, arcs)
        if bound is not None and bound < score:  # cannot happen with valid part bounds
            log.warning("merged bound %d below a valid score %d; dropping it", bound, score)
            bound = None
        self.figures["parts"] = len(dec.parts)
        self.figures["components"] = dec.n_components
        self.figures["cut_components"] = len(dec.giant)
        self.figures["pinned"] = len(dec.pinned)
        self.figures["part_seconds"] = self.part_seconds
        self.figures["bound_source"] = (
            "whole-component LP" if dec.giant else "sum of independent parts"
        )
        stats = SolveStats(
            solver="distributed",
            figures=self.figures,
            solve_seconds=round(time.perf_counter() - self.t0, 3),
        )
        status = Status.OPTIMAL if bound is not None and bound == score else Status.FEASIBLE
        if self.callback is not None:
            self.callback(Progress(score, bound, time.perf_counter() - self.t0))
        return result_from_arcs(
            c, arcs, status=status, bound=bound, stats=stats, instance_name=self.instance.name
        )
