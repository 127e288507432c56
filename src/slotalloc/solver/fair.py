"""The optimiser under the fairness rules of FORMAT §4 (``policy.fairness``).

* Rule 8 (``group_floor: "fcfs"``) is linear: one row per age group over the
  home-group child counts, ``P_g(A) >= P_g(F)``, with ``F`` the solver's own
  first-come-first-served (in priority order when rule 9 is on too). The rows
  join the shared formulation (:mod:`slotalloc.solver.rows.group_fairness`),
  so the LP bound, CP-SAT and the neighbourhood search all keep them.
* Rule 9 (``priority: "no_justified_envy"``) is not linear. The incumbent is
  checked (:func:`slotalloc.solver.envy.envy_triples`) and every triple is
  resolved by the swap it names (:func:`slotalloc.solver.envy.resolve_envy`);
  the result must still meet rule 8, else the best of it and ``F`` (which
  meets both rules) is kept. On models up to ``envy_lazy_max_arcs`` the rule
  is exact (:func:`_lazy_envy`): the triples become rows
  (:mod:`slotalloc.solver.rows.no_envy`) and CP-SAT solves again, while the
  budget lasts.

On models above ``mip_max_arcs`` (a city), no starting point the plain
optimiser builds meets the floors, and the search from FCFS under the rows
climbs slowly (84.6 % of the bound in 10 s). There the start comes from the LP
under the floors (:func:`_floors_from_lp`): it is nearly integral, so rounded
(:func:`slotalloc.solver.search.rounding.round_and_repair`) it falls a few
dozen children short of a floor, which a repair by insertion with eviction
makes up (:func:`slotalloc.solver.search.fair_repair.repair_rows`). Where
caregivers were cut and FCFS drops bookings, the bookings are first arranged
alone by HiGHS (:mod:`slotalloc.solver.search.bookings`) on the other core
while the LP is solved, and the rounding places them first; the
start is then re-solved where it and the LP disagree (:func:`_rins`: first
the disagreeing arcs alone, then every arc of their requests), which trades a
floor's children between distant sessions as the neighbourhood search, grown
around sessions, cannot; the neighbourhood search under the rows then
improves it, each neighbourhood free to bank a few children above a floor at
the floor's LP price (:class:`slotalloc.solver.search.lns.FloorBank`), so that
a place moved between two far sites can be found. Where the bookings were
arranged alone, the answer's dropped bookings are last re-seated by chains of
moves (:mod:`slotalloc.solver.search.reseat`), kept when the floors still hold.
The bound is the least of that LP's and the Lagrangian bound with the floors
dualised beside the coupling rows
(:class:`slotalloc.solver.bounds.floors.FloorLagrangian`), priced at the LP's
duals and improved last, aimed at the final score.

On districts (``whole_model_arcs`` to ``mip_max_arcs`` arcs, wall-clock runs)
HiGHS first solves, for ``floor_support_share`` of the budget, the model cut
down to the arcs the LP under the floors uses (with its rounding's and
FCFS's): a few times smaller, with the same LP bound, it is solved far faster
than the whole model (:func:`_support_mip`), and its answer starts the
optimiser, whose search and whole-model HiGHS take the rest.

The bound is the optimiser's bound under rule 8 alone: a valid bound under
both rules (their feasible set is smaller).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slotalloc._typing import FloatArray, IntArray
from slotalloc.compile import Compiled
from slotalloc.models import Policy
from slotalloc.result import score_of_arcs
from slotalloc.solver.bounds.floors import FloorLagrangian
from slotalloc.solver.bounds.lp import LpRelaxation, solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.envy import envy_triples, resolve_envy
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.formulation import Formulation
from slotalloc.solver.mip import solve_mip, violated_rows
from slotalloc.solver.params import DEFAULT_TIME_LIMIT, PARAMS, OptimizerParams
from slotalloc.solver.rows.group_fairness import GroupFairness, group_floor
from slotalloc.solver.rows.no_envy import EnvyRows
from slotalloc.solver.rows.staffing_hull import add_staffing_hull
from slotalloc.solver.search.bookings import ArrangingThread, drops, keeps_bookings
from slotalloc.solver.search.cpsat_run import run_cpsat
from slotalloc.solver.search.fair_repair import (
    anchored_lp_rounding,
    repair_lp_rounding,
    repair_rows,
)
from slotalloc.solver.search.lns import FloorBank, LnsBudget, large_neighbourhood_search
from slotalloc.solver.search.neighbourhood import Restrictor, free_variables
from slotalloc.solver.search.priority_fix import fix_above_lowest
from slotalloc.solver.search.reseat import reseat_and_fill
from slotalloc.solver.search.rounding import round_and_repair

__all__ = ["FairOptimum", "optimize_fair"]


@dataclass(frozen=True)
class FairOptimum:
    """The optimiser's answer under the fairness rules that are on."""

    arcs: IntArray
    bound: int | None
    optimal: bool
    stats: dict[str, object] = field(default_factory=dict)


