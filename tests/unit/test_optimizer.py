"""The optimiser: exact optima, proofs, determinism, infeasibility, verified solutions."""

from __future__ import annotations

import dataclasses
import itertools

import pytest
from hypothesis import HealthCheck, given, settings

from brute import brute_force
from conftest import SAMPLE_FIGURES, sample_instance
from slotalloc import Status, solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.result import Result
from slotalloc.solve import Progress
from slotalloc.solver.infeasibility import locked_conflicts
from slotalloc.verify import verify
from strategies import instances


def checked(instance: Instance, result: Result) -> Result:
    """Every solution goes through the independent verifier."""
    report = verify(instance, result.to_solution())
    assert report.accepted, report.violations
    if result.status is not Status.INFEASIBLE:
        assert report.score == result.score
        assert result.bound is None or result.bound >= result.score
        if result.status is Status.OPTIMAL:
            assert result.bound == result.score
    return result


@pytest.mark.parametrize("name", ["sample-small", "sample-rebalance"])
def test_sample_optimum_proven(name: str) -> None:
    inst = sample_instance(name)
    res = checked(inst, solve(inst, time_limit=5, deterministic=True))
    optimum = SAMPLE_FIGURES[name][1]
    assert res.status is Status.OPTIMAL
    assert res.score == optimum == res.bound


def test_sample_tight_best_known_with_valid_bound() -> None:
    inst = sample_instance("sample-tight")
    res = checked(inst, solve(inst, time_limit=3, deterministic=True))
    _, best_known, proven_upper = SAMPLE_FIGURES["sample-tight"]
    assert res.score >= best_known
    assert res.bound is not None and res.bound >= best_known
    assert res.status is Status.FEASIBLE or res.score == res.bound == proven_upper


def test_deterministic_runs_are_identical() -> None:
    inst = sample_instance("sample-tight")
    runs = [solve(inst, time_limit=0.5, deterministic=True, seed=3) for _ in range(2)]
    a, b = runs
    assert (a.status, a.score, a.bound, a.assignments) == (
        b.status,
        b.score,
        b.bound,
        b.assignments,
    )
    checked(inst, a)


def test_default_method_is_the_optimiser_and_fcfs_is_kept() -> None:
    inst = sample_instance("sample-small")
    fcfs = checked(inst, solve(inst, method="fcfs"))
    opt = checked(inst, solve(inst, time_limit=5))
    assert fcfs.score == SAMPLE_FIGURES["sample-small"][0]
    assert opt.score == SAMPLE_FIGURES["sample-small"][1]
    assert checked(inst, solve(inst, method="cp-sat", time_limit=5)).score == opt.score
    with pytest.raises(ValueError):
        solve(inst, method="nope")  # type: ignore[arg-type]


def test_progress_callback_reports_incumbents_and_bounds() -> None:
    inst = sample_instance("sample-rebalance")
    seen: list[Progress] = []
    res = checked(inst, solve(inst, time_limit=5, deterministic=True, callback=seen.append))
    assert seen
    assert all(p.bound is None or p.bound >= p.score for p in seen)
    assert seen[-1].score == res.score and seen[-1].bound == res.bound
    assert all(p.elapsed >= 0 for p in seen)


def test_progress_is_a_frozen_dataclass_with_a_gap() -> None:
    p = Progress(95, 100, 0.5)
    assert p.gap == pytest.approx(0.05)
    assert Progress(5, None, 0.0).gap is None
    assert p == Progress(95, 100, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.score = 1  # type: ignore[misc]


def test_regression_improved_dropped_the_bound_passed_to_it() -> None:
    # The optimiser's progress helper took a bound and reported the old one:
    # ``improved(score, bound)`` must report the tighter bound it was given.
    from slotalloc.solver.optimizer import _Progress

    seen: list[tuple[int, int | None]] = []
    progress = _Progress(lambda s, b: seen.append((s, b)), 10, 100)
    progress.improved(12, 90)
    assert seen == [(12, 90)]
    progress.improved(11, 95)  # neither better nor tighter: nothing to report
    assert seen == [(12, 90)]
    progress.improved(12, 80)  # a tighter bound alone is news too
    progress.improved(13)  # no bound given: the best known one goes with it
    assert seen == [(12, 90), (12, 80), (13, 80)]
    assert (progress.best, progress.bound) == (13, 80)


def test_compiled_kwarg_still_accepted() -> None:
    inst = sample_instance("sample-small")
    res = solve(inst, compiled=compile_instance(inst), time_limit=5, deterministic=True)
    assert checked(inst, res).score == SAMPLE_FIGURES["sample-small"][1]


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(instances(bookings=True))
def test_exact_optimum_on_tiny_instances(inst: Instance) -> None:
    res = checked(inst, solve(inst, time_limit=5, deterministic=True))
    best = brute_force(inst)
    if best is None:
        assert res.status is Status.INFEASIBLE
        assert res.explanation
        assert locked_conflicts(compile_instance(inst))
    else:
        assert res.status is Status.OPTIMAL
        assert res.score == best == res.bound


def test_locked_conflict_is_infeasible() -> None:
    doc = {
        "format": "slotalloc.instance/1",
        "sessions": [
            {
                "id": "s0",
                "site": "a",
                "start": "2025-04-19T08:00:00+08:00",
                "end": "2025-04-19T12:00:00+08:00",
                "capacity": 1,
                "caregivers": 1,
            }
        ],
        "children": [{"id": f"c{i}", "birth_date": "2023-01-01"} for i in range(2)],
        "requests": [
            {"id": f"r{i}", "children": [f"c{i}"], "preferences": ["s0"]} for i in range(2)
        ],
        "bookings": [{"request": f"r{i}", "session": "s0", "locked": True} for i in range(2)],
    }
    inst = Instance.model_validate(doc)
    res = checked(inst, solve(inst, time_limit=2, deterministic=True))
    assert res.status is Status.INFEASIBLE
    assert res.score is None and res.bound is None and not res.assignments
    assert res.explanation and any(e.rule == "capacity" for e in res.explanation)


def test_bound_never_below_score_with_wall_budget() -> None:
    for name in itertools.islice(SAMPLE_FIGURES, 3):
        inst = sample_instance(name)
        res = checked(inst, solve(inst, time_limit=1.0))
        assert res.bound is not None and res.bound >= res.score


def test_lns_path_is_deterministic_and_verified() -> None:
    from slotalloc.scenarios.xiamen import generate_xiamen

    inst = generate_xiamen(2, 1500, 6)
    # A budget large enough for the multiplier search to run too.
    runs = [solve(inst, time_limit=3.0, deterministic=True, seed=1) for _ in range(2)]
    a, b = runs
    assert a.stats.strategy == "lns"
    steps = a.stats.figures["multiplier_steps"]
    assert isinstance(steps, int) and steps > 0
    assert (a.status, a.score, a.bound, a.assignments) == (
        b.status,
        b.score,
        b.bound,
        b.assignments,
    )
    checked(inst, a)
    fcfs = checked(inst, solve(inst, method="fcfs"))
    assert a.score is not None and fcfs.score is not None and a.score > fcfs.score
