"""The Lagrangian bound under rule 8: never below the optimum under the floors."""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_fairness_rules import floor_world

from brute import brute_force
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.solver.bounds.floors import FloorLagrangian
from slotalloc.solver.bounds.lp import solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.rows.group_fairness import group_fairness, group_floor
from slotalloc.solver.rows.staffing_hull import add_staffing_hull
from slotalloc.verify import fairness_violations, fcfs_assignment
from strategies import instances


def _with_floor(inst: Instance) -> Instance:
    data = inst.model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    return Instance.model_validate(data)


def _floor_lagrangian(inst: Instance):  # type: ignore[no-untyped-def]
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    f_lp = build_formulation(c, rule)
    add_staffing_hull(f_lp)
    lp = solve_lp(f_lp)
    assert lp.optimal and lp.bound is not None
    return FloorLagrangian.build(c, rule, f_lp, lp.duals), lp


@settings(
    max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
)
@given(instances(bookings=True, max_requests=5), st.integers(min_value=0, max_value=2**32 - 1))
def test_floor_bound_is_never_below_the_optimum_under_the_floors(inst: Instance, seed: int) -> None:
    fair = _with_floor(inst)
    if fcfs_assignment(fair) is None:
        return
    best = brute_force(fair, lambda pairs: not fairness_violations(fair, pairs))
    assert best is not None  # FCFS meets the floors
    lag, _lp = _floor_lagrangian(fair)
    if lag is None:  # no group has a floor
        return
    at_lp = lag.bound(lag.u0)
    assert at_lp is not None and best <= at_lp
    # Weak duality for any multipliers, the floors' included.
    noise = np.random.default_rng(seed).exponential(2000.0, size=lag.u0.shape[0])
    other = lag.bound(noise)
    assert other is None or other >= best
    searched = lag.improve(best, 5, None)
    assert searched is not None and best <= searched


def test_the_infants_floor_is_priced_and_the_bound_is_the_optimum() -> None:
    # One caregiver: three infants (FCFS) or seven older children. Under the
    # floor the optimum is FCFS's three infants (3 x 1000); the floor's price
    # is what an infant's place costs the older children, and with it the
    # bound is exact, where the plain bound is seven children.
    inst = floor_world({"group_floor": "fcfs"})
    lag, lp = _floor_lagrangian(inst)
    assert lag is not None
    best = brute_force(inst, lambda pairs: not fairness_violations(inst, pairs))
    assert best is not None
    infant = lag.prices()[0]
    assert infant > 0
    assert lag.bound(lag.u0) == best == lp.bound


def test_min_group_rate_beside_the_floors_gives_no_floor_bound() -> None:
    inst = floor_world({"group_floor": "fcfs"})
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs, also=group_fairness(c, 0.5))
    f_lp = build_formulation(c, rule)
    lp = solve_lp(f_lp)
    assert FloorLagrangian.build(c, rule, f_lp, lp.duals) is None