def optimize_fair(
    c: Compiled,
    policy: Policy,
    optimize: Callable[..., Any],
    *,
    rate_rule: GroupFairness | None = None,
    **kwargs: Any,
) -> FairOptimum:
    """Solve under ``policy.fairness`` with the optimiser ``optimize`` (see the module notes).

    Parameters
    ----------
    c
        The compiled instance (locked bookings consistent).
    policy
        The instance's policy; ``policy.fairness`` says which rules are on.
    optimize
        :func:`slotalloc.solver.optimizer.optimize`.
    rate_rule
        ``min_group_rate``'s rows, kept beside rule 8's.
    **kwargs
        Passed to ``optimize`` (time limit, seed, deterministic, ...).

    Raises
    ------
    ValueError
        When the rules cannot be met together with the locked bookings (not
        possible for rules 8 and 9, which first-come-first-served meets).
    """
    envy_free = policy.envy_free
    start = first_come_first_served(c, priority_order=envy_free)
    assert start is not None  # the caller checked the locked bookings
    rule = rate_rule
    if policy.group_floor:
        rule = group_floor(c, start, also=rate_rule)
    hint = kwargs.pop("hint", None)
    # FCFS meets every rule that is on: it is the first candidate (a better hint after it).
    first = start if hint is None else np.concatenate([start, np.asarray(hint, dtype=np.int64)])
    params: OptimizerParams = kwargs.get("params", PARAMS)
    if envy_free and c.n_arcs <= params.envy_lazy_max_arcs:
        return _lazy_envy(c, policy, rule, start, first, optimize, params, kwargs)
    if envy_free and not kwargs.get("deterministic", False):
        kwargs = _time_for_envy(c, policy, params, kwargs)
    city = None
    lag_bound: int | None = None
    if policy.group_floor and rule is not None and c.n_arcs > params.mip_max_arcs:
        if envy_free:
            city = _both_rules_city(c, rule, start, params, kwargs)
        else:
            city = _floors_from_lp(c, rule, start, params, kwargs)
    elif (
        policy.group_floor
        and rule is not None
        and c.n_arcs > params.whole_model_arcs
        and not kwargs.get("deterministic", False)
        and params.floor_support_share > 0
    ):
        found, lag_bound = _support_mip(c, rule, start, params, kwargs)
        if found is not None:
            first = np.concatenate([found, first])
    if city is not None:
        opt = city
    else:
        try:
            opt = optimize(c, fairness=rule, hint=first, **kwargs)
        except ValueError:
            # No candidate met the rows (a repair failed): FCFS meets them; start there.
            opt = optimize(c, fairness=rule, hint=start, **kwargs)
    stats: dict[str, object] = dict(opt.stats)
    arcs, optimal, bound = opt.arcs, opt.optimal, opt.bound
    if lag_bound is not None:
        # HiGHS's bound on a district is tight when its search gets deep within
        # the budget, and near the LP's when it does not (measured on a tight
        # district, 14 769 arcs: 97.06 % of it in one run, 99.56 % in another;
        # the Lagrangian bound, 0.03 s, puts the first at 98.15 %).
        stats["lagrangian_bound"] = lag_bound
        score = score_of_arcs(c, arcs)
        if lag_bound >= score and (bound is None or lag_bound < bound):
            bound = lag_bound  # (below the score cannot happen with a valid bound)
        optimal = optimal or bound == score
    if envy_free:
        arcs, optimal = _envy_free(c, arcs, optimal, rule, start, params, stats)
    return FairOptimum(
        arcs=np.asarray(arcs, dtype=np.int64), bound=bound, optimal=optimal, stats=stats
    )


def _time_for_envy(
    c: Compiled, policy: Policy, params: OptimizerParams, kwargs: dict[str, Any]
) -> dict[str, Any]:
    """``kwargs`` with the time kept back for resolving (and mending) the answer's envy."""
    limit = DEFAULT_TIME_LIMIT if kwargs.get("time_limit") is None else kwargs["time_limit"]
    per_arc = params.envy_resolve_seconds_per_arc
    if policy.group_floor and c.n_arcs <= params.mip_max_arcs:
        per_arc += params.envy_mend_seconds_per_arc
    elif policy.group_floor:
        per_arc = params.envy_fixed_seconds_per_arc
        if ((c.booked_session >= 0) & ~c.locked).any():
            # a booking that leaves opens a session to a kept request: mend
            per_arc += params.envy_fixed_mend_seconds_per_arc
    keep = min(0.3 * float(limit), per_arc * c.n_arcs)
    return {**kwargs, "time_limit": float(limit) - keep}


