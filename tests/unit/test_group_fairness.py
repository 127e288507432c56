"""The opt-in group-fairness rule: its definition, its cost, and every path keeping it."""

from __future__ import annotations

from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from slotalloc import Status, solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.result import Result
from slotalloc.solve import hint_arcs
from slotalloc.solver.build import build_formulation
from slotalloc.solver.rows.group_fairness import as_fraction, group_fairness, group_service
from slotalloc.solver.search.lns import LnsBudget, large_neighbourhood_search
from slotalloc.solver.search.rounding import round_and_repair
from slotalloc.verify import verify
from strategies import instances

OLDER = "2022-10-01"  # ratio 7
INFANT = "2024-10-01"  # ratio 3


def world(n_infants: int, n_older: int, caregivers: int) -> Instance:
    """One session both groups want; per-group staffing favours the older children."""
    kids = [(f"i{k}", INFANT) for k in range(n_infants)] + [
        (f"o{k}", OLDER) for k in range(n_older)
    ]
    doc: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "sessions": [
            {
                "id": "A",
                "site": "X",
                "start": "2025-04-19T08:30:00+08:00",
                "end": "2025-04-19T12:00:00+08:00",
                "capacity": 30,
                "caregivers": caregivers,
            }
        ],
        "children": [{"id": k, "birth_date": b} for k, b in kids],
        "requests": [{"id": f"r-{k}", "children": [k], "preferences": ["A"]} for k, _ in kids],
    }
    return Instance.model_validate(doc)


def rates(inst: Instance, res: Result) -> tuple[list[int], list[int]]:
    c = compile_instance(inst)
    served, demand = group_service(c, hint_arcs(c, res))
    return served.tolist(), demand.tolist()


def checked(inst: Instance, res: Result) -> Result:
    report = verify(inst, res.to_solution())
    assert report.accepted and report.score == res.score, report.violations
    return res


def meets(inst: Instance, res: Result, rate: Fraction) -> bool:
    served, demand = rates(inst, res)
    P, D = sum(served), sum(demand)
    return all(p * D >= rate * d * P for p, d in zip(served, demand, strict=True) if d)


def test_default_optimum_serves_older_children_first() -> None:
    # 6 infants and 14 older, 2 caregivers: older children fill both (14), no infant.
    inst = world(6, 14, 2)
    res = checked(inst, solve(inst, time_limit=2, deterministic=True))
    assert res.status is Status.OPTIMAL
    assert rates(inst, res) == ([0, 0, 14], [6, 0, 14])


def test_rule_gives_infants_their_share_at_a_known_cost() -> None:
    # Rate 1/2: infants' rate >= half the overall rate. One caregiver each way:
    # 3 infants + 7 older = 10 of 20 (infant rate 1/2 >= 1/2 * 1/2). The optimum.
    inst = world(6, 14, 2)
    res = checked(inst, solve(inst, time_limit=2, deterministic=True, min_group_rate=0.5))
    assert res.status is Status.OPTIMAL
    assert rates(inst, res) == ([3, 0, 7], [6, 0, 14])
    assert res.score == 10 * 1000
    assert meets(inst, res, Fraction(1, 2))
    assert res.stats["min_group_rate"] == "1/2"


def test_rate_zero_is_the_default_and_one_equalises() -> None:
    inst = world(6, 14, 2)
    free = solve(inst, time_limit=2, deterministic=True)
    zero = solve(inst, time_limit=2, deterministic=True, min_group_rate=0)
    assert zero.score == free.score
    one = checked(inst, solve(inst, time_limit=2, deterministic=True, min_group_rate=1))
    served, demand = rates(inst, one)
    # Equal rates: 3 of 6 infants and 7 of 14 older children.
    assert served[0] * demand[2] == served[2] * demand[0]
    assert sum(served) == 10


def test_bad_rates_are_refused() -> None:
    inst = world(1, 1, 1)
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError):
            solve(inst, min_group_rate=bad)
    with pytest.raises(ValueError):
        solve(inst, method="fcfs", min_group_rate=0.5)
    assert as_fraction(0.8) == Fraction(4, 5)


def test_rounding_and_lns_keep_the_rule() -> None:
    # Larger world (several sessions) so the LNS path runs on its own.
    from slotalloc.scenarios.xiamen import generate_xiamen

    inst = generate_xiamen(3, 600, 6)
    c = compile_instance(inst)
    rule = group_fairness(c, Fraction(9, 10))
    start = round_and_repair(c, None, fairness=rule)
    assert start is not None and rule.satisfied(start)
    f = build_formulation(c, rule)
    values = f.values_of_arcs(start)
    from slotalloc.result import score_of_arcs

    out = large_neighbourhood_search(
        f, values, score_of_arcs(c, start), LnsBudget(dtime=1.0), seed=1, lanes=1
    )
    arcs = np.flatnonzero(out.values[: c.n_arcs])
    assert rule.satisfied(arcs)
    assert out.objective >= score_of_arcs(c, start)
    assert out.objective == score_of_arcs(c, arcs)


def test_lanes_that_do_not_wait_keep_the_rule_and_add_up() -> None:
    # A wall-clock budget with two lanes: each merges its neighbourhood into an
    # incumbent the other has changed since, so the rows over every session
    # (the rule's) must still hold and the score be the sum of the gains.
    import time

    from slotalloc.result import result_from_arcs, score_of_arcs
    from slotalloc.scenarios.xiamen import generate_xiamen
    from slotalloc.solver.mip import violated_rows

    inst = generate_xiamen(5, 900, 8)
    c = compile_instance(inst)
    rule = group_fairness(c, Fraction(9, 10))
    start = round_and_repair(c, None, fairness=rule)
    assert start is not None
    f = build_formulation(c, rule)
    budget = LnsBudget(deadline=time.perf_counter() + 1.5, step_seconds=0.1)
    out = large_neighbourhood_search(
        f, f.values_of_arcs(start), score_of_arcs(c, start), budget, seed=3, lanes=2
    )
    arcs = np.flatnonzero(out.values[: c.n_arcs])
    assert out.steps > 2
    assert violated_rows(f, out.values) == 0 and rule.satisfied(arcs)
    assert out.objective == score_of_arcs(c, arcs) >= score_of_arcs(c, start)
    res = result_from_arcs(
        c, arcs, status=Status.FEASIBLE, bound=None, stats={}, instance_name=None
    )
    report = verify(inst, res.to_solution())
    assert report.accepted, report


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(instances(bookings=True))
def test_random_instances_meet_the_rule_or_say_why(inst: Instance) -> None:
    rate = Fraction(3, 4)
    try:
        res = solve(inst, time_limit=0.5, deterministic=True, min_group_rate=rate)
    except ValueError as e:
        # Only the locked bookings can make the rule unreachable from every start.
        assert "locked" in str(e)
        assert any(b.locked for b in inst.bookings)
        return
    checked(inst, res)
    if res.status is not Status.INFEASIBLE:
        assert meets(inst, res, rate)
