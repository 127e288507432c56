"""Explanations agree with the verifier: a rule named as blocking really blocks."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings

from conftest import sample_instance
from slotalloc import Instance, Status, solve
from slotalloc.analysis.explain import explain
from slotalloc.rules import Rule
from slotalloc.verify import check_assignment, score_of
from strategies import instances


def _check_consistency(inst: Instance) -> int:
    res = solve(inst, method="fcfs")
    if res.status is Status.INFEASIBLE:
        return 0
    sol = res.to_solution()
    pairs = [(a.request, a.session) for a in sol.assignments]
    base = score_of(inst, pairs)
    booked = {b.request for b in inst.bookings}
    checked = 0
    for exp in explain(inst, sol):
        if exp.request not in booked:
            # first-come-first-served leaves nothing addable (a dropped booking is not retried)
            assert not exp.could_be_added
        for p in exp.preferences:
            if any(b.rule is Rule.LOCKED for b in p.blockers):
                continue
            found = {v.rule for v in check_assignment(inst, [*pairs, (exp.request, p.session)])}
            named = {b.rule.code for b in p.blockers}
            if exp.request in booked and not named:
                assert check_assignment(inst, [*pairs, (exp.request, p.session)]) == []
                continue
            assert named <= found, (named, found)
            # nothing named that the verifier does not see, and nothing missed
            assert found - {"6-locked"} <= named
            if p.displace is not None:
                kept = [(r, s) for r, s in pairs if r not in set(p.displace)]
                trial = [*kept, (exp.request, p.session)]
                assert check_assignment(inst, trial) == []
                assert score_of(inst, trial) - base == p.displace_gain
                assert p.displace_gain is not None and p.displace_gain > 0
            checked += 1
    return checked


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(bookings=True))
def test_named_blockers_are_exactly_what_the_verifier_finds(inst: Instance) -> None:
    _check_consistency(inst)


def test_samples_explanations_consistent() -> None:
    for name in ("sample-small", "sample-rebalance", "sample-tight"):
        assert _check_consistency(sample_instance(name)) > 0