def _envy_free(
    c: Compiled,
    arcs: IntArray,
    optimal: bool,
    rule: GroupFairness | None,
    start: IntArray,
    params: OptimizerParams,
    stats: dict[str, object],
) -> tuple[IntArray, bool]:
    """The optimiser's answer without justified envy, meeting the rows (module notes).

    Resolved by swaps; when that breaks a floor, mended on districts; FCFS in
    priority order (``start``) when neither works or it scores better.
    """
    triples = envy_triples(c, arcs)
    stats["envy_triples_found"] = len(triples)
    if not triples:
        return arcs, optimal
    fixed = _mended(c, resolve_envy(c, arcs), rule, params, stats)
    arcs = start if fixed is None else fixed
    if score_of_arcs(c, start) > score_of_arcs(c, arcs):
        arcs = start
    return arcs, False


def _mended(
    c: Compiled,
    arcs: IntArray,
    rule: GroupFairness | None,
    params: OptimizerParams,
    stats: dict[str, object],
) -> IntArray | None:
    """Envy-free ``arcs`` themselves if they meet the floors, else mended (districts only), or None.

    The mending records ``envy_mended`` in ``stats``.
    """
    if rule is None or rule.satisfied(arcs):
        return arcs
    mended = None
    if c.n_arcs <= params.mip_max_arcs or stats.get("strategy") == "both-rules-fixed":
        mended = _mend_floors(c, arcs, rule, params.envy_mend_rounds)
    stats["envy_mended"] = mended is not None
    return mended


def _mend_floors(c: Compiled, arcs: IntArray, rule: GroupFairness, rounds: int) -> IntArray | None:
    """Both rules from an envy-free assignment short of a floor, or None.

    The floors are repaired making room for each request only with requests
    of at most its priority (who then do not envy it), and what envy is left
    is resolved again, for at most ``rounds`` rounds (each deterministic).
    Measured on a district (12 352 arcs): met in 2 rounds, 1.4 s, 1.6 % above
    FCFS in priority order, where FCFS itself was the answer before.
    """
    cur = np.asarray(arcs, dtype=np.int64)
    for _ in range(rounds):
        fixed = repair_rows(c, cur, rule, by_priority=True)
        if fixed is None:
            return None
        if not envy_triples(c, fixed):
            return fixed
        cur = resolve_envy(c, fixed)
        if rule.satisfied(cur):
            return cur
    return None


