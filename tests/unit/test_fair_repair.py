"""The repair to the group rows by insertion with eviction, and rule 8's path for cities."""

from __future__ import annotations

from typing import Any

import numpy as np
from test_fairness_rules import INFANT, OLDER, floor_world, sess, world

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance
from slotalloc.result import Status, result_from_arcs, score_of_arcs
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.build import build_formulation
from slotalloc.solver.fair import (
    FairOptimum,
    _lp_under_floors,
    _rins,
    _support_mip,
    optimize_fair,
)
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.optimizer import optimize
from slotalloc.solver.params import OptimizerParams
from slotalloc.solver.rows.group_fairness import GroupFairness, group_floor
from slotalloc.solver.search.fair_repair import repair_rows
from slotalloc.verify import VerificationReport, verify


def _floor_and_older(inst: Instance) -> tuple[Compiled, GroupFairness, IntArray]:
    """The compiled instance, rule 8's rows from its FCFS, and the older children's arcs."""
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    name = [c.request_ids[int(r)] for r in c.arc_req]
    older = np.array([a for a in range(c.n_arcs) if name[a].startswith("r-o")], dtype=np.int64)
    return c, group_floor(c, fcfs), older


def test_repair_evicts_the_older_children_to_let_the_infants_in() -> None:
    inst = floor_world({"group_floor": "fcfs"})
    c, rule, older = _floor_and_older(inst)
    assert not rule.satisfied(older)
    fixed = repair_rows(c, older, rule)
    assert fixed is not None and rule.satisfied(fixed)
    names = sorted(c.request_ids[int(c.arc_req[a])] for a in fixed)
    assert names == ["r-i0", "r-i1", "r-i2"]
    res = result_from_arcs(
        c, fixed, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
    )
    assert verify(inst, res.to_solution()).accepted


def test_repair_leaves_an_assignment_that_meets_the_rows_alone() -> None:
    inst = floor_world({"group_floor": "fcfs"})
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    assert np.array_equal(repair_rows(c, fcfs, rule), np.sort(fcfs))


def _with_floor(inst: Instance) -> Instance:
    data = inst.model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    return Instance.model_validate(data)


def _solved_district(
    seed: int, requests: int, sites: int, rules: dict[str, str], params: OptimizerParams
) -> tuple[Compiled, FairOptimum, VerificationReport]:
    """optimize_fair on a generated district (2 deterministic units), its answer verified."""
    data = generate_xiamen(seed, requests, sites, priorities="mix").model_dump(mode="json")
    data["policy"]["fairness"] = rules
    inst = Instance.model_validate(data)
    c = compile_instance(inst)
    out = optimize_fair(
        c, inst.policy, optimize, params=params, time_limit=2, seed=0, deterministic=True
    )
    res = result_from_arcs(
        c, out.arcs, status=Status.FEASIBLE, bound=out.bound, stats={}, instance_name=None
    )
    report = verify(inst, res.to_solution())
    assert report.accepted, report.verdict
    assert report.score == score_of_arcs(c, out.arcs)
    return c, out, report


def test_the_city_path_is_verified_and_its_bound_holds() -> None:
    # A small district, sent down the city path by its threshold.
    for seed, requests, sites in [(4, 400, 4), (9, 300, 3)]:
        params = OptimizerParams(mip_max_arcs=0)
        _c, out, report = _solved_district(seed, requests, sites, {"group_floor": "fcfs"}, params)
        assert out.stats["strategy"] == "floors-from-lp"
        assert out.bound is not None and report.score is not None
        assert out.bound >= report.score
        # The bound is no weaker than the LP's with the floor rows.
        assert out.bound <= int(out.stats["lp_bound"])  # type: ignore[call-overload]


def test_repair_tries_the_preferred_arcs_first_then_the_others() -> None:
    inst = floor_world({"group_floor": "fcfs"})
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    name = [c.request_ids[int(c.arc_req[a])] for a in range(c.n_arcs)]
    older = np.array([a for a in range(c.n_arcs) if name[a].startswith("r-o")])
    # Only two of the three infants are preferred: the third comes from the second pass.
    prefer = np.array([n in ("r-i0", "r-i1") for n in name])
    fixed = repair_rows(c, older, rule, prefer=prefer)
    assert fixed is not None and rule.satisfied(fixed)
    assert sorted(name[a] for a in fixed) == ["r-i0", "r-i1", "r-i2"]
    # With none preferred the second pass alone does it.
    again = repair_rows(c, older, rule, prefer=np.zeros(c.n_arcs, dtype=bool))
    assert again is not None and np.array_equal(again, fixed)


