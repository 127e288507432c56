"""Solve a large instance as parts, on this machine or on a Ray cluster.

:func:`solve_distributed` decomposes the instance (:mod:`.decompose`), runs
each part through :func:`slotalloc.solve.solve` where an executor puts it
(:mod:`.executors`), and merges the parts into one valid whole-instance
:class:`~slotalloc.result.Result`:

1. independent components (sharing no session and no child) are solved
   apart, small ones packed together; their scores and bounds add up;
2. a component larger than ``part_requests`` is cut by site position into
   parts; a *bound task* solves its whole LP relaxation (the optimiser's LP,
   run through ``solve(..., deterministic=True, time_limit=0.01)``, which also
   returns an LP-rounded assignment used as a fallback) in parallel with the
   parts, because the parts' own bounds do not add up;
3. after the first cut, each large component is cut again along turned axes
   and every new part is re-optimised around the merged incumbent (borders
   of the first cut now lie inside parts); a part's answer replaces the
   incumbent only where it scores better, so the merged score never drops;
4. the merged assignment is re-checked against every rule on the whole
   instance and repaired (conflicting assignments dropped, lowest value
   first) before the result is built.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled, compile_instance
from slotalloc.distributed.decompose import (
    Decomposition,
    InstanceTables,
    border_parts,
    decompose,
    repair,
)
from slotalloc.distributed.executors import EXECUTORS, make_executor
from slotalloc.models import Instance, Status
from slotalloc.result import Result, result_from_arcs, score_of_arcs
from slotalloc.solve import Progress, solve
from slotalloc.verify import locked_conflicts

__all__ = ["EXECUTORS", "solve_distributed"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]

#: Seconds (or deterministic units) when the caller gives no limit.
DEFAULT_TIME_LIMIT = 10.0
#: Share of the budget for the first cut when a component is cut (rest: border passes).
FIRST_CUT_SHARE = 0.45
#: Shortest wall seconds per part worth a border pass (measured on ten-city: at ~4 s
#: under load a pass found nothing, at ~7 s it gained ~0.1% of the score).
PASS_PART_SECONDS = 10.0
_GOLDEN = (math.sqrt(5) - 1) / 2
#: Measured: the whole LP of 626k arcs (ten-city) takes ~46 s on one core.
_LP_SECONDS_PER_ARC = 46.0 / 626_545


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
    _fault_marker: str | None = None,
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
        Wall seconds for the whole call (default 10); with
        ``deterministic=True``, deterministic-time units shared among the
        parts in proportion to their size.
    seed
        Seeds each part's search and the border pass's cutting axes.
    deterministic
        Equal status, score, bound and assignments on every run with equal
        arguments, whatever the executor and the number of workers.
    callback
        Called in the calling thread with a :class:`~slotalloc.solve.Progress`
        (merged score so far, bound when known) each time a part finishes.
    compiled
        The compiled instance, when the caller already has it.
    part_requests
        Target requests per part (components are packed up to it, larger
        ones cut into parts of about this size).
    border_passes
        Re-optimisation passes across the first cut's borders, each part
        hinted with the incumbent. Default: one when deterministic, else as
        many as the time limit allows (at most 8).
    _fault_marker
        Test only: the first part's task kills its own worker on its first
        attempt (creating this file), to exercise retries.

    Returns
    -------
    Result
        As :func:`slotalloc.solve.solve`: ``INFEASIBLE`` exactly when the
        locked bookings alone break a rule; otherwise a valid assignment of
        the whole instance, its score and a proven bound. ``stats`` holds
        ``executor``, ``workers``, ``parts``, ``components``,
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
        return solve(instance, time_limit=limit, seed=seed, deterministic=deterministic, compiled=c)

    run = _Run(instance, c, t0, limit, seed, deterministic, callback)
    tables = InstanceTables(instance)
    dec = decompose(instance, c, part_requests=part_requests, seed=seed, tables=tables)
    run.stats["decompose_seconds"] = round(time.perf_counter() - t0, 3)
    ex = make_executor(executor, workers=workers, address=address)
    try:
        run.stats["executor"] = ex.name
        run.stats["workers"] = ex.workers
        run.first_cut(ex, dec, tables, _fault_marker)
        run.collect_bounds(ex, dec)
        if dec.giant:
            passes = border_passes if border_passes is not None else (1 if deterministic else 8)
            for k in range(max(0, passes)):
                if not deterministic and run.left() < 2.0:
                    break
                run.border_pass(ex, dec, tables, k, passes)
    finally:
        ex.close()
    return run.result(dec)


class _Run:
    """State of one distributed solve: incumbent, bounds, budget, stats."""

    def __init__(
        self,
        instance: Instance,
        c: Compiled,
        t0: float,
        limit: float,
        seed: int,
        deterministic: bool,
        callback: Callable[[Progress], None] | None,
    ) -> None:
        self.instance = instance
        self.c = c
        self.t0 = t0
        self.limit = limit
        self.seed = seed
        self.deterministic = deterministic
        self.callback = callback
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
        self.stats: dict[str, Any] = {"solver": "distributed"}
        self.part_seconds: list[float] = []
        self.next_task = 0

    # -------------------------------------------------------------- budget

    def left(self) -> float:
        return self.t0 + self.limit * 0.97 - time.perf_counter()

    def part_limits(self, sizes: list[int], share: float, slots: int, lp_arcs: int) -> list[float]:
        """Each part's limit: a share of the budget, in proportion to its arcs."""
        total = max(1, sum(sizes))
        if self.deterministic:
            return [max(0.05, self.limit * share * s / total) for s in sizes]
        wall = max(0.5, self.left() * share)
        # Parts run `slots` at a time; the bound task takes a slot for its LP.
        slot_seconds = max(wall, wall * slots - _LP_SECONDS_PER_ARC * lp_arcs)
        return [min(wall, max(0.5, slot_seconds * s / total)) for s in sizes]

    # -------------------------------------------------------------- merging

    def arcs(self, current: IntArray | None = None) -> IntArray:
        cur = self.current if current is None else current
        r = np.flatnonzero(cur >= 0)
        key = r * max(1, self.c.n_sessions) + cur[r]
        pos = np.searchsorted(self.key_sorted, key)
        return self.key_order[pos].astype(np.int64)

    def pairs_to_current(self, pairs: list[list[str]], into: IntArray) -> None:
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

    # -------------------------------------------------------------- phases

    def run_parts(
        self, ex: Any, jobs: list[tuple[int, dict[str, Any]]]
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        """Submit ``(index, payload)`` jobs; yield ``(index, answer)`` as answers come."""
        ids: dict[int, int] = {}
        for index, pl in jobs:
            ids[self.next_task] = index
            ex.submit(self.next_task, pl)
            self.next_task += 1
        for tid, out in ex.results(list(ids)):
            self.part_seconds.append(out["seconds"])
            yield ids[tid], out

    def payload(self, doc: dict[str, Any], tl: float, seed: int) -> dict[str, Any]:
        return {
            "instance": doc,
            "time_limit": tl,
            "seed": seed,
            "deterministic": self.deterministic,
        }

    def first_cut(
        self, ex: Any, dec: Decomposition, tables: InstanceTables, fault: str | None
    ) -> None:
        t = time.perf_counter()
        c = self.c
        # Bound tasks first, so their long LPs start at once.
        lp_arcs = 0
        for comp, (sess, reqs) in sorted(dec.giant.items()):
            doc = tables.document(c, sess, reqs, name=f"{tables.head['name']}/component{comp}")
            tid = self.next_task
            self.next_task += 1
            ex.submit(
                tid, {"instance": doc, "time_limit": 0.01, "seed": self.seed, "deterministic": True}
            )
            self.bound_tasks[tid] = comp
            lp_arcs += int(np.diff(c.req_arc_ptr)[reqs].sum())
        sizes = [int(np.diff(c.req_arc_ptr)[p.requests].sum()) for p in dec.parts]
        share = FIRST_CUT_SHARE if dec.giant else 1.0
        limits = self.part_limits(sizes, share, ex.workers, lp_arcs)
        jobs: list[tuple[int, dict[str, Any]]] = []
        for p, tl in zip(dec.parts, limits, strict=True):
            if not p.document["sessions"]:
                continue
            pl = self.payload(p.document, tl, self.seed + p.index)
            if fault is not None and not jobs:
                pl["fault"] = {"marker": fault}
            jobs.append((p.index, pl))
        answers: dict[int, dict[str, Any]] = {}
        for index, out in self.run_parts(ex, jobs):
            answers[index] = out
            self.pairs_to_current(out["assignments"], self.current)
            if dec.parts[index].independent:
                self.part_bounds[index] = out["bound"]
            self.progress()
        for p in dec.parts:  # parts without sessions place nothing
            if p.independent and p.index not in answers:
                self.part_bounds[p.index] = (
                    -int(c.drop_cost[p.requests].sum()) if not p.document["sessions"] else None
                )
        for r, s in dec.pinned.items():
            self.current[r] = s
        self.merge_check()
        self.stats["first_cut_seconds"] = round(time.perf_counter() - t, 3)
        self.stats["first_cut_score"] = score_of_arcs(c, self.arcs())

    def merge_check(self) -> None:
        arcs, dropped = repair(self.c, self.arcs())
        if dropped:
            log.info("merge repair dropped %d assignments", dropped)
        self.stats["repair_dropped"] = self.stats.get("repair_dropped", 0) + dropped
        self.current[:] = -1
        self.current[self.c.arc_req[arcs]] = self.c.arc_sess[arcs]

    def border_pass(
        self, ex: Any, dec: Decomposition, tables: InstanceTables, k: int, passes: int
    ) -> None:
        t = time.perf_counter()
        c = self.c
        rng = np.random.default_rng([self.seed, k])
        # Turned by about 45 degrees (seeded jitter), so new borders cross the old ones.
        # Golden-angle turns from 45 degrees (seeded jitter): every pass cuts
        # across the borders of the first cut and of the passes before it.
        angle = math.pi / 4 + float(rng.uniform(-0.1, 0.1)) + k * math.pi * _GOLDEN
        todo: list[tuple[IntArray, dict[str, Any]]] = []
        for comp, members in sorted(dec.giant.items()):
            # One part more on odd passes, so cut positions shift, not only turn.
            n = sum(1 for p in dec.parts if p.component == comp) + k % 2
            for _, free, doc in border_parts(
                self.instance,
                c,
                tables,
                members,
                n,
                self.current,
                angle=angle,
                name=f"{tables.head['name']}/border{k}-{comp}-",
            ):
                if doc["sessions"] and free.shape[0]:
                    todo.append((free, doc))
        sizes = [len(doc["requests"]) for _, doc in todo]
        share = (1.0 - FIRST_CUT_SHARE) / passes
        if not self.deterministic:
            # Passes of at least ~PASS_PART_SECONDS per part: shorter ones spend
            # their time on the parts' LPs and find little.
            per_pass = max(
                1.0,
                min(passes - k, self.left() * ex.workers / (PASS_PART_SECONDS * len(todo))),
            )
            share = 1.0 / per_pass
        limits = self.part_limits(sizes, share, ex.workers, 0)
        sid = self.c.session_ids
        rid = self.c.request_ids
        jobs: list[tuple[int, dict[str, Any]]] = []
        for i, ((_, doc), tl) in enumerate(zip(todo, limits, strict=True)):
            pl = self.payload(doc, tl, self.seed + 1000 * (k + 1) + i)
            # Start from the incumbent: with a valid hint a part never scores worse.
            mine = [self.rid[r["id"]] for r in doc["requests"]]
            pl["hint"] = [[rid[r], sid[self.current[r]]] for r in mine if self.current[r] >= 0]
            jobs.append((i, pl))
        answers = dict(self.run_parts(ex, jobs))
        accepted = 0
        gain = 0
        for i in sorted(answers):  # fixed order: the result does not depend on timing
            free, _ = todo[i]
            answer = np.full(c.n_requests, -1, dtype=np.int64)
            self.pairs_to_current(answers[i]["assignments"], answer)
            new = self.current.copy()
            new[free] = answer[free]  # fixed requests in the part stay as they are
            before = self.contribution(free, self.current)
            after = self.contribution(free, new)
            if after > before:
                self.current[free] = new[free]
                accepted += 1
                gain += after - before
        self.merge_check()
        self.progress()
        self.stats.setdefault("border_passes", []).append(
            {
                "parts": len(todo),
                "accepted": accepted,
                "gain": gain,
                "seconds": round(time.perf_counter() - t, 3),
            }
        )

    def collect_bounds(self, ex: Any, dec: Decomposition) -> None:
        t = time.perf_counter()
        if not self.bound_tasks:
            return
        c = self.c
        for tid, out in ex.results(sorted(self.bound_tasks)):
            comp = self.bound_tasks[tid]
            self.giant_bounds[comp] = out["bound"]
            self.stats.setdefault("bound_tasks", []).append(
                {
                    "component": comp,
                    "seconds": out["seconds"],
                    "bound": out["bound"],
                    "lp_seconds": out["stats"].get("lp_seconds"),
                }
            )
            # The bound task's own (LP-rounded) answer, where it beats the parts.
            alt = np.full(c.n_requests, -1, dtype=np.int64)
            self.pairs_to_current(out["assignments"], alt)
            comp_reqs = dec.giant[comp][1]
            if self.contribution(comp_reqs, alt) > self.contribution(comp_reqs, self.current):
                log.info("component %d: the bound task's rounding beats the parts", comp)
                self.current[comp_reqs] = alt[comp_reqs]
        self.merge_check()
        self.stats["bound_wait_seconds"] = round(time.perf_counter() - t, 3)

    def result(self, dec: Decomposition) -> Result:
        c = self.c
        arcs = self.arcs()
        bound = self.bound()
        score = score_of_arcs(c, arcs)
        if bound is not None and bound < score:  # cannot happen with valid part bounds
            log.warning("merged bound %d below a valid score %d; dropping it", bound, score)
            bound = None
        self.stats["parts"] = len(dec.parts)
        self.stats["components"] = dec.n_components
        self.stats["cut_components"] = len(dec.giant)
        self.stats["pinned"] = len(dec.pinned)
        self.stats["part_seconds"] = self.part_seconds
        self.stats["bound_source"] = (
            "whole-component LP" if dec.giant else "sum of independent parts"
        )
        self.stats["solve_seconds"] = round(time.perf_counter() - self.t0, 3)
        status = Status.OPTIMAL if bound is not None and bound == score else Status.FEASIBLE
        if self.callback is not None:
            self.callback(Progress(score, bound, time.perf_counter() - self.t0))
        return result_from_arcs(
            c, arcs, status=status, bound=bound, stats=self.stats, instance_name=self.instance.name
        )