def _lazy_envy(
    c: Compiled,
    policy: Policy,
    rule: GroupFairness | None,
    start: IntArray,
    first: IntArray,
    optimize: Callable[..., Any],
    params: OptimizerParams,
    kwargs: dict[str, Any],
) -> FairOptimum:
    """Rule 9 exactly, by lazy rows (:class:`slotalloc.solver.rows.no_envy.EnvyRows`).

    First the optimiser under rule 8's rows (when on): on a small model it
    returns as soon as it proves its optimum, which gives a bound and, once
    resolved (swaps, then :func:`_mended` when a floor breaks), an envy-free
    candidate; it is the answer when it uses the whole budget. While budget
    is left, the incumbent's justified envy becomes rows and CP-SAT solves the
    whole model again, hinted with the best candidate of swaps alone, until an
    incumbent has none. Every
    row is met by every assignment meeting rule 9, so each solve's bound is a
    bound under the rules; an envy-free incumbent proven optimal is the
    optimum under them. Out of budget, the best envy-free assignment seen is
    kept (``start``, FCFS in priority order, meets both rules).
    """
    det, limit, t0, deadline = _clock(kwargs, params)
    seed = int(kwargs.get("seed", 0))

    best = np.asarray(start, dtype=np.int64)
    best_score = score_of_arcs(c, best)
    # CP-SAT's hint: the best candidate resolved by swaps alone. Hinted with a
    # mended one, the 120-request district's first round ran out the budget
    # (111 640) where from this hint three rounds proved 115 300 (session 19).
    hint, hint_score = best, best_score

    mending: dict[str, object] = {}

    def offer(arcs: IntArray) -> None:
        # Resolved as the larger models' answers are, mended when a floor breaks:
        # without the mending, both rules on 350-2 300-arc districts kept FCFS in
        # priority order far below the other path (session 19).
        nonlocal best, best_score, hint, hint_score
        swapped = resolve_envy(c, arcs)
        fixed = _mended(c, swapped, rule, params, mending)
        if fixed is swapped and (s := score_of_arcs(c, swapped)) > hint_score:
            hint, hint_score = swapped, s
        if fixed is not None and (s := score_of_arcs(c, fixed)) > best_score:
            best, best_score = fixed, s

    run = dict(kwargs)
    run.update(on_progress=None, hint=first)
    if not det:
        run["started"] = t0
        # the time to resolve (and mend) its answer, kept back as on the other path
        run["time_limit"] = _time_for_envy(c, policy, params, kwargs)["time_limit"]
    try:
        opt = optimize(c, fairness=rule, **run)
    except ValueError:  # no candidate met rule 8's rows; FCFS does
        run["hint"] = start
        opt = optimize(c, fairness=rule, **run)
    bound: int | None = opt.bound
    dtime_left = float(limit) - float(opt.stats.get("cpsat_dtime", 0.0) or 0.0)
    f = build_formulation(c, rule)
    rows = EnvyRows(f)
    proved = opt.optimal
    cur = np.asarray(opt.arcs, dtype=np.int64)
    rounds = 0
    while True:
        triples = envy_triples(c, cur)
        if not triples:
            if score_of_arcs(c, cur) >= best_score:
                best, best_score = cur, score_of_arcs(c, cur)
            break
        offer(cur)
        proved = False
        rows.add(cur, triples)
        left = deadline - time.perf_counter()
        if (det and dtime_left <= 0) or (not det and left <= 0):
            break
        cp = run_cpsat(
            f,
            hint=rows.values(hint),
            max_time=None if det else max(0.05, left),
            max_dtime=dtime_left if det else None,
            seed=seed,
            num_workers=params.envy_workers,
        )
        rounds += 1
        dtime_left -= cp.deterministic_time
        if cp.bound is not None:
            bound = cp.bound if bound is None else min(bound, cp.bound)
        if cp.values is None:
            break
        cur = np.flatnonzero(cp.values[: c.n_arcs]).astype(np.int64)
        proved = cp.optimal
    score = best_score
    if bound is not None:
        bound = f.lattice_floor(bound)
        if bound < score:  # cannot happen with valid rows; stay safe
            bound = None
    optimal = (proved or bound == score) and bound is not None
    if optimal:
        bound = score
    stats: dict[str, object] = dict(opt.stats)
    stats.update(strategy="lazy-envy", envy_rounds=rounds, envy_rows=rows.rows, **mending)
    on_progress = kwargs.get("on_progress")
    if on_progress is not None:
        on_progress(score, bound)
    return FairOptimum(arcs=best, bound=bound, optimal=optimal, stats=stats)


def _support_mip(
    c: Compiled,
    rule: GroupFairness,
    fcfs: IntArray,
    params: OptimizerParams,
    kwargs: dict[str, Any],
) -> tuple[IntArray | None, int | None]:
    """Rule 8 on a district: HiGHS on the model cut down to the LP's support (module notes).

    The arcs the LP under the floors uses, its rounding's and FCFS's, and
    no other: a model a few times smaller, whose LP bound is the whole
    model's. Returns its best assignment when it meets the rows (else None)
    and the Lagrangian bound with the floors dualised at the LP's duals
    (:class:`~slotalloc.solver.bounds.floors.FloorLagrangian`; None without one).
    """
    _, limit, _, deadline = _clock(kwargs, params)
    f_lp, lp = _lp_under_floors(c, rule, params, max(0.05, 0.25 * (deadline - time.perf_counter())))
    if not lp.optimal:
        return None, None
    lag = FloorLagrangian.build(c, rule, f_lp, lp.duals)
    lag_bound = None if lag is None else lag.bound(lag.u0)
    A = c.n_arcs
    keep = lp.values[:A] > params.floor_prefer_value
    rounded = round_and_repair(c, lp.values[:A])
    if rounded is not None:
        keep[rounded] = True
    keep[fcfs] = True
    f = build_formulation(c, rule)
    f.ub[:A] = np.where(keep, f.ub[:A], 0)
    budget = min(params.floor_support_share * limit, deadline - time.perf_counter())
    if budget <= 0.1:
        return None, lag_bound
    out = solve_mip(f, time_limit=budget, hint=f.values_of_arcs(fcfs))
    if out.values is None:
        return None, lag_bound
    arcs = np.flatnonzero(out.values[:A]).astype(np.int64)
    return (arcs if rule.satisfied(arcs) else None), lag_bound


def _lp_under_floors(
    c: Compiled, rule: GroupFairness, params: OptimizerParams, time_limit: float | None
) -> tuple[Formulation, LpRelaxation]:
    """The LP relaxation under the rows, with the staffing hull, and its formulation."""
    f_lp = build_formulation(c, rule)
    add_staffing_hull(f_lp)
    lp = solve_lp(f_lp, time_limit=time_limit, glop_parameters=params.glop_parameters)
    return f_lp, lp