def test_repair_moves_an_evicted_child_to_another_of_its_sessions() -> None:
    # One caregiver per session: three infants or seven older children. FCFS
    # puts the infants (who asked first) in s1 and the older children in s2.
    # From the older children all in s1, the infants get in only if the older
    # ones move to s2: leaving them out would break the older group's floor.
    kids = {f"i{k}": INFANT for k in range(3)} | {f"o{k}": OLDER for k in range(7)}
    reqs = [(f"r-{k}", [k], ["s1"], 0) for k in kids if k[0] == "i"]
    reqs += [(f"r-{k}", [k], ["s1", "s2"], 0) for k in kids if k[0] == "o"]
    sessions = [sess("s1", cap=7, carers=1), sess("s2", cap=7, carers=1)]
    inst = world(sessions, kids, reqs, {"group_floor": "fcfs"})
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    req = [c.request_ids[int(c.arc_req[a])] for a in range(c.n_arcs)]
    at = [c.session_ids[int(c.arc_sess[a])] for a in range(c.n_arcs)]
    older_in_s1 = np.array([a for a in range(c.n_arcs) if req[a][2] == "o" and at[a] == "s1"])
    assert not rule.satisfied(older_in_s1)
    fixed = repair_rows(c, older_in_s1, rule)
    assert fixed is not None and rule.satisfied(fixed)
    assert sorted((req[a], at[a]) for a in fixed) == sorted(
        [(f"r-i{k}", "s1") for k in range(3)] + [(f"r-o{k}", "s2") for k in range(7)]
    )
    res = result_from_arcs(
        c, fixed, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
    )
    assert verify(inst, res.to_solution()).accepted


def test_the_district_path_starts_from_highs_on_the_lp_support() -> None:
    inst = _with_floor(generate_xiamen(9, 300, 3, priorities="mix"))
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    found, lag_bound = _support_mip(c, rule, fcfs, OptimizerParams(), {"time_limit": 5})
    assert found is not None and rule.satisfied(found)
    assert lag_bound is not None and lag_bound >= score_of_arcs(c, found)
    assert score_of_arcs(c, found) > score_of_arcs(c, fcfs)
    res = result_from_arcs(
        c, found, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
    )
    assert verify(inst, res.to_solution()).accepted


def test_the_district_bound_is_the_least_of_the_search_s_and_the_lagrangian_s() -> None:
    # The Lagrangian bound at the LP's duals joins the district path's bound: it
    # never cuts below the optimum under rule 8 (proven by the exact path).
    inst = _with_floor(generate_xiamen(9, 200, 3, priorities="mix"))
    c = compile_instance(inst)
    params = OptimizerParams(whole_model_arcs=0)
    opt = optimize_fair(c, inst.policy, optimize, params=params, time_limit=3.0)
    lag = opt.stats["lagrangian_bound"]
    assert isinstance(lag, int) and opt.bound is not None
    assert score_of_arcs(c, opt.arcs) <= opt.bound <= lag
    exact = optimize_fair(c, inst.policy, optimize, deterministic=True, time_limit=30.0)
    assert exact.optimal
    assert lag >= score_of_arcs(c, exact.arcs)
    res = result_from_arcs(
        c, opt.arcs, status=Status.FEASIBLE, bound=opt.bound, stats={}, instance_name=None
    )
    assert verify(inst, res.to_solution()).accepted


def test_both_rules_mended_after_the_resolve_are_verified() -> None:
    # Districts sent past the lazy rows: resolving the envy of the rule-8
    # answer breaks a floor, and the priority-respecting repair mends it.
    # (9, 300, 3) was one until CP-SAT's hints reached it (session 19): its
    # rule-8 answer's envy now resolves within the floors.
    both = {"group_floor": "fcfs", "priority": "no_justified_envy"}
    for seed, requests, sites in [(10, 300, 3), (4, 400, 4)]:
        params = OptimizerParams(envy_lazy_max_arcs=0)
        c, out, report = _solved_district(seed, requests, sites, both, params)
        assert out.stats["envy_mended"] is True
        fcfs = first_come_first_served(c, priority_order=True)
        assert fcfs is not None and report.score is not None
        assert report.score > score_of_arcs(c, fcfs)


