"""The batch optimiser: LP bound, LP rounding, then exact search beside a MIP.

Strategy (chosen by measurement on generated weekends, 2 cores; the figures are
in ``benchmarks/RESULTS.md``, the constants in :class:`OptimizerParams`):

1. Models up to ``mip_max_arcs`` (a district) go at once, whole, to HiGHS's
   branch-and-cut in a child process (:mod:`.mip`), which keeps the second core
   for the whole budget: on districts with bookings or caregiver cuts it proves
   the optimum, or comes within one objective step of it, where the search alone
   ended 1-2 % short. Its solution is checked row by row and its bound rounded
   down safely.
2. GLOP solves the LP relaxation, strengthened with the convex hull of each
   session's per-group staffing (:mod:`.rule_staffing_hull`). Its duals then
   price a Lagrangian bound whose per-session sub-problems are solved exactly
   (:mod:`.lagrangian`); the smallest bound of LP, Lagrangian, CP-SAT and HiGHS
   is reported, rounded down onto the objective's lattice (the gcd of the
   weights).
3. The LP point is rounded: each session takes the caregiver split the LP
   favours, arcs go in decreasing LP value, then a greedy fill
   (:mod:`.rounding`).
4. When some bookings cannot all stay (a caregiver cut), the bookings alone are
   arranged exactly by HiGHS (the fewest drops, then moves) and the rounding
   fills the unbooked requests around them. With every booking valid nothing
   is spent on this.
5. Small models (a few thousand arcs) go whole to CP-SAT, hinted, with one
   worker and ``linearization_level=2``. Larger ones are improved by
   large-neighbourhood search over linked sessions (:mod:`.lns`); on models too
   large for step 1, one of its two lanes hands district-sized windows to HiGHS
   while the other solves small neighbourhoods with CP-SAT around them.

With ``deterministic=True`` every limit is a CP-SAT deterministic-time budget
and nothing reads the clock, so equal inputs give equal results; HiGHS, which
has no such budget, is not used then, and the bookings are searched alone by
large-neighbourhood search for ``rebalance_share`` of the budget instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled
from slotalloc.result import score_of_arcs
from slotalloc.solver.bounds.lagrangian import Lagrangian, improve_multipliers
from slotalloc.solver.bounds.lp import solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.mip import MipProcess
from slotalloc.solver.rows.group_fairness import GroupFairness
from slotalloc.solver.rows.staffing_hull import add_staffing_hull, corner_caps
from slotalloc.solver.search.cpsat_run import run_cpsat
from slotalloc.solver.search.lns import LnsBudget, large_neighbourhood_search
from slotalloc.solver.search.neighbourhood import Restrictor, free_variables
from slotalloc.solver.search.rounding import round_and_repair

__all__ = ["DEFAULT_TIME_LIMIT", "PARAMS", "OptimizerParams", "Optimum", "optimize"]

log = logging.getLogger(__name__)

IntArray = npt.NDArray[np.int64]

#: Seconds (or deterministic units) when the caller gives no limit.
DEFAULT_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class OptimizerParams:
    """Tuning constants of the batch optimiser, each with the measurement that chose it.

    Measured on the project's machine kind (2 cores) with ``benchmarks/quality/quality.py``
    and ``benchmarks/quality/matrix.py``; see ``benchmarks/RESULTS.md``.
    """

    #: Models up to this many arcs are solved whole by CP-SAT.
    whole_model_arcs: int = 2500
    #: Share of a wall-clock budget kept back for building the result.
    reserve: float = 0.04
    #: Share of the budget kept for the Lagrangian multiplier search at the end.
    #: Measured on the district (10 s): 5 % -> bound 0.21 % above the score, 15 % ->
    #: 0.08 %, 25 % -> 0.07 %, the score unchanged (its search has converged by then).
    bound_share: float = 0.15
    #: Fewest multiplier steps worth running: the first few rarely lower the bound
    #: (measured on the city: no gain after 3 steps, 0.04 % after 6, 0.15 % after 19,
    #: for 0.02-0.05 % of score given up by the search), and below that the search
    #: makes better use of the time.
    bound_min_steps: int = 10
    #: Most multiplier steps (past ~100 the bound barely moves, measured on a district).
    bound_steps_max: int = 200
    #: Deterministic runs count multiplier steps in place of seconds: one step costs
    #: about this much per session (measured on the city: 0.068 s for 449 sessions).
    seconds_per_session: float = 1.5e-4
    #: Share of the search budget spent on the bookings alone when some bookings
    #: cannot all be kept (a caregiver cut): measured on the city cut, 31 drops
    #: after 10 s against 35 without the phase.
    rebalance_share: float = 0.6
    #: Models up to this many arcs also go to HiGHS's branch-and-cut, in a thread
    #: beside the search (wall-clock runs only: HiGHS has no deterministic budget).
    mip_max_arcs: int = 20000
    #: Larger models up to ``mip_window_max_arcs``: one search lane hands
    #: neighbourhoods of ``mip_window_arcs`` arcs to HiGHS, at most
    #: ``mip_window_seconds`` each (0 turns it off). Measured at 10 s against two
    #: CP-SAT lanes: 10k requests / 40 sites (24.7k arcs) +0.7 % of score; cities
    #: (50k arcs) -1.0 % to +0.1 % (a 6k-arc window is too small a share of a city
    #: to pay for the lane), so cities keep both CP-SAT lanes.
    mip_window_arcs: int = 6000
    mip_window_seconds: float = 3.0
    mip_window_max_arcs: int = 30000


PARAMS = OptimizerParams()
#: Kept for callers that read the threshold directly.
WHOLE_MODEL_ARCS = PARAMS.whole_model_arcs


@dataclass(frozen=True)
class Optimum:
    """The optimiser's answer: chosen arcs, their score, a safe bound, and a proof flag."""

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
    on_progress: Callable[[int, int | None], None] | None = None,
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

    def left() -> float:
        return deadline - time.perf_counter()

    t = time.perf_counter()
    f = build_formulation(c, fairness)
    stats["model_build_seconds"] = round(time.perf_counter() - t, 4)
    stats["arcs"] = c.n_arcs
    stats["rows"] = f.n_rows
    # HiGHS gets the second core from the start: the LP and the rounding below
    # run on one.
    mip = None
    greedy = None
    mip_end = deadline
    if not deterministic and 0 < c.n_arcs <= params.mip_max_arcs:
        # The greedy start (milliseconds on a district) as its first incumbent.
        greedy = round_and_repair(c, None, fairness=fairness)
        mip = MipProcess(
            f,
            time_limit=left(),
            hint=None if greedy is None else f.values_of_arcs(greedy),
        )

    t = time.perf_counter()
    f_lp = build_formulation(c, fairness)
    add_staffing_hull(f_lp)
    lp = solve_lp(f_lp, time_limit=None if deterministic else max(0.05, 0.5 * left()))
    stats["lp_seconds"] = round(time.perf_counter() - t, 4)
    bound = lp.bound
    stats["lp_bound"] = lp.bound
    lag: Lagrangian | None = None
    if lp.optimal and fairness is None:
        t = time.perf_counter()
        try:
            lag = Lagrangian(f_lp)
        except ValueError as exc:  # sub-problems too large: the LP bound stands
            log.info("no Lagrangian bound: %s", exc)
    if lag is not None:
        u0 = lag.multipliers(lp.duals)
        # Timed as the search's steps will run (with the arc sets), for its budget.
        lag_bound = lag.safe_bound(lag.evaluate(u0, choose=True)[0], u0)
        stats["lagrangian_seconds"] = round(time.perf_counter() - t, 4)
        stats["lagrangian_bound"] = lag_bound
        if lag_bound is not None and (bound is None or lag_bound < bound):
            bound = lag_bound
        # The multiplier search runs last, aimed at the final score: keep its share,
        # unless too few steps would fit in it (then the search keeps the time).
        # Deterministic runs count steps by the instance's size, never the clock.
        if deterministic:
            per_step = params.seconds_per_session * max(1, c.n_sessions)
        else:
            per_step = 1.1 * (time.perf_counter() - t)
        bound_steps = min(
            params.bound_steps_max, int(params.bound_share * limit / max(per_step, 1e-9))
        )
        if bound_steps < params.bound_min_steps:
            lag = None
        elif not deterministic:
            deadline -= params.bound_share * limit

    A = c.n_arcs
    found = [greedy if mip is not None else round_and_repair(c, None, fairness=fairness)]
    if hint is not None:
        found.append(round_and_repair(c, None, start=hint, fairness=fairness))
    if lp.optimal:
        caps = corner_caps(f_lp, lp.values)
        found.append(round_and_repair(c, lp.values[:A], group_caps=caps, fairness=fairness))
        found.append(round_and_repair(c, lp.values[:A], fairness=fairness))
    candidates = [a for a in found if a is not None]
    if not candidates:
        raise ValueError("min_group_rate cannot be met together with the locked bookings")
    scores = [score_of_arcs(c, a) for a in candidates]
    best_i = int(np.argmax(scores))
    arcs, score = candidates[best_i], scores[best_i]
    stats["rounding_score"] = score
    if bound is not None:
        bound = f.lattice_floor(bound)
    if bound is not None and bound < score:  # cannot happen with a correct LP; stay safe
        log.warning("LP bound %d below a valid score %d; dropping it", bound, score)
        bound = None
    if on_progress is not None:
        on_progress(score, bound)
    if bound is not None and score == bound:
        if mip is not None:
            mip.stop()
        return Optimum(arcs, score, bound, True, stats)

    values = f.values_of_arcs(arcs)
    best_score = score

    def improved(new_score: int, new_bound: int | None = None) -> None:
        nonlocal best_score
        if new_score > best_score:
            best_score = new_score
            if on_progress is not None:
                on_progress(new_score, bound)

    if c.n_arcs <= params.whole_model_arcs:
        run = run_cpsat(
            f,
            hint=values,
            max_time=None if deterministic else max(0.05, left()),
            max_dtime=limit if deterministic else None,
            seed=seed,
            on_solution=None if deterministic else improved,
            stop=None if mip is None else mip.proven,
        )
        stats["cpsat_dtime"] = round(run.deterministic_time, 3)
        if run.values is not None and run.objective is not None and run.objective >= score:
            values, score = run.values, run.objective
        if run.bound is not None:
            bound = run.bound if bound is None else min(bound, run.bound)
        stats["strategy"] = "whole-model"
    else:
        budget = LnsBudget(dtime=limit) if deterministic else LnsBudget(deadline=deadline)
        booked = c.drop_cost > 0
        movable = booked & ~c.locked
        # Only when the bookings cannot all stay (the greedy start, which keeps
        # every booking that fits, had to leave one out): with every booking
        # valid the phase would only take time from the full search.
        kept_all = _keeps_bookings(c, candidates[0]) if candidates else True
        stats["bookings_all_kept"] = kept_all
        rebalance = fairness is None and movable.any() and not booked.all() and not kept_all
        if rebalance and not deterministic:
            # A drop costs as much as a hundred children served, and undoing one
            # takes a chain of moves through other bookings. The bookings alone (the
            # unbooked requests left out) make a small model that HiGHS solves
            # exactly in about a second on a city: the fewest drops and moves, as
            # the start around which the unbooked requests are then filled in.
            t = time.perf_counter()
            kept = _arrange_bookings(f, candidates[0], time_limit=0.5 * max(0.0, left()))
            stats["bookings_mip_seconds"] = round(time.perf_counter() - t, 4)
            if kept is not None:
                stats["bookings_mip_score"] = score_of_arcs(c, kept)
                starts = [round_and_repair(c, None, start=kept)]
                if lp.optimal:
                    starts.append(round_and_repair(c, lp.values[:A], start=kept))
                for filled in starts:
                    assert filled is not None  # no fairness rule here
                    filled_score = score_of_arcs(c, filled)
                    if filled_score > score:
                        arcs, score = filled, filled_score
                        values = f.values_of_arcs(arcs)
                        improved(score)
        elif rebalance:
            # Deterministic runs have no HiGHS: the bookings alone are searched by
            # large-neighbourhood search instead (small sub-models hold the chains
            # of moves), then the unbooked requests are filled in around them.
            phase = _split(budget, limit, deadline, params.rebalance_share)
            only = arcs[booked[c.arc_req[arcs]]]
            first = large_neighbourhood_search(
                f,
                f.values_of_arcs(only),
                score_of_arcs(c, only),
                phase,
                seed=seed,
                focus=focus,
                movable=movable,
            )
            kept = np.flatnonzero(first.values[:A]).astype(np.int64)
            filled = round_and_repair(c, None, start=kept)
            assert filled is not None  # no fairness rule here
            filled_score = score_of_arcs(c, filled)
            stats["rebalance_bookings_score"] = first.objective
            if filled_score > score:
                arcs, score = filled, filled_score
                values = f.values_of_arcs(arcs)
                improved(score)
            if deterministic:
                budget = LnsBudget(dtime=max(0.0, limit - first.dtime))
        out = large_neighbourhood_search(
            f,
            values,
            score,
            budget,
            seed=seed,
            target=lp.values[:A] if lp.optimal else None,
            focus=focus,
            on_improve=lambda _v, s: improved(s),
            lanes=1 if mip is not None else 2,
            stop=None if mip is None else mip.proven,
            mip_window=params.mip_window_arcs
            if mip is None and c.n_arcs <= params.mip_window_max_arcs
            else 0,
            mip_window_seconds=params.mip_window_seconds,
        )
        values, score = out.values, out.objective
        stats["strategy"] = "lns"
        stats["lns_steps"] = out.steps
        stats["lns_improving_steps"] = out.improving_steps
    arcs = np.flatnonzero(values[:A]).astype(np.int64)
    score = score_of_arcs(c, arcs)
    if mip is not None:
        if bound is not None and f.lattice_floor(bound) <= score:
            mip.stop()  # already proven: its answer cannot help
        # Its time limit ends with the budget; a child that overruns it is ended.
        mrun = mip.result(timeout=max(0.0, mip_end - time.perf_counter()) + 0.5)
        stats["mip_score"] = mrun.objective
        stats["mip_bound"] = mrun.bound
        if mrun.values is not None and mrun.objective is not None and mrun.objective > score:
            arcs = np.flatnonzero(mrun.values[:A]).astype(np.int64)
            score = score_of_arcs(c, arcs)
            improved(score)
        if mrun.bound is not None:
            bound = mrun.bound if bound is None else min(bound, mrun.bound)
    if lag is not None and bound is not None and bound > score:  # no proof yet
        t = time.perf_counter()
        value, best_u, done = improve_multipliers(
            lag,
            u0,
            float(score),
            steps=bound_steps if deterministic else params.bound_steps_max,
            deadline=None if deterministic else deadline + params.bound_share * limit,
        )
        improved_bound = lag.safe_bound(value, best_u)
        stats["multiplier_steps"] = done
        stats["multiplier_seconds"] = round(time.perf_counter() - t, 4)
        stats["multiplier_bound"] = improved_bound
        if improved_bound is not None and improved_bound < bound:
            bound = improved_bound
    if bound is not None:
        bound = f.lattice_floor(bound)
    if bound is not None and bound < score:
        log.warning("bound %d below a valid score %d; dropping it", bound, score)
        bound = None
    optimal = bound is not None and bound == score
    if on_progress is not None and bound is not None:
        on_progress(score, bound)
    return Optimum(arcs, score, bound, optimal, stats)


