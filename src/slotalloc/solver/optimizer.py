"""The batch optimiser: LP bound, LP rounding, then exact search beside a MIP.

Strategy (chosen by measurement on generated weekends, 2 cores; the figures are
in ``benchmarks/RESULTS.md``, the constants in :class:`OptimizerParams`):

1. Models up to ``mip_max_arcs`` (a district) go at once, whole, to HiGHS's
   branch-and-cut in a child process (:mod:`slotalloc.solver.mip`), which keeps
   the second core for the whole budget: on districts with bookings or
   caregiver cuts it proves the optimum, or comes within one objective step of
   it, where the search alone ended 1-2 % short. Its solution is checked row by
   row and its bound rounded down safely.
2. GLOP solves the LP relaxation, strengthened with the convex hull of each
   session's per-group staffing (:mod:`slotalloc.solver.rows.staffing_hull`).
   Its duals then price a Lagrangian bound whose per-session sub-problems are
   solved exactly (:mod:`slotalloc.solver.bounds.lagrangian`); the smallest
   bound of LP, Lagrangian, CP-SAT and HiGHS is reported, rounded down onto the
   objective's lattice (the gcd of the weights).
3. The LP point is rounded: each session takes the caregiver split the LP
   favours, arcs go in decreasing LP value, then a greedy fill
   (:mod:`slotalloc.solver.search.rounding`).
4. When some bookings cannot all stay (a caregiver cut), the bookings alone are
   arranged (the fewest drops, then moves) by one CP-SAT worker in a thread
   beside GLOP (:mod:`slotalloc.solver.search.bookings`), and the rounding
   fills the unbooked requests around them. With every booking valid nothing
   is spent on this.
5. Small models (a few thousand arcs) go whole to CP-SAT, hinted, with one
   worker and ``linearization_level=2``. Larger ones are improved by
   large-neighbourhood search over linked sessions
   (:mod:`slotalloc.solver.search.lns`); on models too large for step 1, one of
   its two lanes hands district-sized windows to HiGHS while the other solves
   small neighbourhoods with CP-SAT around them.
   When step 4 ran, the search's answer then has its dropped bookings
   re-seated by chains of moves through bookings far apart, which no
   neighbourhood holds whole (:mod:`slotalloc.solver.search.reseat`; a
   wall-clock search ends early by ``reseat_seconds_per_drop`` per drop of
   its start for it), as is the start while the arrangement still runs.
6. The Lagrangian multipliers are improved last, aimed at the final score,
   when the bound does not yet prove it.

With ``deterministic=True`` every limit is a CP-SAT deterministic-time budget
and nothing reads the clock, so equal inputs give equal results; HiGHS, which
has no such budget, is not used then. The bookings' arrangement then gets at
most ``rebalance_share`` of the budget in deterministic units, and what it
spends comes off the search's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from slotalloc._typing import FloatArray, IntArray
from slotalloc.compile import Compiled
from slotalloc.result import score_of_arcs
from slotalloc.solver.bounds.lagrangian import Lagrangian, improve_multipliers
from slotalloc.solver.bounds.lp import LpRelaxation, solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.mip import MipProcess
from slotalloc.solver.params import DEFAULT_TIME_LIMIT, PARAMS, OptimizerParams
from slotalloc.solver.rows.group_fairness import GroupFairness
from slotalloc.solver.rows.staffing_hull import add_staffing_hull, corner_caps
from slotalloc.solver.search.bookings import (
    ArrangingThread,
    drops,
    keeps_bookings,
)
from slotalloc.solver.search.cpsat_run import run_cpsat
from slotalloc.solver.search.fair_repair import repair_lp_rounding
from slotalloc.solver.search.lns import LnsBudget, large_neighbourhood_search
from slotalloc.solver.search.reseat import reseat_and_fill
from slotalloc.solver.search.rounding import round_and_repair

__all__ = ["DEFAULT_TIME_LIMIT", "PARAMS", "OptimizerParams", "Optimum", "optimize"]

log = logging.getLogger(__name__)

#: Kept for callers that read the threshold directly.
WHOLE_MODEL_ARCS = PARAMS.whole_model_arcs

#: ``on_progress`` of :func:`optimize`: called with (score, bound).
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Optimum:
    """The optimiser's answer: chosen arcs, their score, a safe bound, and a proof flag.

    ``stats`` holds the phases' figures (free-form), in the order they ran.
    """

    arcs: IntArray
    score: int
    bound: int | None
    optimal: bool
    stats: dict[str, object] = field(default_factory=dict)


def optimize(
    c: Compiled,
    *,
    time_limit: float | None = None,
    seed: int = 0,
    deterministic: bool = False,
    on_progress: ProgressFn | None = None,
    started: float | None = None,
    fairness: GroupFairness | None = None,
    hint: IntArray | None = None,
    focus: IntArray | None = None,
    params: OptimizerParams = PARAMS,
) -> Optimum:
    """Best assignment found within the budget, for consistent locked bookings.

    Parameters
    ----------
    c
        The compiled instance; its locked bookings must not conflict.
    time_limit
        Wall seconds from ``started`` (or, when deterministic, CP-SAT
        deterministic time units); :data:`DEFAULT_TIME_LIMIT` when None.
    seed
        Seeds the neighbourhood choice and CP-SAT.
    deterministic
        Reproducible run: the budget is deterministic time, not wall time.
    on_progress
        Called with (score, bound) on each better incumbent or bound.
    started
        ``time.perf_counter()`` at the start of the caller's solve, so that the
        caller's own work (compiling) counts against the wall budget.
    fairness
        The opt-in group-fairness rule, or None. It is one more row block of
        the shared formulation, so the LP, CP-SAT and the LNS sub-models (which
        fold the fixed arcs into the row's bound) all keep it; every rounding
        candidate is repaired to meet it.
    hint
        Arcs of a known assignment (need not be valid here): placed first, in
        order, where they fit, to give one more starting candidate; so the
        result scores at least as well as the hint whenever the hint is valid.
    focus
        Sessions the large-neighbourhood search seeds first (e.g. the ones a
        capacity change touched).
    params
        Tuning constants (:class:`OptimizerParams`).

    Returns
    -------
    Optimum
        The chosen arcs, their score, the best proven bound (None when the
        bounds disagree with a valid score, which a correct LP never gives)
        and whether the two meet.

    Raises
    ------
    ValueError
        When ``fairness`` is given and no starting assignment meeting it is
        found (only possible when the locked bookings alone are unfair).
    """
    t0 = time.perf_counter() if started is None else started
    limit = DEFAULT_TIME_LIMIT if time_limit is None else max(0.0, float(time_limit))
    deadline = t0 + limit * (1 - params.reserve)
    stats: dict[str, object] = {}
    f = _build(c, fairness, stats)
    run = _Run(c, f, params, deterministic, limit, deadline, seed, focus, stats)
    # HiGHS gets the second core from the start: the LP and the rounding below
    # run on one.
    mip, greedy = _start_mip(run, fairness)
    first = greedy if mip is not None else round_and_repair(c, None, fairness=fairness)
    # The bookings alone are arranged on the other core while GLOP runs.
    arranging = _start_arranging(run, first, fairness)
    try:
        return _optimize(run, mip, first, arranging, hint, fairness, on_progress)
    finally:
        if arranging is not None:
            arranging.stop()  # a no-op once its result was taken


def _optimize(
    run: _Run,
    mip: MipProcess | None,
    first: IntArray | None,
    arranging: ArrangingThread | None,
    hint: IntArray | None,
    fairness: GroupFairness | None,
    on_progress: ProgressFn | None,
) -> Optimum:
    """The phases after the starts: bounds, rounding, then CP-SAT or the search."""
    c, f, params = run.c, run.f, run.params
    bounds = _bounds(run, fairness)
    candidates = _rounding(run, bounds, first, hint, fairness)
    scores = [score_of_arcs(c, a) for a in candidates]
    best_i = int(np.argmax(scores))
    arcs, score = candidates[best_i], scores[best_i]
    run.stats["rounding_score"] = score
    bound = _checked_bound(run.f, bounds.bound, score, "LP bound")
    if on_progress is not None:
        on_progress(score, bound)
    if bound is not None and score == bound:
        if mip is not None:
            mip.stop()
        return Optimum(arcs, score, bound, True, run.stats)

    progress = _Progress(on_progress, score, bound)
    if c.n_arcs <= params.whole_model_arcs:
        values, score, bound = _whole_model(
            run, f.values_of_arcs(arcs), score, bound, progress, mip
        )
        progress.bound = bound
    else:
        values, score = _search(run, bounds.lp, arcs, score, arranging, progress, mip)
    arcs = np.flatnonzero(values[: c.n_arcs]).astype(np.int64)
    score = score_of_arcs(c, arcs)
    if mip is not None:
        arcs, score, bound = _collect_mip(run, mip, run.deadline, arcs, score, bound, progress)
    if bounds.lag is not None and bound is not None and bound > score:  # no proof yet
        bound = _multipliers(run, bounds, score, bound)
    bound = _checked_bound(run.f, bound, score, "bound")
    optimal = bound is not None and bound == score
    if on_progress is not None and bound is not None:
        on_progress(score, bound)
    return Optimum(arcs, score, bound, optimal, run.stats)


@dataclass
class _Run:
    """What every phase reads: the model, the budget, the figures recorded so far."""

    c: Compiled
    f: Formulation
    params: OptimizerParams
    deterministic: bool
    #: The caller's budget (wall seconds or deterministic units).
    limit: float
    #: When the search must end (wall clock); the multiplier search's share comes
    #: off it when that search will run.
    deadline: float
    seed: int
    focus: IntArray | None
    stats: dict[str, object]
    #: Whether the search's answer goes to the chains of moves (the greedy start
    #: drops a booking that could move, no fairness rule).
    reseat: bool = False

    def left(self) -> float:
        return self.deadline - time.perf_counter()


class _Progress:
    """The best score reported so far, and the bound the reports carry."""

    def __init__(self, on_progress: ProgressFn | None, score: int, bound: int | None) -> None:
        self._on_progress = on_progress
        self.best = score
        self.bound = bound

    def improved(self, new_score: int, new_bound: int | None = None) -> None:
        """Report a better score, or a tighter bound, with the best bound known."""
        tighter = new_bound is not None and (self.bound is None or new_bound < self.bound)
        if tighter:
            self.bound = new_bound
        better = new_score > self.best
        if better:
            self.best = new_score
        if (better or tighter) and self._on_progress is not None:
            self._on_progress(self.best, self.bound)


def _build(c: Compiled, fairness: GroupFairness | None, stats: dict[str, object]) -> Formulation:
    t = time.perf_counter()
    f = build_formulation(c, fairness)
    stats["model_build_seconds"] = round(time.perf_counter() - t, 4)
    stats["arcs"] = c.n_arcs
    stats["rows"] = f.n_rows
    return f


def _start_mip(
    run: _Run, fairness: GroupFairness | None
) -> tuple[MipProcess | None, IntArray | None]:
    """HiGHS on the whole model, for wall-clock runs of district size; with its greedy start."""
    c = run.c
    if run.deterministic or not 0 < c.n_arcs <= run.params.mip_max_arcs:
        return None, None
    # The greedy start (milliseconds on a district) as its first incumbent.
    greedy = round_and_repair(c, None, fairness=fairness)
    hint = None if greedy is None else run.f.values_of_arcs(greedy)
    return MipProcess(run.f, time_limit=run.left(), hint=hint), greedy


@dataclass(frozen=True)
class _Bounds:
    """The bounding phase's outcome, and what the multiplier search needs later."""

    lp: LpRelaxation
    #: The LP's model (with the staffing hull), for the rounding's corner caps.
    f_lp: Formulation
    bound: int | None
    lag: Lagrangian | None = None
    u0: FloatArray | None = None
    steps: int = 0


def _bounds(run: _Run, fairness: GroupFairness | None) -> _Bounds:
    """The LP bound, then the Lagrangian one priced by its duals."""
    c, stats, params = run.c, run.stats, run.params
    t = time.perf_counter()
    f_lp = build_formulation(c, fairness)
    add_staffing_hull(f_lp)
    lp = solve_lp(
        f_lp,
        time_limit=None if run.deterministic else max(0.05, 0.5 * run.left()),
        glop_parameters=params.glop_parameters,
    )
    stats["lp_seconds"] = round(time.perf_counter() - t, 4)
    stats["lp_bound"] = lp.bound
    if not lp.optimal or fairness is not None:
        return _Bounds(lp, f_lp, lp.bound)
    t = time.perf_counter()
    try:
        lag = Lagrangian(f_lp)
    except ValueError as exc:  # sub-problems too large: the LP bound stands
        log.info("no Lagrangian bound: %s", exc)
        return _Bounds(lp, f_lp, lp.bound)
    u0 = lag.multipliers(lp.duals)
    # Timed as the search's steps will run (with the arc sets), for its budget.
    lag_bound = lag.safe_bound(lag.evaluate(u0, choose=True)[0], u0)
    stats["lagrangian_seconds"] = round(time.perf_counter() - t, 4)
    stats["lagrangian_bound"] = lag_bound
    bound = lp.bound
    if lag_bound is not None and (bound is None or lag_bound < bound):
        bound = lag_bound
    # The multiplier search runs last, aimed at the final score: keep its share,
    # unless too few steps would fit in it (then the search keeps the time).
    # Deterministic runs count steps by the instance's size, never the clock.
    if run.deterministic:
        per_step = params.seconds_per_session * max(1, c.n_sessions)
    else:
        per_step = 1.1 * (time.perf_counter() - t)
    steps = min(params.bound_steps_max, int(params.bound_share * run.limit / max(per_step, 1e-9)))
    if steps < params.bound_min_steps:
        return _Bounds(lp, f_lp, bound)
    if not run.deterministic:
        run.deadline -= params.bound_share * run.limit
    return _Bounds(lp, f_lp, bound, lag, u0, steps)


def _rounding(
    run: _Run,
    bounds: _Bounds,
    greedy: IntArray | None,
    hint: IntArray | None,
    fairness: GroupFairness | None,
) -> list[IntArray]:
    """Valid starting assignments: ``greedy``, around the hint, and the LP point rounded.

    The greedy one comes first when it exists (None: its fairness repair failed).

    Raises
    ------
    ValueError
        When none meets the fairness rule.
    """
    c = run.c
    A = c.n_arcs
    lp = bounds.lp
    found = [greedy]
    if hint is not None:
        found.append(round_and_repair(c, None, start=hint, fairness=fairness))
    if lp.optimal:
        caps = corner_caps(bounds.f_lp, lp.values)
        found.append(round_and_repair(c, lp.values[:A], group_caps=caps, fairness=fairness))
        found.append(round_and_repair(c, lp.values[:A], fairness=fairness))
        if fairness is not None:
            # Removing placements cannot raise a floor: the LP point rounded
            # without the rows, then children of the short groups inserted
            # where the LP puts them (solver/search/fair_repair.py).
            found.append(
                repair_lp_rounding(c, lp.values[:A], fairness, run.params.floor_prefer_value)
            )
    candidates = [a for a in found if a is not None]
    if not candidates:
        raise ValueError("min_group_rate cannot be met together with the locked bookings")
    return candidates


def _checked_bound(f: Formulation, bound: int | None, score: int, what: str) -> int | None:
    """``bound`` rounded down onto the objective's lattice; None if below a valid score."""
    if bound is None:
        return None
    bound = f.lattice_floor(bound)
    if bound < score:  # cannot happen with correct bounds; stay safe
        log.warning("%s %d below a valid score %d; dropping it", what, bound, score)
        return None
    return bound


def _whole_model(
    run: _Run,
    values: IntArray,
    score: int,
    bound: int | None,
    progress: _Progress,
    mip: MipProcess | None,
) -> tuple[IntArray, int, int | None]:
    """CP-SAT on the whole model, hinted with the incumbent: values, score and bound."""
    det = run.deterministic
    cp = run_cpsat(
        run.f,
        hint=values,
        max_time=None if det else max(0.05, run.left()),
        max_dtime=run.limit if det else None,
        seed=run.seed,
        on_solution=None if det else progress.improved,
        stop=None if mip is None else mip.proven,
    )
    run.stats["cpsat_dtime"] = round(cp.deterministic_time, 3)
    if cp.values is not None and cp.objective is not None and cp.objective >= score:
        values, score = cp.values, cp.objective
    if cp.bound is not None:
        bound = cp.bound if bound is None else min(bound, cp.bound)
    run.stats["strategy"] = "whole-model"
    return values, score, bound


def _start_arranging(
    run: _Run, greedy: IntArray | None, fairness: GroupFairness | None
) -> ArrangingThread | None:
    """The bookings alone being arranged in a thread, when the search will want them.

    Only for models the search takes (above ``whole_model_arcs``), with no
    fairness rule, when the greedy start (which keeps every booking that
    fits) had to leave one out that could move: with every booking valid
    the arrangement would only take time from the full search. Then the
    search's answer also goes to the chains of moves (``run.reseat``), even
    when every request is booked (and the bookings alone, being the whole
    model, are not arranged apart). One CP-SAT worker gets at
    most ``rebalance_share`` of a deterministic budget, or
    ``rebalance_wall_share`` of the wall seconds left.
    """
    c, params = run.c, run.params
    if c.n_arcs <= params.whole_model_arcs or greedy is None:
        return None
    kept_all = keeps_bookings(c, greedy)
    run.stats["bookings_all_kept"] = kept_all
    booked = c.drop_cost > 0
    movable = booked & ~c.locked
    if fairness is not None or kept_all or not movable.any():
        return None
    run.reseat = True
    if booked.all():  # the bookings alone are the whole model
        return None
    det = run.deterministic
    return ArrangingThread(
        run.f,
        greedy,
        time_limit=None if det else params.rebalance_wall_share * max(0.0, run.left()),
        dtime=params.rebalance_share * run.limit if det else None,
        seed=run.seed,
    )


def _search(
    run: _Run,
    lp: LpRelaxation,
    arcs: IntArray,
    score: int,
    arranging: ArrangingThread | None,
    progress: _Progress,
    mip: MipProcess | None,
) -> tuple[IntArray, int]:
    """The starts around the arranged bookings, if any, then the neighbourhood search."""
    c, f, params, stats = run.c, run.f, run.params, run.stats
    A = c.n_arcs
    budget = LnsBudget(dtime=run.limit) if run.deterministic else LnsBudget(deadline=run.deadline)
    starts: list[IntArray] = []
    if run.reseat and (run.deterministic or arranging is None or not arranging.done()):
        # The main thread would only wait for the arrangement meanwhile.
        starts.append(_reseated_start(run, arcs, arranging))
    if arranging is not None:
        around, spent = _around_bookings(run, lp, arranging)
        starts += around
        if run.deterministic:
            budget = LnsBudget(dtime=max(0.0, run.limit - spent))
    for start in starts:
        start_score = score_of_arcs(c, start)
        if start_score > score:
            arcs, score = start, start_score
            progress.improved(score)
    if run.reseat and not run.deterministic:
        # The search's end leaves the chains of moves their time.
        keep = min(params.reseat_share * run.limit, params.reseat_seconds_per_drop * drops(c, arcs))
        budget = LnsBudget(deadline=run.deadline - keep)
    values = f.values_of_arcs(arcs)
    out = large_neighbourhood_search(
        f,
        values,
        score,
        budget,
        seed=run.seed,
        target=lp.values[:A] if lp.optimal else None,
        focus=run.focus,
        on_improve=lambda _v, s: progress.improved(s),
        lanes=1 if mip is not None else 2,
        stop=None if mip is None else mip.proven,
        mip_window=params.mip_window_arcs
        if mip is None and c.n_arcs <= params.mip_window_max_arcs
        else 0,
        mip_window_seconds=params.mip_window_seconds,
    )
    stats["strategy"] = "lns"
    stats["lns_steps"] = out.steps
    stats["lns_improving_steps"] = out.improving_steps
    if not run.reseat:
        return out.values, out.objective
    return _reseated(run, out.values, out.objective, progress)


def _reseated_start(run: _Run, arcs: IntArray, arranging: ArrangingThread | None) -> IntArray:
    """The start with its dropped bookings re-seated, within the arrangement's time.

    On a fully booked city CP-SAT may find no better arrangement than its
    hint and run to its limit (b1: the main thread waited 2.8 s of 10);
    meanwhile the chains of moves seat some of the start's drops, stopping
    when it ends (wall-clock runs).
    """
    t = time.perf_counter()
    deadline: float | None = None  # deterministic runs: the check cap alone
    if not run.deterministic:
        deadline = t + run.params.reseat_share * run.limit
        if arranging is not None:
            deadline = arranging.ends_at
    out, seated = reseat_and_fill(
        run.c,
        arcs,
        max_checks=run.params.reseat_max_checks,
        deadline=deadline,
        stop=None if arranging is None or run.deterministic else arranging.done,
    )
    run.stats["reseat_start_seated"] = seated
    run.stats["reseat_start_seconds"] = round(time.perf_counter() - t, 3)
    return out


def _reseated(run: _Run, values: IntArray, score: int, progress: _Progress) -> tuple[IntArray, int]:
    """The search's answer with its dropped bookings re-seated by chains of moves, if better.

    The neighbourhoods, grown around a few linked sessions, rarely hold a
    chain of moves through bookings far apart; the chains
    (:mod:`slotalloc.solver.search.reseat`) follow them, and the unbooked
    requests an eviction left out are then offered their sessions again.
    """
    c = run.c
    t = time.perf_counter()
    filled, seated = reseat_and_fill(
        c,
        np.flatnonzero(values[: c.n_arcs]).astype(np.int64),
        max_checks=run.params.reseat_max_checks,
        deadline=None if run.deterministic else run.deadline,
    )
    run.stats["reseat_seated"] = seated
    run.stats["reseat_seconds"] = round(time.perf_counter() - t, 3)
    new_score = score_of_arcs(c, filled)
    if seated == 0 or new_score <= score:
        return values, score
    progress.improved(new_score)
    return run.f.values_of_arcs(filled), new_score


def _around_bookings(
    run: _Run, lp: LpRelaxation, arranging: ArrangingThread
) -> tuple[list[IntArray], float]:
    """Starts filled around the arranged bookings, and the deterministic time it took.

    A drop costs as much as a hundred children served, and undoing one takes a
    chain of moves through other bookings. The bookings alone (the unbooked
    requests left out) make a small model that one CP-SAT worker usually
    solves exactly in under a second on a city: the fewest drops and moves, as
    the start around which the unbooked requests are then filled in, greedily
    and in the LP's order.
    """
    c = run.c
    t = time.perf_counter()
    kept, spent = arranging.result()
    run.stats["bookings_wait_seconds"] = round(time.perf_counter() - t, 4)
    run.stats["bookings_dtime"] = round(spent, 3)
    if kept is None:
        return [], spent
    run.stats["bookings_score"] = score_of_arcs(c, kept)
    starts = [round_and_repair(c, None, start=kept)]
    if lp.optimal:
        starts.append(round_and_repair(c, lp.values[: c.n_arcs], start=kept))
    out = [s for s in starts if s is not None]
    assert len(out) == len(starts)  # no fairness rule here
    return out, spent


def _collect_mip(
    run: _Run,
    mip: MipProcess,
    mip_end: float,
    arcs: IntArray,
    score: int,
    bound: int | None,
    progress: _Progress,
) -> tuple[IntArray, int, int | None]:
    """HiGHS's answer and bound, taken where they beat the search's."""
    c = run.c
    if bound is not None and run.f.lattice_floor(bound) <= score:
        mip.stop()  # already proven: its answer cannot help
    # Its time limit ends with the budget; a child that overruns it is ended.
    mrun = mip.result(timeout=max(0.0, mip_end - time.perf_counter()) + 0.5)
    run.stats["mip_score"] = mrun.objective
    run.stats["mip_bound"] = mrun.bound
    if mrun.values is not None and mrun.objective is not None and mrun.objective > score:
        arcs = np.flatnonzero(mrun.values[: c.n_arcs]).astype(np.int64)
        score = score_of_arcs(c, arcs)
        progress.improved(score)
    if mrun.bound is not None:
        bound = mrun.bound if bound is None else min(bound, mrun.bound)
    return arcs, score, bound


def _multipliers(run: _Run, bounds: _Bounds, score: int, bound: int) -> int:
    """The Lagrangian bound after a multiplier search aimed at ``score``."""
    assert bounds.lag is not None and bounds.u0 is not None
    params = run.params
    t = time.perf_counter()
    value, best_u, done = improve_multipliers(
        bounds.lag,
        bounds.u0,
        float(score),
        steps=bounds.steps if run.deterministic else params.bound_steps_max,
        deadline=None if run.deterministic else run.deadline + params.bound_share * run.limit,
    )
    improved_bound = bounds.lag.safe_bound(value, best_u)
    run.stats["multiplier_steps"] = done
    run.stats["multiplier_seconds"] = round(time.perf_counter() - t, 4)
    run.stats["multiplier_bound"] = improved_bound
    if improved_bound is not None and improved_bound < bound:
        return improved_bound
    return bound