def test_repair_by_priority_makes_room_only_with_lower_priorities() -> None:
    # The floor_world, the older children of priority 5: the infants (priority 0)
    # may take their places, but not by priority, where they would be envied.
    kids = {f"i{k}": INFANT for k in range(3)} | {f"o{k}": OLDER for k in range(7)}
    reqs = [(f"r-{k}", [k], ["s1"], 0 if k[0] == "i" else 5) for k in kids]
    inst = world([sess("s1", cap=7, carers=1)], kids, reqs, {"group_floor": "fcfs"})
    c, rule, older = _floor_and_older(inst)
    assert repair_rows(c, older, rule) is not None
    assert repair_rows(c, older, rule, by_priority=True) is None


def _district_under_floors(
    seed: int, requests: int, sites: int
) -> tuple[Instance, Compiled, IntArray, GroupFairness]:
    """A district (priorities mixed) under rule 8, compiled, its FCFS and rule 8's rows."""
    data = generate_xiamen(seed, requests, sites, priorities="mix").model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    inst = Instance.model_validate(data)
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    return inst, c, fcfs, group_floor(c, fcfs)


def test_rins_betters_a_start_on_the_requests_where_it_and_the_lp_disagree() -> None:
    # From FCFS, which meets the floors, on a small district: the sub-model of the
    # disagreeing requests is solved whole; its answer meets every row and the
    # verifier, scores above FCFS, and never below its start.
    inst, c, fcfs, rule = _district_under_floors(4, 400, 4)
    params = OptimizerParams()
    _f_lp, lp = _lp_under_floors(c, rule, params, None)
    f = build_formulation(c, rule)
    cur, scores = fcfs, [score_of_arcs(c, fcfs)]
    for wide in (False, True):
        stats: dict[str, object] = {}
        cur = _rins(
            f,
            rule,
            cur,
            lp.values[: c.n_arcs],
            1e-6,
            wide,
            (None, 5.0),
            0,
            OptimizerParams(),
            stats,
        )
        assert rule.satisfied(cur)
        scores.append(score_of_arcs(c, cur))
        res = result_from_arcs(
            c, cur, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
        )
        report = verify(inst, res.to_solution())
        assert report.accepted, report.verdict
        assert report.score == scores[-1]
    assert scores[1] > scores[0] and scores[2] >= scores[1]
    assert scores[2] <= lp.bound


def test_the_city_path_runs_rins_between_the_repair_and_the_search() -> None:
    params = OptimizerParams(mip_max_arcs=0)
    _c, out, report = _solved_district(4, 400, 4, {"group_floor": "fcfs"}, params)
    assert "rins_requests" in out.stats and "rins_wide_requests" in out.stats
    assert report.score is not None
    assert report.score >= int(out.stats["repaired_score"])  # type: ignore[call-overload]


def _tight_weekend(seed: int, requests: int, sites: int) -> tuple[Instance, Compiled, IntArray]:
    """Tight rooms, 30 % booked, 15 % locked, under rule 8: the repair finds little to evict."""
    data = generate_xiamen(
        seed, requests, sites, tight=True, locked=0.15, bookings=0.3, priorities="mix"
    ).model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    inst = Instance.model_validate(data)
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    return inst, c, fcfs


def _accepted_score(inst: Instance, c: Compiled, arcs: IntArray) -> int:
    res = result_from_arcs(
        c, arcs, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
    )
    report = verify(inst, res.to_solution())
    assert report.accepted, report.verdict
    assert report.score == score_of_arcs(c, arcs)
    return report.score


def test_anchored_rounding_meets_the_floors_where_the_repair_cannot() -> None:
    # The repair of the rounded LP point fails; rounding around FCFS's
    # placements of the short groups meets every floor and scores above FCFS.
    from slotalloc.solver.search.fair_repair import anchored_lp_rounding, repair_lp_rounding

    inst, c, fcfs = _tight_weekend(1, 400, 3)
    rule = group_floor(c, fcfs)
    _f_lp, lp = _lp_under_floors(c, rule, OptimizerParams(), None)
    values = lp.values[: c.n_arcs]
    assert repair_lp_rounding(c, values, rule, 1e-6) is None
    arcs = anchored_lp_rounding(c, values, rule, fcfs, 1e-6)
    assert arcs is not None and rule.satisfied(arcs)
    assert _accepted_score(inst, c, arcs) > score_of_arcs(c, fcfs)


