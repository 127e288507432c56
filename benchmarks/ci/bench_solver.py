"""Optimiser benchmarks (CI tier, well under a minute): compile, model build, small solves.

Everything is deterministic: fixed generator seeds and CP-SAT deterministic
work budgets. Run with ``pytest benchmarks/ci/bench_solver.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slotalloc import compile_instance, load_instance, solve
from slotalloc.compile import Compiled
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.build import build_formulation
from slotalloc.solver.cpsat_model import to_cp_model

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"


@pytest.fixture(scope="module")
def district() -> Instance:
    return generate_xiamen(1, 3000, 12)


@pytest.fixture(scope="module")
def city_compiled() -> Compiled:
    return compile_instance(generate_xiamen(1, 25000, 91))


def test_compile_district(benchmark, district: Instance) -> None:  # type: ignore[no-untyped-def]
    c = benchmark(compile_instance, district)
    assert c.n_requests == 3000


def test_model_build_city(benchmark, city_compiled: Compiled) -> None:  # type: ignore[no-untyped-def]
    """Formulation plus CP-SAT proto; the target is <= 1 s per 100k candidate arcs."""

    def build() -> object:
        return to_cp_model(build_formulation(city_compiled))

    benchmark.pedantic(build, rounds=3, iterations=1)
    per_100k = benchmark.stats.stats.mean * 100_000 / city_compiled.n_arcs
    benchmark.extra_info["seconds_per_100k_arcs"] = round(per_100k, 3)
    assert per_100k < 2.0


@pytest.mark.parametrize("name", ["sample-small", "sample-rebalance", "sample-tight"])
def test_solve_sample(benchmark, name: str) -> None:  # type: ignore[no-untyped-def]
    inst = load_instance(DATA / f"{name}.json")
    res = benchmark.pedantic(
        solve, args=(inst,), kwargs={"time_limit": 1.0, "deterministic": True}, rounds=1
    )
    benchmark.extra_info["score"] = res.score
    benchmark.extra_info["bound"] = res.bound
    assert res.bound is not None and res.score is not None and res.bound >= res.score


def test_solve_district_budget(benchmark, district: Instance) -> None:  # type: ignore[no-untyped-def]
    res = benchmark.pedantic(
        solve, args=(district,), kwargs={"time_limit": 2.0, "deterministic": True}, rounds=1
    )
    benchmark.extra_info["score"] = res.score
    benchmark.extra_info["bound"] = res.bound
    assert res.bound is not None and res.score is not None and res.bound >= res.score
