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
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slotalloc._typing import BoolArray, IntArray
from slotalloc.compile import Compiled
from slotalloc.solver.formulation import INF, Formulation, LinearModel, RowBlock
from slotalloc.solver.mip import MipProcess, violated_rows
from slotalloc.solver.search.cpsat_run import CpRun, run_cpsat
from slotalloc.solver.search.neighbourhood import Restrictor, SessionGraph, free_variables

#: What one step charges a deterministic budget at least. CP-SAT reports 0 for a
#: sub-model presolve empties, and a budget that is never spent never ends (a
#: tiny model under both fairness rules looped forever).
MIN_STEP_DTIME = 1e-3

__all__ = ["FloorBank", "LnsBudget", "LnsOutcome", "large_neighbourhood_search"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LnsBudget:
    """Either a wall-clock deadline (``time.perf_counter()`` value) or a deterministic budget."""

    deadline: float | None = None
    dtime: float | None = None
    step_seconds: float = 0.3
    step_dtime: float = 0.3


@dataclass(frozen=True)
class FloorBank:
    """A few children above tight floors, priced, so that a neighbourhood may bank them.

    Row k is ``sum_j coef[k][j] * v[vars[k][j]] >= rhs[k]`` (a floor over the
    session counts). With every floor met exactly, a neighbourhood grown
    around a few sessions can never give up a place of a short group, so a
    place moved between two far sites is never found. Here each
    neighbourhood maximises the score plus ``price[k]`` per unit of row k's
    slack, up to ``cap[k]`` units: it may serve a short group's child more
    than the floor asks, at less than its price, and a later one may spend
    it. The cap bounds what the banked children can cost the score.
    """

    vars: tuple[IntArray, ...]
    coef: tuple[IntArray, ...]
    rhs: IntArray
    price: IntArray
    cap: IntArray

    def slack(self, values: IntArray) -> IntArray:
        """Each row's slack at ``values``."""
        return np.array(
            [int(c @ values[v]) for v, c in zip(self.vars, self.coef, strict=True)], dtype=np.int64
        ) - np.asarray(self.rhs, dtype=np.int64)

    def value(self, values: IntArray) -> int:
        """The banked slack's worth at ``values``."""
        return int(self.price @ np.clip(self.slack(values), 0, self.cap))

    def extend(
        self, sub: LinearModel, idx: IntArray, values: IntArray
    ) -> tuple[LinearModel, IntArray]:
        """``sub`` (the variables ``idx`` freed) with one bank variable per row, and its hint."""
        K = self.rhs.shape[0]
        n = idx.shape[0]
        var, coef, ptr = [], [], [0]
        hi = np.zeros(K, dtype=np.int64)
        for k in range(K):
            v, c = self.vars[k], self.coef[k]
            pos = np.minimum(np.searchsorted(idx, v), max(n - 1, 0))
            inside = (idx[pos] == v) if n else np.zeros(v.shape[0], dtype=np.bool_)
            # b_k - sum of the freed terms <= the fixed terms - rhs_k: b_k <= slack_k.
            hi[k] = int(c[~inside] @ values[v[~inside]]) - int(self.rhs[k])
            var.append(np.concatenate([[n + k], pos[inside]]))
            coef.append(np.concatenate([[1], -c[inside]]))
            ptr.append(ptr[-1] + var[-1].shape[0])
        block = RowBlock(
            "floor_bank",
            np.asarray(ptr, dtype=np.int64),
            np.concatenate(var).astype(np.int64),
            np.concatenate(coef).astype(np.int64),
            np.full(K, -INF, dtype=np.int64),
            hi,
        )
        out = LinearModel(
            lb=np.concatenate([sub.lb, np.zeros(K, dtype=np.int64)]),
            ub=np.concatenate([sub.ub, self.cap.astype(np.int64)]),
            obj=np.concatenate([sub.obj, self.price.astype(np.int64)]),
            offset=sub.offset,
            blocks=[*sub.blocks, block],
        )
        hint = np.concatenate([values[idx], np.clip(self.slack(values), 0, self.cap)])
        return out, hint


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
    start_arcs: int = 600,
    target: npt.ArrayLike | None = None,
    lanes: int = 2,
    focus: npt.ArrayLike | None = None,
    on_improve: Callable[[IntArray, int], None] | None = None,
    stop: threading.Event | None = None,
    mip_window: int = 0,
    mip_window_seconds: float = 3.0,
    cpsat_extra: dict[str, object] | None = None,
    bank: FloorBank | None = None,
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
    target
        Fractional arc values (an LP point): sessions where the incumbent earns
        less than the target are seeded first.
    lanes
        Neighbourhoods solved side by side (threads; CP-SAT releases the GIL).
        They are disjoint, so their gains add up. With a deterministic budget
        the lanes go in lock step, so results do not depend on thread timing;
        with a deadline each lane takes its next neighbourhood as soon as its
        own is merged (:meth:`_Search.run_async`).
    focus
        Sessions seeded first, in order (the rest follow the usual order).
    on_improve
        Called with the new values and score after every improvement.
    stop
        Ends the search at the next step once set (e.g. when a MIP solved
        beside it has proven the optimum).
    mip_window
        With a wall-clock budget and two lanes or more: one lane instead hands a
        large neighbourhood of about this many arcs to HiGHS
        (:class:`~slotalloc.solver.mip.MipProcess`, at most ``mip_window_seconds`` each) while the
        other lanes go on with CP-SAT around it; 0 turns it off. The window's
        sessions and children are reserved, so every neighbourhood solved
        meanwhile is disjoint from it and the gains add up.
    cpsat_extra
        CP-SAT parameters set on every neighbourhood's solve (e.g.
        ``cp_model_probing_level``), beside :func:`run_cpsat`'s own.
    bank
        Floors whose slack, up to a cap, each neighbourhood prices
        (:class:`FloorBank`; wall-clock budgets with two lanes or more only).
        The incumbent is then the best on the score plus the bank, and the
        outcome the best score seen.
    """
    search = _Search(
        f,
        values,
        objective,
        budget,
        seed=seed,
        start_arcs=start_arcs,
        target=target,
        lanes=lanes,
        focus=focus,
        on_improve=on_improve,
        mip_window=mip_window,
        mip_window_seconds=mip_window_seconds,
        cpsat_extra=cpsat_extra,
        bank=bank,
    )
    if search.active.shape[0]:
        search.run(stop)
    if search.top_values is None:
        values, score = search.cur, search.best
    else:
        values, score = search.top_values, search.top
    log.debug("LNS: %d steps, %d improving, score %d", search.steps, search.improving, score)
    return LnsOutcome(values, score, search.steps, search.improving, search.spent)


class _Search:
    """State of one search: the incumbent, the neighbourhood size, the counters."""

    def __init__(
        self,
        f: Formulation,
        values: IntArray,
        objective: int,
        budget: LnsBudget,
        *,
        seed: int,
        start_arcs: int,
        target: npt.ArrayLike | None,
        lanes: int,
        focus: npt.ArrayLike | None,
        on_improve: Callable[[IntArray, int], None] | None,
        mip_window: int,
        mip_window_seconds: float,
        cpsat_extra: dict[str, object] | None = None,
        bank: FloorBank | None = None,
    ) -> None:
        c = f.c
        self.f = f
        self.c = c
        self.budget = budget
        self.target = target
        self.lanes = lanes
        self.on_improve = on_improve
        self.mip_window = mip_window
        self.mip_window_seconds = mip_window_seconds
        self.extra = cpsat_extra
        self.rng = np.random.default_rng(seed)
        self.graph = SessionGraph(c)
        self.restrict = Restrictor(f)
        self.cur = values.copy()
        self.best = objective
        self.active = np.flatnonzero(np.bincount(c.arc_sess, minlength=c.n_sessions) > 0)
        # Popped from the end: the first focus session goes first.
        self.seeds: list[int] = (
            [] if focus is None else np.asarray(focus, dtype=np.int64)[::-1].tolist()
        )
        self.size = float(start_arcs)
        self.steps = self.improving = 0
        self.spent = 0.0
        # Rows over every session (group fairness) couple neighbourhoods that are
        # otherwise disjoint.
        self.coupled = f.fair_vars.shape[0] > 0
        self.use_window = mip_window > 0 and budget.deadline is not None and lanes >= 2
        self.cp_lanes = lanes - 1 if self.use_window else lanes
        self.window: _Window | None = None
        # Only the unlocked lanes price the bank (the lock-step path never does).
        async_run = self.cp_lanes > 1 and budget.deadline is not None and not self.use_window
        self.bank = bank if async_run and self.coupled else None
        # The best score seen and its values (with a bank, the incumbent may score less).
        self.top = objective
        self.top_values: IntArray | None = None if self.bank is None else values.copy()

    def run(self, stop: threading.Event | None) -> None:
        """Steps until the budget is spent, ``stop`` is set or nothing can move."""
        if self.cp_lanes > 1 and self.budget.deadline is not None and not self.use_window:
            self.run_async(stop)
            return
        empty_rounds = 0
        pool = ThreadPoolExecutor(max_workers=self.cp_lanes) if self.cp_lanes > 1 else None
        try:
            while stop is None or not stop.is_set():
                limits = self.step_limits()
                if limits is None:
                    break
                left, step_time, step_dtime = limits
                # Disjoint neighbourhoods (no shared session, child or request) can be
                # solved side by side and their gains added.
                if self.window is not None and self.window.thread.done.is_set():
                    self.take_window()
                if self.use_window and self.window is None and left > 1.5:
                    self.start_window(left)
                hoods = self.neighbourhoods()
                if not hoods:
                    # Every seed of a full pass gave an empty neighbourhood: nothing can
                    # move, and a deterministic budget would never be spent.
                    empty_rounds += 1
                    if empty_rounds * 4 * self.lanes >= self.active.shape[0] + 4 * self.lanes:
                        break
                    continue
                empty_rounds = 0
                self.step(hoods, step_time, step_dtime, pool)
            if self.window is not None:
                # Its time limit ends before the budget does: wait for its answer, but
                # no longer than the budget (an overrunning child is ended).
                assert self.budget.deadline is not None
                timeout = max(0.0, self.budget.deadline - time.perf_counter())
                self.take_window(timeout, final=True)
        finally:
            if self.window is not None:
                self.window.thread.stop()
                self.window.thread.result()
            if pool is not None:
                pool.shutdown(wait=True)

    def run_async(self, stop: threading.Event | None) -> None:
        """Lanes that do not wait for each other (wall-clock budgets only).

        In lock step a lane whose neighbourhood is solved early waits for the
        other's, cut at the step limit (measured on a city under rule 8: 2.3 of
        4.7 s per lane idle). Here a lane takes a new neighbourhood, disjoint
        from those still being solved, as soon as its own is merged; a result
        is merged against the incumbent as it is then, which differs from the
        one it was built on only outside its neighbourhood. Timing decides the
        order, so this is never used with a deterministic budget.
        """
        c = self.c
        running: dict[Future[CpRun], tuple[_Job, BoolArray, BoolArray, int]] = {}
        misses = 0
        with ThreadPoolExecutor(max_workers=self.cp_lanes) as pool:
            while True:
                limits = None if stop is not None and stop.is_set() else self.step_limits()
                while limits is not None and len(running) < self.cp_lanes:
                    busy_s = np.zeros(c.n_sessions, dtype=np.bool_)
                    busy_c = np.zeros(c.n_children, dtype=np.bool_)
                    for _job, bs, bc, _base in running.values():
                        busy_s |= bs
                        busy_c |= bc
                    reqs, _ = self.pick(busy_s, busy_c, bool(running), 4)
                    if reqs is None:
                        misses += 1
                        break
                    misses = 0
                    mine_s = np.zeros(c.n_sessions, dtype=np.bool_)
                    mine_c = np.zeros(c.n_children, dtype=np.bool_)
                    _mark(c, reqs, mine_s, mine_c)
                    sub, idx = self.restrict(free_variables(self.f, reqs), self.cur)
                    hint = self.cur[idx].copy()
                    if self.bank is not None:
                        sub, hint = self.bank.extend(sub, idx, self.cur)
                    seed = int(self.rng.integers(1 << 30))
                    job = _Job(sub, idx, hint, seed, limits[1], None, self.extra)
                    running[pool.submit(_solve, job)] = (job, mine_s, mine_c, self.best)
                if not running:
                    # Nothing left to run: the budget is spent, or a full pass of
                    # seeds gave nothing that can move.
                    if limits is None or misses * 4 >= self.active.shape[0] + 4:
                        return
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for fut in done:
                    job, _bs, _bc, base = running.pop(fut)
                    self.merge(job, fut.result(), base)

    def pick(
        self, busy_s: BoolArray, busy_c: BoolArray, others: bool, tries: int
    ) -> tuple[IntArray | None, int]:
        """A neighbourhood clear of the busy sessions and children, and the seeds tried.

        At most ``tries`` seeds; with ``others`` (neighbourhoods already taken),
        the requests that touch a busy session or child are left out.
        """
        c = self.c
        for k in range(tries):
            sd = self.next_seed()
            if busy_s[sd]:
                continue
            grown = self.graph.grow(sd, int(self.size), self.rng)
            reqs = _free_requests(c, grown)
            if others and reqs.shape[0]:
                reqs = reqs[~_touches(c, reqs, busy_s, busy_c)]
            if reqs.shape[0]:
                return reqs, k + 1
        return None, tries

    def merge(self, job: _Job, run: CpRun, base: int) -> None:
        """Take one lane's result; ``base`` is the score its sub-model was built at."""
        self.steps += 1
        self.spent += max(run.deterministic_time, MIN_STEP_DTIME)
        if self.bank is not None:
            self.merge_banked(job, run, base)
        elif run.values is not None and run.objective is not None and run.objective > base:
            old = self.cur[job.idx].copy()
            self.cur[job.idx] = run.values
            # Only the rows over every session (group fairness) can join this
            # neighbourhood to another merged since it was built.
            if self.coupled and violated_rows(self.f, self.cur) > 0:
                self.cur[job.idx] = old
            else:
                self.best += run.objective - base
                self.improving += 1
                if self.on_improve is not None:
                    self.on_improve(self.cur, self.best)
        step_time = job.max_time
        quick = step_time is None or run.wall_time < 0.5 * step_time
        grow = run.optimal and quick
        self.size = min(self.size * 1.2, 20000.0) if grow else max(self.size * 0.8, 100.0)

    def merge_banked(self, job: _Job, run: CpRun, base: int) -> None:
        """Take a priced result when the score plus the bank, over the whole model, gains."""
        bank = self.bank
        assert bank is not None
        if run.values is None or run.objective is None:
            return
        n = job.idx.shape[0]
        gain = run.objective - int(bank.price @ run.values[n:]) - base
        before = self.best + bank.value(self.cur)
        old = self.cur[job.idx].copy()
        self.cur[job.idx] = run.values[:n]
        if violated_rows(self.f, self.cur) > 0 or self.best + gain + bank.value(self.cur) <= before:
            self.cur[job.idx] = old
            return
        self.best += gain
        self.improving += 1
        if self.best > self.top:
            self.top = self.best
            self.top_values = self.cur.copy()
            if self.on_improve is not None:
                self.on_improve(self.cur, self.best)

    def step_limits(self) -> tuple[float, float | None, float | None] | None:
        """What is left and one step's wall or deterministic limit; None once spent."""
        budget = self.budget
        if budget.deadline is not None:
            left = budget.deadline - time.perf_counter()
            if left <= 0.05:
                return None
            return left, min(budget.step_seconds, left), None
        assert budget.dtime is not None
        left = budget.dtime - self.spent
        if left <= 1e-3:
            return None
        return left, None, min(budget.step_dtime, left)

    def next_seed(self) -> int:
        if not self.seeds:
            self.seeds = _seed_order(self.c, self.cur, self.target, self.active, self.rng)
        return self.seeds.pop()

    def start_window(self, left: float) -> None:
        self.window = _Window.start(
            self.f,
            self.restrict,
            self.graph,
            self.cur,
            self.best,
            self.next_seed(),
            self.mip_window,
            self.rng,
            # HiGHS may overrun its limit by a little: keep a margin.
            min(self.mip_window_seconds, left - 0.5),
        )

    def take_window(self, timeout: float | None = None, *, final: bool = False) -> None:
        """Merge the finished window's answer (``final``: the last, waited for)."""
        assert self.window is not None
        gain = self.window.merge(self.f, self.cur, self.coupled, timeout=timeout)
        self.window = None
        self.best += gain
        self.improving += gain > 0
        if final:
            return
        self.steps += 1
        if gain > 0 and self.on_improve is not None:
            self.on_improve(self.cur, self.best)

    def neighbourhoods(self) -> list[IntArray]:
        """Up to one neighbourhood per CP-SAT lane, disjoint from each other and the window."""
        c = self.c
        hoods: list[IntArray] = []
        busy_s = np.zeros(c.n_sessions, dtype=np.bool_)
        busy_c = np.zeros(c.n_children, dtype=np.bool_)
        if self.window is not None:
            busy_s |= self.window.busy_s
            busy_c |= self.window.busy_c
        left = 4 * self.lanes
        while len(hoods) < self.cp_lanes and left > 0:
            others = bool(hoods) or self.window is not None
            reqs, used = self.pick(busy_s, busy_c, others, left)
            left -= used
            if reqs is None:
                break
            _mark(c, reqs, busy_s, busy_c)
            hoods.append(reqs)
        return hoods

    def step(
        self,
        hoods: list[IntArray],
        step_time: float | None,
        step_dtime: float | None,
        pool: ThreadPoolExecutor | None,
    ) -> None:
        """Solve the neighbourhoods, take their gains, resize the next ones."""
        jobs = []
        for reqs in hoods:
            sub, idx = self.restrict(free_variables(self.f, reqs), self.cur)
            seed = int(self.rng.integers(1 << 30))
            jobs.append(
                _Job(sub, idx, self.cur[idx].copy(), seed, step_time, step_dtime, self.extra)
            )
        runs = list(pool.map(_solve, jobs)) if pool is not None else [_solve(jobs[0])]
        base = self.best
        grow = True
        gains: list[tuple[int, int]] = []
        found: dict[int, IntArray] = {}
        for k, run in enumerate(runs):
            self.steps += 1
            self.spent += max(run.deterministic_time, MIN_STEP_DTIME)
            if run.values is not None and run.objective is not None and run.objective > base:
                gains.append((run.objective - base, k))
                found[k] = run.values
            quick = step_time is None or run.wall_time < 0.5 * step_time
            grow = grow and run.optimal and quick
        # Disjoint neighbourhoods add up, except through rows that couple every
        # session (the group-fairness rows): each sub-model met them with the
        # other fixed, so their union is checked, and the best one alone taken
        # when it breaks them.
        gains.sort(reverse=True)
        trial = self.cur.copy()
        for _, k in gains:
            trial[jobs[k].idx] = found[k]
        if len(gains) > 1 and self.coupled and violated_rows(self.f, trial) > 0:
            gains = gains[:1]
            trial = self.cur.copy()
            trial[jobs[gains[0][1]].idx] = found[gains[0][1]]
        if gains:
            self.cur[:] = trial
            self.best += sum(g for g, _ in gains)
            self.improving += len(gains)
        if self.best > base and self.on_improve is not None:
            self.on_improve(self.cur, self.best)
        # Solved to a proof well within the step: try larger ones; else smaller.
        self.size = min(self.size * 1.2, 20000.0) if grow else max(self.size * 0.8, 100.0)