def test_the_city_path_starts_anchored_when_the_repair_fails() -> None:
    # The same kind of weekend through the city path (mip_max_arcs=0).
    inst, c, fcfs = _tight_weekend(4, 800, 5)
    params = OptimizerParams(mip_max_arcs=0)
    opt = optimize_fair(c, inst.policy, optimize, params=params, deterministic=True, time_limit=2.0)
    assert opt.stats["start"] == "lp-anchored"
    assert group_floor(c, fcfs).satisfied(opt.arcs)
    assert _accepted_score(inst, c, opt.arcs) > score_of_arcs(c, fcfs)


def _banked_district(seed: int, requests: int, sites: int, cap: int) -> tuple[Any, ...]:
    """A district under rule 8, its FCFS, rows, formulation and floor bank of ``cap``."""
    from slotalloc.solver.fair import _floor_bank

    inst, c, fcfs, rule = _district_under_floors(seed, requests, sites)
    f_lp, lp = _lp_under_floors(c, rule, OptimizerParams(), None)
    f = build_formulation(c, rule)
    bank = _floor_bank(f, f_lp, lp.duals, rule, cap)
    assert bank is not None and (bank.price > 0).all() and (bank.cap == cap).all()
    return inst, c, fcfs, rule, f, bank


def test_the_floor_bank_holds_at_most_the_slack_and_the_cap() -> None:
    # A sub-model with a bank variable per floor: the bank is capped, can never
    # exceed the floor's slack, and the hint (the incumbent) meets every row.
    from slotalloc.solver.mip import violated_rows
    from slotalloc.solver.search.cpsat_run import run_cpsat
    from slotalloc.solver.search.neighbourhood import Restrictor, free_variables

    _inst, c, fcfs, _rule, f, bank = _banked_district(4, 400, 4, 2)
    cur = f.values_of_arcs(fcfs)
    assert (bank.slack(cur) == 0).all()  # FCFS sits on its own floors
    sub, idx = Restrictor(f)(free_variables(f, np.arange(c.n_requests)), cur)
    banked, hint = bank.extend(sub, idx, cur)
    K = bank.rhs.shape[0]
    assert banked.n_vars == sub.n_vars + K and violated_rows(banked, hint) == 0
    over = hint.copy()
    over[sub.n_vars :] = 1  # one child banked above a floor FCFS meets exactly
    assert violated_rows(banked, over) > 0
    run = run_cpsat(banked, hint=hint, max_dtime=2.0)
    assert run.values is not None
    full = cur.copy()
    full[idx] = run.values[: sub.n_vars]
    got = run.values[sub.n_vars :]
    assert (got <= np.minimum(bank.slack(full), bank.cap)).all()
    assert run.objective == int(f.obj @ full) + f.offset + int(bank.price @ got)


def test_a_search_with_a_floor_bank_returns_the_best_score_it_saw() -> None:
    # Two unlocked lanes price the floors' slack: the incumbent may trade score for
    # banked children, but the outcome is the best score met, meets the floors and
    # passes the verifier.
    import time

    from slotalloc.solver.search.lns import LnsBudget, large_neighbourhood_search

    inst, c, fcfs, rule, f, bank = _banked_district(5, 900, 8, 3)
    seen: list[int] = []
    budget = LnsBudget(deadline=time.perf_counter() + 1.5, step_seconds=0.1)
    out = large_neighbourhood_search(
        f,
        f.values_of_arcs(fcfs),
        score_of_arcs(c, fcfs),
        budget,
        seed=2,
        lanes=2,
        bank=bank,
        on_improve=lambda _v, s: seen.append(s),
    )
    arcs = np.flatnonzero(out.values[: c.n_arcs]).astype(np.int64)
    assert out.steps > 2 and rule.satisfied(arcs)
    assert out.objective == _accepted_score(inst, c, arcs) >= score_of_arcs(c, fcfs)
    assert out.objective == max([score_of_arcs(c, fcfs), *seen])


def test_regression_both_rules_lazy_path_kept_fcfs_where_mending_does_better() -> None:
    # On models up to envy_lazy_max_arcs the lazy loop resolved the optimiser's
    # envy by swaps only; that broke a floor, so it kept FCFS in priority order
    # (297 240 here) where the larger models' path mends the floors. It now
    # mends too, and takes the mended answer when it scores more.
    both = {"group_floor": "fcfs", "priority": "no_justified_envy"}
    c, out, report = _solved_district(5, 300, 4, both, OptimizerParams())
    assert out.stats["strategy"] == "lazy-envy"
    assert out.stats["envy_mended"] is True
    fcfs = first_come_first_served(c, priority_order=True)
    assert fcfs is not None and report.score is not None
    assert report.score > score_of_arcs(c, fcfs)