def _lp_start(
    c: Compiled,
    rule: GroupFairness,
    values: FloatArray,
    fcfs: IntArray,
    params: OptimizerParams,
    stats: dict[str, object],
    kept: IntArray | None = None,
) -> IntArray:
    """The LP point under the floors rounded and repaired to them, or FCFS if better.

    ``kept``: the bookings as arranged alone, placed first when
    the floors can be repaired around them.
    """
    # Nearly integral: rounded, it falls a few children short of a floor,
    # which the repair inserts, trying the arcs the LP uses first.
    t = time.perf_counter()
    prefer = params.floor_prefer_value
    repaired = None
    for first in [kept, None] if kept is not None else [None]:
        tag = "" if first is None else "-bookings"
        # Both ways start from the same rounding: computed once.
        rounded = round_and_repair(c, values, start=first)
        assert rounded is not None  # None only with a fairness rule, and none is passed
        repaired = repair_lp_rounding(c, values, rule, prefer, first, rounded=rounded)
        how = "lp-repaired" + tag
        if repaired is None:
            # Tight rooms with many bookings and locks leave the repair too little
            # to evict: round around FCFS's placements of the short groups instead.
            repaired = anchored_lp_rounding(c, values, rule, fcfs, prefer, first, rounded=rounded)
            how = "lp-anchored" + tag
        if repaired is not None:
            break
    start = np.asarray(fcfs, dtype=np.int64)
    if repaired is not None and score_of_arcs(c, repaired) > score_of_arcs(c, start):
        start = repaired
    else:
        how = "fcfs"
    stats["start"] = how
    stats["repaired_score"] = score_of_arcs(c, start)
    stats["repair_seconds"] = round(time.perf_counter() - t, 3)
    return start


def _rins(
    f: Formulation,
    rule: GroupFairness,
    start: IntArray,
    values: FloatArray,
    eps: float,
    wide: bool,
    limits: tuple[float | None, float | None],
    seed: int,
    params: OptimizerParams,
    stats: dict[str, object],
) -> IntArray:
    """``start`` re-solved on the requests where it and the LP point ``values`` disagree.

    A relaxation-induced neighbourhood: the arcs the start uses and the LP
    does not, or the other way round, are freed (``wide``: every arc of
    their requests), the rest fixed, and the sub-model (a few thousand arcs
    on a city) is solved by CP-SAT within ``limits`` (wall seconds,
    deterministic time). The LP says where the rounding and the repair
    went wrong; the neighbourhood search, whose neighbourhoods are grown
    around sessions, cannot trade a floor's children between distant
    sessions as this sub-model can. Returns ``start`` unless it is bettered.
    """
    c = f.c
    t = time.perf_counter()
    A = c.n_arcs
    x = np.zeros(A, dtype=np.bool_)
    x[start] = True
    differ = (x & (values < 1 - eps)) | (~x & (values > eps))
    reqs = np.unique(c.arc_req[differ])
    cur = f.values_of_arcs(start)
    free = free_variables(f, reqs)
    if not wide:
        free[:A] &= differ
    sub, idx = Restrictor(f)(free, cur)
    run = run_cpsat(
        sub,
        hint=cur[idx],
        max_time=limits[0],
        max_dtime=limits[1],
        seed=seed,
        num_workers=params.floor_rins_workers,
        extra=_sub_model_parameters(params),
    )
    tag = "rins_wide" if wide else "rins"
    stats[tag + "_requests"] = int(reqs.shape[0])
    stats[tag + "_seconds"] = round(time.perf_counter() - t, 3)
    if run.values is None:
        return start
    cur[idx] = run.values
    arcs = np.flatnonzero(cur[:A]).astype(np.int64)
    better = score_of_arcs(c, arcs) > score_of_arcs(c, start)
    if not better or violated_rows(f, cur) > 0 or not rule.satisfied(arcs):
        return start
    stats[tag + "_score"] = score_of_arcs(c, arcs)
    return arcs


def _chained_bookings(
    c: Compiled,
    fcfs: IntArray,
    arranging: ArrangingThread,
    det: bool,
    params: OptimizerParams,
    stats: dict[str, object],
) -> IntArray | None:
    """FCFS's bookings re-seated by chains of moves, while the arrangement still runs.

    On a fully booked city CP-SAT may find no better arrangement than its
    hint and run to its limit (b1: 2.2-2.9 s of 10, the main thread waiting);
    meanwhile the chains seat some of FCFS's drops, stopping when it ends
    (wall-clock runs). Returns the bookings' arcs (as the arrangement's), or
    None when the arrangement had ended.
    """
    if not det and arranging.done():
        return None
    t = time.perf_counter()
    out, seated = reseat_and_fill(
        c,
        fcfs,
        max_checks=params.reseat_max_checks,
        deadline=None if det else arranging.ends_at,
        stop=None if det else arranging.done,
    )
    stats["reseat_start_seated"] = seated
    stats["reseat_start_seconds"] = round(time.perf_counter() - t, 3)
    return out[c.booked_session[c.arc_req[out]] >= 0]