@dataclass
class _Window:
    """A large neighbourhood being solved by HiGHS in the background."""

    thread: MipProcess
    idx: IntArray
    base: int
    busy_s: BoolArray
    busy_c: BoolArray

    @classmethod
    def start(
        cls,
        f: Formulation,
        restrict: Restrictor,
        graph: SessionGraph,
        cur: IntArray,
        best: int,
        seed: int,
        arcs: int,
        rng: np.random.Generator,
        seconds: float,
    ) -> _Window | None:
        c = f.c
        reqs = _free_requests(c, graph.grow(seed, arcs, rng))
        if reqs.shape[0] == 0:
            return None
        busy_s = np.zeros(c.n_sessions, dtype=np.bool_)
        busy_c = np.zeros(c.n_children, dtype=np.bool_)
        _mark(c, reqs, busy_s, busy_c)
        sub, idx = restrict(free_variables(f, reqs), cur)
        thread = MipProcess(sub, time_limit=seconds, hint=cur[idx].copy())
        return cls(thread, idx, best, busy_s, busy_c)

    def merge(
        self, f: Formulation, cur: IntArray, coupled: bool, timeout: float | None = None
    ) -> int:
        """Take the window's result into ``cur`` when it is better; the gain (0 if none).

        With rows coupling every session (``coupled``), the search may have
        moved meanwhile in a way that breaks them together with the window's
        answer: then the answer is checked against the whole model first.
        """
        run = self.thread.result(timeout)
        if run.values is None or run.objective is None or run.objective <= self.base:
            return 0
        old = cur[self.idx].copy()
        cur[self.idx] = run.values
        if coupled and violated_rows(f, cur) > 0:
            cur[self.idx] = old
            return 0
        return run.objective - self.base