def _split(budget: LnsBudget, limit: float, deadline: float, share: float) -> LnsBudget:
    """The first ``share`` of what is left of a search budget."""
    if budget.dtime is not None:
        return LnsBudget(dtime=share * budget.dtime)
    now = time.perf_counter()
    return LnsBudget(deadline=now + share * max(0.0, deadline - now))


def _keeps_bookings(c: Compiled, arcs: IntArray) -> bool:
    """Whether every booked request sits at its booked session in ``arcs``."""
    booked = c.booked_session >= 0
    at = np.full(c.n_requests, -1, dtype=np.int64)
    at[c.arc_req[arcs]] = c.arc_sess[arcs]
    return bool(np.all(at[booked] == c.booked_session[booked]))


def _arrange_bookings(f: Formulation, start: IntArray, *, time_limit: float) -> IntArray | None:
    """The best arrangement of the booked requests alone, by HiGHS; None without one.

    Every unbooked request is left out (fixed unassigned), so the model holds only
    the bookings' arcs and the rows they touch; ``start`` (a valid assignment)
    gives the hint. Valid for the full model too, every rule being monotone.
    """
    c = f.c
    A = c.n_arcs
    booked = c.drop_cost > 0
    locked_arcs = np.flatnonzero(c.locked[c.arc_req])
    values = f.values_of_arcs(locked_arcs)
    free = free_variables(f, np.flatnonzero(booked & ~c.locked))
    sub, idx = Restrictor(f)(free, values)
    mine = start[booked[c.arc_req[start]]]
    # In a child process: HiGHS may write to stderr, and nothing below the CLI prints.
    job = MipProcess(sub, time_limit=time_limit, hint=f.values_of_arcs(mine)[idx])
    run = job.result(timeout=time_limit + 0.5)
    if run.values is None:
        return None
    values[idx] = run.values
    return np.flatnonzero(values[:A]).astype(np.int64)