def _reseated(
    c: Compiled,
    rule: GroupFairness,
    arcs: IntArray,
    score: int,
    params: OptimizerParams,
    deadline: float | None,
    stats: dict[str, object],
) -> tuple[IntArray, int]:
    """``arcs`` with dropped bookings re-seated by chains of moves, when better and fair.

    As in the plain optimiser (:func:`~slotalloc.solver.search.reseat.reseat_and_fill`);
    an unbooked child leaves only while every row holds, and when a row
    still breaks it is repaired (:func:`~slotalloc.solver.search.fair_repair.repair_rows`), and
    the answer is kept only when it meets the floors and scores better.
    """
    t = time.perf_counter()
    filled, seated = reseat_and_fill(
        c, arcs, max_checks=params.reseat_max_checks, deadline=deadline, floors=rule
    )
    stats["reseat_seated"] = seated
    stats["reseat_seconds"] = round(time.perf_counter() - t, 3)
    if seated == 0:
        return arcs, score
    if not rule.satisfied(filled):
        # The chains check the rows only when a placement leaves; a seated
        # booking can still lower a min_group_rate row (its coefficients may
        # be negative): put children back (insertion with eviction, never of a
        # booking).
        mended = repair_rows(c, filled, rule)
        stats["reseat_mended"] = mended is not None
        if mended is None:
            stats["reseat_kept"] = False
            return arcs, score
        filled = mended
    new_score = score_of_arcs(c, filled)
    if new_score <= score:
        stats["reseat_kept"] = False
        return arcs, score
    stats["reseat_kept"] = True
    return filled, new_score


def _floor_bank(
    f: Formulation, f_lp: Formulation, duals: FloatArray, rule: GroupFairness, cap: int
) -> FloorBank | None:
    """The floors with a positive LP price, as a bank of at most ``cap`` each (None if none)."""
    if cap <= 0 or rule.rate is not None or f.fair_vars.shape[0] == 0:
        return None
    rows = f_lp.block_rows()
    zg = f.fair_pairs % f.c.n_groups
    vars_, coefs, rhs, price = [], [], [], []
    for k in np.flatnonzero(rule.active).tolist():
        where = rows.get(rule.names[k])
        # A ">=" row of a maximisation has a dual <= 0: its price is the negation.
        mu = 0.0 if where is None else -float(duals[where[0]])
        coef = rule.weights[k, zg]
        nz = np.flatnonzero(coef)
        if round(mu) <= 0 or nz.shape[0] == 0:
            continue
        vars_.append(f.fair_vars[nz])
        coefs.append(coef[nz])
        rhs.append(int(rule.rhs[k]))
        price.append(round(mu))
    if not price:
        return None
    K = len(price)
    return FloorBank(
        tuple(vars_),
        tuple(coefs),
        np.asarray(rhs, dtype=np.int64),
        np.asarray(price, dtype=np.int64),
        np.full(K, cap, dtype=np.int64),
    )


def _sub_model_parameters(params: OptimizerParams) -> dict[str, object] | None:
    """CP-SAT parameters of the city path's sub-models (RINS and the search's), or None."""
    extra: dict[str, object] = {}
    if params.floor_probing_level is not None:
        extra["cp_model_probing_level"] = params.floor_probing_level
    if params.floor_presolve_iterations is not None:
        extra["max_presolve_iterations"] = params.floor_presolve_iterations
    return extra or None


def _multiplier_steps(
    c: Compiled, lag: FloorLagrangian, limit: float, det: bool, params: OptimizerParams
) -> int:
    """Multiplier steps that fit in ``floor_bound_share`` of the budget (0 when too few to pay)."""
    per_step = params.seconds_per_session * max(1, c.n_sessions) if det else 1.1 * lag.seconds
    share = params.floor_bound_share
    steps = min(params.bound_steps_max, int(share * limit / max(per_step, 1e-9)))
    return 0 if steps < params.bound_min_steps else steps


def _clock(kwargs: dict[str, Any], params: OptimizerParams) -> tuple[bool, float, float, float]:
    """Whether the run is deterministic, its time limit, its start and its deadline."""
    det = bool(kwargs.get("deterministic", False))
    limit = float(DEFAULT_TIME_LIMIT if kwargs.get("time_limit") is None else kwargs["time_limit"])
    t0 = kwargs.get("started") or time.perf_counter()
    return det, limit, t0, t0 + limit * (1 - params.reserve)