@dataclass(frozen=True)
class _Job:
    sub: LinearModel
    idx: IntArray
    hint: IntArray
    seed: int
    max_time: float | None
    max_dtime: float | None
    extra: dict[str, object] | None = None


def _solve(job: _Job) -> CpRun:
    return run_cpsat(
        job.sub,
        hint=job.hint,
        max_time=job.max_time,
        max_dtime=job.max_dtime,
        seed=job.seed,
        extra=job.extra,
    )


def _free_requests(c: Compiled, reqs: IntArray) -> IntArray:
    """The requests a neighbourhood may free: never locked ones.

    Locked requests never move: a neighbourhood of them alone frees nothing.
    """
    return reqs[~c.locked[reqs]]


def _footprint(c: Compiled, reqs: IntArray) -> tuple[IntArray, IntArray]:
    """Sessions the requests' arcs reach and the requests' children."""
    lo, hi = c.req_arc_ptr[reqs], c.req_arc_ptr[reqs + 1]
    arcs = np.concatenate([np.arange(a, b) for a, b in zip(lo.tolist(), hi.tolist(), strict=True)])
    clo, chi = c.req_child_ptr[reqs], c.req_child_ptr[reqs + 1]
    kids = np.concatenate(
        [c.req_child[a:b] for a, b in zip(clo.tolist(), chi.tolist(), strict=True)]
    )
    return c.arc_sess[arcs.astype(np.int64)], kids


