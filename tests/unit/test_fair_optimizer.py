"""The optimiser under FORMAT §4: each rule changes the answer, every answer is verified.

Rule 8 is exact (linear rows): the optimiser equals brute force under it. Rule
9 is exact on small models by lazy rows (slotalloc.solver.envy.envy_cuts): the
optimiser equals brute force under it, alone and with rule 8, and proves it.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from test_fairness_rules import envy_world, floor_world

from brute import brute_force
from slotalloc import solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.solver.envy import envy_triples, resolve_envy
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.verify import fairness_violations, fcfs_assignment, score_of, verify
from strategies import instances


def with_rules(inst: Instance, **rules: str) -> Instance:
    data = inst.model_dump(mode="json")
    data["policy"]["fairness"] = rules
    return Instance.model_validate(data)


def checked(inst: Instance, **kw: Any) -> Any:
    res = solve(inst, time_limit=kw.pop("time_limit", 5), seed=0, deterministic=True, **kw)
    report = verify(inst, res.to_solution())
    assert report.accepted, report.verdict
    assert report.score == res.score
    return res


def test_rule_8_changes_the_optimum_to_keep_the_infants() -> None:
    plain = checked(floor_world(None))
    assert {a.request for a in plain.assignments} == {f"r-o{k}" for k in range(7)}
    fair = checked(floor_world({"group_floor": "fcfs"}))
    assert {a.request for a in fair.assignments} == {"r-i0", "r-i1", "r-i2"}
    assert fair.score == brute_force(
        floor_world({"group_floor": "fcfs"}),
        lambda pairs: not fairness_violations(floor_world({"group_floor": "fcfs"}), pairs),
    )


def test_rule_9_gives_the_place_to_the_higher_priority() -> None:
    # Without the rule the score's priority weight already prefers "high"; make
    # the low-priority request the one with two children so it scores more.
    plain = envy_world(None)
    data = plain.model_dump(mode="json")
    data["sessions"][0]["capacity"] = 2
    data["children"].append({"id": "c3", "birth_date": "2022-12-01"})
    data["requests"][0]["children"] = ["c1", "c3"]
    data["requests"][1]["priority"] = 1
    two = Instance.model_validate(data)
    res = checked(two)
    assert {a.request for a in res.assignments} == {"low"}
    fair = checked(with_rules(two, priority="no_justified_envy"))
    assert {a.request for a in fair.assignments} == {"high"}


def test_the_fcfs_baseline_goes_by_priority_under_rule_9() -> None:
    inst = envy_world({"priority": "no_justified_envy"})
    res = solve(inst, method="fcfs")
    assert [(a.request, a.session) for a in res.assignments] == [("high", "s1")]
    assert verify(inst, res.to_solution()).accepted
    c = compile_instance(inst)
    chosen = first_come_first_served(c, priority_order=True)
    assert chosen is not None
    assert sorted(fcfs_assignment(inst, priority_order=True) or []) == [("high", "s1")]


def test_resolve_envy_leaves_no_triple_and_stays_valid() -> None:
    inst = envy_world(None)
    c = compile_instance(inst)
    low = first_come_first_served(c)
    assert low is not None and len(envy_triples(c, low)) == 1
    fixed = resolve_envy(c, low)
    assert envy_triples(c, fixed) == []
    pairs = [(c.request_ids[int(c.arc_req[a])], c.session_ids[int(c.arc_sess[a])]) for a in fixed]
    assert pairs == [("high", "s1")]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(inst=instances(max_requests=5))
def test_under_rule_8_the_optimiser_equals_brute_force(inst: Instance) -> None:
    fair = with_rules(inst, group_floor="fcfs")
    if fcfs_assignment(fair) is None:
        return
    res = checked(fair)
    assert res.score == brute_force(fair, lambda pairs: not fairness_violations(fair, pairs))


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(inst=instances(max_requests=5))
def test_under_rule_9_the_optimiser_equals_brute_force(inst: Instance) -> None:
    fair = with_rules(inst, priority="no_justified_envy")
    if fcfs_assignment(fair, priority_order=True) is None:
        return
    res = checked(fair)
    best = brute_force(fair, lambda pairs: not fairness_violations(fair, pairs))
    assert res.score == best
    assert res.status.value == "optimal"


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(inst=instances(max_requests=5))
def test_under_both_rules_the_optimiser_equals_brute_force(inst: Instance) -> None:
    fair = with_rules(inst, group_floor="fcfs", priority="no_justified_envy")
    floor = fcfs_assignment(fair, priority_order=True)
    if floor is None:
        return
    res = checked(fair)
    assert res.score is not None and res.score >= score_of(fair, floor)
    best = brute_force(fair, lambda pairs: not fairness_violations(fair, pairs))
    assert res.score == best
    assert res.status.value == "optimal"