def _floor_bound(
    c: Compiled, rule: GroupFairness, params: OptimizerParams, time_limit: float | None
) -> tuple[Formulation, LpRelaxation, int | None, FloorLagrangian | None, dict[str, object]]:
    """The LP under the floors, and the least of its bound and the Lagrangian bound at its duals."""
    stats: dict[str, object] = {}
    t_lp = time.perf_counter()
    f_lp, lp = _lp_under_floors(c, rule, params, time_limit)
    stats["lp_bound"] = lp.bound
    stats["lp_seconds"] = round(time.perf_counter() - t_lp, 3)
    bound, lag = lp.bound, None
    if lp.optimal:
        lag = FloorLagrangian.build(c, rule, f_lp, lp.duals)
    if lag is not None:
        stats["floor_prices"] = lag.prices().tolist()
        first = lag.bound(lag.u0)
        stats["lagrangian_bound"] = first
        if first is not None:
            bound = first if bound is None else min(bound, first)
    return f_lp, lp, bound, lag, stats


def _both_rules_city(
    c: Compiled,
    rule: GroupFairness,
    fcfs: IntArray,
    params: OptimizerParams,
    kwargs: dict[str, Any],
) -> FairOptimum | None:
    """Both rules on a city: rule 8's path with the higher priorities kept at FCFS's places.

    See :mod:`slotalloc.solver.search.priority_fix`. The bound is rule 8's on
    the whole instance (valid under both rules); the restricted instance's
    bound is not one. The caller resolves whatever envy is left. When that
    LP is not solved in its share of the time, the answer has no bound.
    Returns None when the restricted instance's LP is not solved (then the
    plain path runs).
    """
    det, _, t0, deadline = _clock(kwargs, params)
    share = params.both_rules_bound_share
    left = None if det else max(0.05, share * (deadline - time.perf_counter()))
    _, _lp, bound, _, stats = _floor_bound(c, rule, params, left)
    ref = _rebooked(c, rule, fcfs)
    fix = fix_above_lowest(c, ref)
    inner = dict(kwargs, on_progress=None)
    if not det:
        inner["started"] = t0
    out = _floors_from_lp(fix.compiled, fix.rule(rule), fix.to_restricted(ref), params, inner)
    if out is None:
        return None
    arcs = fix.to_original(out.arcs)
    score = score_of_arcs(c, arcs)
    stats.update({k: v for k, v in out.stats.items() if k not in stats})
    stats.update(
        strategy="both-rules-fixed",
        fixed_requests=int(fix.fixed.sum()),
        rebooked=int(np.setdiff1d(c.arc_req[ref], c.arc_req[fcfs]).shape[0]),
        restricted_bound=out.bound,
    )
    if bound is not None:
        bound = build_formulation(c, rule).lattice_floor(bound)
        if bound < score:  # cannot happen with correct bounds; stay safe
            bound = None
    on_progress = kwargs.get("on_progress")
    if on_progress is not None:
        on_progress(score, bound)
    return FairOptimum(arcs=arcs, bound=bound, optimal=bound == score, stats=stats)


def _rebooked(c: Compiled, rule: GroupFairness, fcfs: IntArray) -> IntArray:
    """FCFS in priority order with as many of its dropped bookings taken first as the floors allow.

    Where caregivers were cut, FCFS in priority order drops bookings that
    could move to another session, and the requests kept at its places
    (:func:`fix_above_lowest`) then hold that room: on two cities the answer
    dropped 19 and 21 bookings (100 000 each) where rule 8 alone drops 4
    and 5. Rule 9 never counts a booking, so taking dropped bookings first
    keeps the answer free of justified envy, but it can push a group below
    its floor (g6, all 27 first: 7 older children short). A prefix (in
    booking order) that keeps the floors is searched by bisection, a few FCFS
    passes (the floors need not hold for every shorter prefix, so it is the
    longest only when they do); the best-scoring assignment meeting them is
    returned (``fcfs`` itself at the least).
    """
    placed = np.zeros(c.n_requests, dtype=np.bool_)
    placed[c.arc_req[fcfs]] = True
    order = c.booking_order
    dropped = order[(c.booked_session[order] >= 0) & ~placed[order]]
    best, best_score = fcfs, score_of_arcs(c, fcfs)
    lo, hi = 0, int(dropped.shape[0])
    while lo < hi:
        mid = (lo + hi + 1) // 2
        mask = np.zeros(c.n_requests, dtype=np.bool_)
        mask[dropped[:mid]] = True
        arcs = first_come_first_served(c, priority_order=True, rebook=mask)
        if arcs is not None and rule.satisfied(arcs):
            lo = mid
            score = score_of_arcs(c, arcs)
            if score > best_score:
                best, best_score = arcs, score
        else:
            hi = mid - 1
    return best