def _mark(c: Compiled, reqs: IntArray, busy_s: BoolArray, busy_c: BoolArray) -> None:
    sess, kids = _footprint(c, reqs)
    busy_s[sess] = True
    busy_c[kids] = True


def _touches(c: Compiled, reqs: IntArray, busy_s: BoolArray, busy_c: BoolArray) -> BoolArray:
    """Per request: whether it reaches a busy session or has a busy child."""
    n_arcs = c.req_arc_ptr[reqs + 1] - c.req_arc_ptr[reqs]
    n_kids = c.req_child_ptr[reqs + 1] - c.req_child_ptr[reqs]
    sess, kids = _footprint(c, reqs)
    owner_a = np.repeat(np.arange(reqs.shape[0]), n_arcs)
    owner_k = np.repeat(np.arange(reqs.shape[0]), n_kids)
    hit = np.zeros(reqs.shape[0], dtype=np.bool_)
    hit[owner_a[busy_s[sess]]] = True
    hit[owner_k[busy_c[kids]]] = True
    return hit


def _seed_order(
    c: Compiled,
    cur: IntArray,
    target: npt.ArrayLike | None,
    active: IntArray,
    rng: np.random.Generator,
) -> list[int]:
    """Seed sessions for the next pass, popped from the end: largest shortfall last."""
    perm = rng.permutation(active)
    if target is None:
        return perm.tolist()
    A = c.n_arcs
    t = np.asarray(target, dtype=np.float64)[:A]
    gain = (c.arc_coef + c.drop_cost[c.arc_req]).astype(np.float64)
    want = np.bincount(c.arc_sess, weights=t * gain, minlength=c.n_sessions)
    have = np.bincount(c.arc_sess, weights=cur[:A] * gain, minlength=c.n_sessions)
    short = (want - have)[perm]
    # Sessions doing better than the LP still get their turn, after the others.
    return perm[np.argsort(short, kind="stable")].tolist()
