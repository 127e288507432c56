"""The Lagrangian bound: exact per-session sub-problems, and never below the optimum."""

from __future__ import annotations

import datetime as dt
import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from brute import brute_force
from conftest import DATA, SAMPLE_FIGURES, sample_instance
from slotalloc import load_instance, solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.solver.bounds.lagrangian import (
    Lagrangian,
    improve_multipliers,
    lagrangian_bound,
    session_best,
)
from slotalloc.solver.bounds.lp import solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.formulation import safe_floor
from slotalloc.solver.rows.group_fairness import group_fairness
from slotalloc.solver.rows.staffing_hull import add_staffing_hull
from slotalloc.verify import verify
from strategies import instances

RATIO = [3, 5, 7]
LCM = 105


def _brute_session(
    profit: list[float],
    groups: list[list[int]],
    forced: list[bool],
    capacity: int,
    group_cap: list[int],
    caregivers: int,
    pooled: bool,
) -> float | None:
    best: float | None = None
    for bits in itertools.product((0, 1), repeat=len(profit)):
        if any(f and not b for f, b in zip(forced, bits, strict=True)):
            continue
        n = [sum(b * g[k] for b, g in zip(bits, groups, strict=True)) for k in range(3)]
        if sum(n) > capacity or any(n[k] > group_cap[k] for k in range(3)):
            continue
        if pooled:
            if sum(n[k] * (LCM // RATIO[k]) for k in range(3)) > caregivers * LCM:
                continue
        elif sum(-(-n[k] // RATIO[k]) for k in range(3)) > caregivers:
            continue
        value = sum(b * p for b, p in zip(bits, profit, strict=True))
        best = value if best is None else max(best, value)
    return best


arc = st.tuples(
    st.integers(min_value=-20, max_value=100),
    st.lists(st.integers(min_value=0, max_value=2), min_size=1, max_size=3),
    st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    arcs=st.lists(arc, min_size=1, max_size=9),
    capacity=st.integers(min_value=1, max_value=12),
    group_cap=st.lists(st.integers(min_value=1, max_value=8), min_size=3, max_size=3),
    caregivers=st.integers(min_value=0, max_value=4),
    pooled=st.booleans(),
)
def test_session_sub_problem_is_solved_exactly(
    arcs: list[tuple[int, list[int], bool]],
    capacity: int,
    group_cap: list[int],
    caregivers: int,
    pooled: bool,
) -> None:
    profit, groups, forced = [], [], []
    for p, members, locked in arcs:
        g = [0, 0, 0]
        for k in members:
            g[k] += 1
        profit.append(float(p))
        groups.append(g)
        # At most two forced arcs, so that most cases stay feasible.
        forced.append(locked and sum(forced) < 2)
    got = session_best(
        np.array(profit),
        np.array(groups, dtype=np.int64),
        np.array(forced),
        capacity,
        group_cap,
        caregivers,
        RATIO,
        LCM if pooled else 0,
        choose=True,
    )
    want = _brute_session(profit, groups, forced, capacity, group_cap, caregivers, pooled)
    if want is None:
        assert got is None
        return
    assert got is not None and abs(got.value - want) < 1e-9
    # The arcs it names are a best set: forced ones in, rule 3 kept, the value reached.
    bits = [0] * len(profit)
    for i in got.chosen.tolist():
        bits[i] = 1
    keep = [f or b == 1 for f, b in zip(forced, bits, strict=True)]
    assert keep == [b == 1 for b in bits]
    alone = _brute_session(
        [p * b for p, b in zip(profit, bits, strict=True)],
        [g if b else [0, 0, 0] for g, b in zip(groups, bits, strict=True)],
        [bool(b) for b in bits],
        capacity,
        group_cap,
        caregivers,
        pooled,
    )
    assert alone is not None and abs(alone - want) < 1e-9


def _lp_model(inst: Instance):  # type: ignore[no-untyped-def]
    f = build_formulation(compile_instance(inst))
    add_staffing_hull(f)
    return f, solve_lp(f)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(instances(bookings=True), st.integers(min_value=0, max_value=2**32 - 1))
def test_bound_is_never_below_the_optimum(inst: Instance, seed: int) -> None:
    best = brute_force(inst)
    if best is None:
        return
    f, lp = _lp_model(inst)
    assert lp.optimal and lp.bound is not None
    lag = lagrangian_bound(f, lp.duals)
    assert lag is not None
    # At the LP's duals the sub-problems are the LP's, made integral: never looser.
    assert best <= lag <= lp.bound
    # Weak duality holds for any multipliers, not only the LP's.
    noise = np.random.default_rng(seed).exponential(2000.0, size=lp.duals.shape[0])
    other = lagrangian_bound(f, noise)
    assert other is None or other >= best
    # Nor for the multipliers a subgradient search visits.
    lag = Lagrangian(f)
    value, _u, _steps = improve_multipliers(lag, np.maximum(lp.duals[lag.rows], 0.0), best, steps=5)
    searched = safe_floor(value)
    assert searched is not None and best <= searched <= start_bound(lag, lp)


def start_bound(lag: Lagrangian, lp) -> int:  # type: ignore[no-untyped-def]
    value = safe_floor(lag.evaluate(np.maximum(lp.duals[lag.rows], 0.0))[0])
    assert value is not None
    return value


def test_multiplier_search_tightens_the_sample_bounds() -> None:
    for name, (_fcfs, best, _ref) in SAMPLE_FIGURES.items():
        f, lp = _lp_model(sample_instance(name))
        lag = Lagrangian(f)
        start = start_bound(lag, lp)
        value, _u, steps = improve_multipliers(
            lag, np.maximum(lp.duals[lag.rows], 0.0), best, steps=30
        )
        searched = safe_floor(value)
        assert searched is not None and best <= searched <= start
        assert steps > 0


def test_samples_bound_between_optimum_and_lp() -> None:
    for name, (_fcfs, best, _ref) in SAMPLE_FIGURES.items():
        f, lp = _lp_model(sample_instance(name))
        lag = lagrangian_bound(f, lp.duals)
        assert lag is not None and lp.bound is not None
        assert best <= lag <= lp.bound


def test_fairness_rows_give_no_lagrangian_bound() -> None:
    inst = sample_instance("sample-small")
    c = compile_instance(inst)
    f = build_formulation(c, group_fairness(c, 0.5))
    lp = solve_lp(f)
    assert lagrangian_bound(f, lp.duals) is None


def test_regression_float_cancellation_huge_drop_weight_bound_stays_valid() -> None:
    # Drop weight 10^10 against a best score of 0: L(u) summed in floats came out
    # at -1.9e-6 and a padding relative to |L| alone floored it to -1, below the
    # optimum. The padding now follows the magnitudes of the terms summed.
    # FORMAT now bounds weights at 10^9, so the file holds the largest weight a
    # file can: the bound must stay valid there.
    inst = load_instance(DATA / "regression-float-cancellation.json")
    best = brute_force(inst)
    assert best is not None
    f, lp = _lp_model(inst)
    assert lp.bound is not None and lp.bound >= best
    lag = Lagrangian(f)
    u0 = np.maximum(lp.duals[lag.rows], 0.0)
    for steps in (0, 1, 5, 40):
        value, u, _ = improve_multipliers(lag, u0, float(best - 10), steps=steps)
        searched = lag.safe_bound(value, u)
        assert searched is not None and searched >= best
    res = solve(inst, time_limit=2, deterministic=True)
    assert res.bound is not None and res.score is not None and res.bound >= res.score == best


def test_regression_many_age_groups_fall_back_to_the_lp_bound() -> None:
    # Eight age groups of ten: a session's table would hold 11^8 states (GBs);
    # the optimiser must keep to the LP bound instead of exhausting memory.
    groups = [
        {
            "name": f"g{i}",
            "min_months": 4 * i,
            "max_months": 4 * i + 4,
            "ratio": 1,
            "max_group_size": 10,
        }
        for i in range(8)
    ]
    children, requests = [], []
    for g in range(8):
        for k in range(11):
            month = 4 * g + 1
            born = dt.date(2025 - (month + 8) // 12, (4 - month - 1) % 12 + 1, 1)
            children.append({"id": f"c{g}_{k}", "birth_date": born.isoformat()})
            requests.append({"id": f"r{g}_{k}", "children": [f"c{g}_{k}"], "preferences": ["s0"]})
    inst = Instance.model_validate(
        {
            "format": "slotalloc.instance/1",
            "policy": {"age_groups": groups, "staffing": "pooled"},
            "sessions": [
                {
                    "id": "s0",
                    "site": "x",
                    "start": "2025-04-19T08:00:00+08:00",
                    "end": "2025-04-19T12:00:00+08:00",
                    "capacity": 79,
                    "caregivers": 80,
                }
            ],
            "children": children,
            "requests": requests,
        }
    )
    f, lp = _lp_model(inst)
    with pytest.raises(ValueError, match="states"):
        Lagrangian(f)
    assert lagrangian_bound(f, lp.duals) is None
    res = solve(inst, time_limit=2, deterministic=True)
    report = verify(inst, res.to_solution())
    assert report.accepted, report.violations
    assert res.bound is not None and res.score is not None and res.bound >= res.score


def test_too_many_tables_to_trace_back_give_the_value_and_no_arc_set(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import slotalloc.solver.bounds.lagrangian as lagrangian

    profit = np.array([5.0, 4.0, 7.0, 3.0])
    groups = np.array([[2, 0, 0], [1, 1, 0], [1, 0, 0], [0, 0, 1]], dtype=np.int64)
    forced = np.zeros(4, dtype=np.bool_)
    args = (profit, groups, forced, 4, [10, 15, 20], 2, RATIO, 0)
    full = session_best(*args, choose=True)
    monkeypatch.setattr(lagrangian, "MAX_STAGE_STATES", 10)
    capped = session_best(*args, choose=True)
    assert full is not None and capped is not None
    assert capped.value == full.value and full.chosen.shape[0] > 0
    assert capped.chosen.shape[0] == 0