def _floors_from_lp(
    c: Compiled,
    rule: GroupFairness,
    fcfs: IntArray,
    params: OptimizerParams,
    kwargs: dict[str, Any],
) -> FairOptimum | None:
    """Rule 8 on a city: the LP under the floors, rounded, repaired, then searched (module notes).

    Returns None when the LP is not solved (then the plain path runs).
    """
    det, limit, _, deadline = _clock(kwargs, params)
    seed = int(kwargs.get("seed", 0))
    left = None if det else max(0.05, 0.5 * (deadline - time.perf_counter()))
    # When caregivers were cut, FCFS drops bookings that could move: one
    # CP-SAT worker arranges the bookings alone on the other core while GLOP
    # solves the LP (deterministic runs: in deterministic units, taken from
    # the search's budget).
    movable = (c.drop_cost > 0) & ~c.locked
    arranging = None
    t_arranging = time.perf_counter()
    share = params.floor_bookings_share * limit
    if share > 0 and movable.any() and not keeps_bookings(c, fcfs):
        arranging = ArrangingThread(
            build_formulation(c),
            fcfs,
            time_limit=None if det else share,
            dtime=share if det else None,
            seed=seed,
        )
    try:
        f_lp, lp, bound, lag, stats = _floor_bound(c, rule, params, left)
    except BaseException:
        if arranging is not None:
            arranging.stop()
        raise
    stats["strategy"] = "floors-from-lp"
    kept, spent = None, 0.0
    if arranging is not None:
        chained = _chained_bookings(c, fcfs, arranging, det, params, stats)
        kept, spent = arranging.result()
        stats["bookings_seconds"] = round(time.perf_counter() - t_arranging, 3)
        stats["bookings_dtime"] = round(spent, 3)
        if kept is not None:
            stats["bookings_score"] = score_of_arcs(c, kept)
        if chained is not None and (kept is None or drops(c, chained) < drops(c, kept)):
            kept = chained
            stats["bookings_from"] = "chains"
    if not lp.optimal:
        return None
    A = c.n_arcs
    start = _lp_start(c, rule, lp.values[:A], fcfs, params, stats, kept)
    f = build_formulation(c, rule)
    steps = 0 if lag is None else _multiplier_steps(c, lag, limit, det, params)
    search_end = deadline - (params.floor_bound_share * limit if steps and not det else 0.0)
    reseat_end = search_end
    if arranging is not None and not det:
        # Kept for the chains of moves, by the start's drops (as the plain optimiser).
        search_end -= min(
            params.reseat_share * limit, params.reseat_seconds_per_drop * drops(c, start)
        )
    share = params.floor_rins_share * limit
    for wide in params.floor_rins:
        wall = None if det else min(share, search_end - time.perf_counter())
        if wall is not None and wall < params.floor_rins_min_share * limit:
            break
        start = _rins(
            f,
            rule,
            start,
            lp.values[:A],
            params.floor_prefer_value,
            wide,
            (wall, share if det else None),
            seed,
            params,
            stats,
        )
    score = score_of_arcs(c, start)
    t_search = time.perf_counter()
    budget = LnsBudget(dtime=max(0.0, limit - spent)) if det else LnsBudget(deadline=search_end)
    out = large_neighbourhood_search(
        f,
        f.values_of_arcs(start),
        score,
        budget,
        seed=seed,
        target=lp.values[:A],
        mip_window=params.floor_mip_window,
        mip_window_seconds=params.mip_window_seconds,
        cpsat_extra=_sub_model_parameters(params),
        bank=_floor_bank(f, f_lp, lp.duals, rule, params.floor_bank_cap),
    )
    arcs = np.flatnonzero(out.values[:A]).astype(np.int64)
    if not rule.satisfied(arcs) or score_of_arcs(c, arcs) < score:
        arcs = start
    score = score_of_arcs(c, arcs)
    stats["lns_steps"] = out.steps
    stats["lns_seconds"] = round(time.perf_counter() - t_search, 3)
    if arranging is not None:
        arcs, score = _reseated(c, rule, arcs, score, params, None if det else reseat_end, stats)
    if lag is not None and steps and (bound is None or bound > score):
        improved = lag.improve(score, steps, None if det else deadline)
        stats["multiplier_bound"] = improved
        if improved is not None and (bound is None or improved < bound):
            bound = improved
    if bound is not None:
        bound = f.lattice_floor(bound)
        if bound < score:  # cannot happen with correct bounds; stay safe
            bound = None
    on_progress = kwargs.get("on_progress")
    if on_progress is not None:
        on_progress(score, bound)
    return FairOptimum(arcs=arcs, bound=bound, optimal=bound == score, stats=stats)
