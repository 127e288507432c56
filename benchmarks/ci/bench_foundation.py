"""Foundation benchmarks (CI tier): load, compile, baseline and verifier at city scale.

Deterministic: a generated Xiamen city weekend (seed 1, 25,000 requests, 91 sites).
Run with ``pytest benchmarks/ci/bench_foundation.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from slotalloc import compile_instance, load_instance, solve, verify
from slotalloc.compile import Compiled
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen_json


@pytest.fixture(scope="module")
def city_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("city") / "city.json"
    path.write_text(generate_xiamen_json(1, 25000, 91), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def city(city_file: Path) -> Instance:
    return load_instance(city_file)


@pytest.fixture(scope="module")
def city_compiled(city: Instance) -> Compiled:
    return compile_instance(city)


def test_load_city(benchmark, city_file: Path) -> None:  # type: ignore[no-untyped-def]
    inst = benchmark.pedantic(load_instance, args=(city_file,), rounds=3, iterations=1)
    assert len(inst.requests) == 25000


def test_load_and_compile_city(benchmark, city_file: Path) -> None:  # type: ignore[no-untyped-def]
    def run() -> Compiled:
        return compile_instance(load_instance(city_file))

    c = benchmark.pedantic(run, rounds=3, iterations=1)
    assert c.n_requests == 25000


def test_compile_city(benchmark, city: Instance) -> None:  # type: ignore[no-untyped-def]
    c = benchmark(compile_instance, city)
    assert c.n_arcs > 25000


def test_fcfs_city(benchmark, city: Instance, city_compiled: Compiled) -> None:  # type: ignore[no-untyped-def]
    res = benchmark.pedantic(
        solve,
        args=(city,),
        kwargs={"method": "fcfs", "compiled": city_compiled},
        rounds=3,
        iterations=1,
    )
    assert res.score is not None


def test_verify_city(benchmark, city: Instance, city_compiled: Compiled) -> None:  # type: ignore[no-untyped-def]
    sol = solve(city, method="fcfs", compiled=city_compiled).to_solution()
    report = benchmark.pedantic(verify, args=(city, sol), rounds=3, iterations=1)
    assert report.accepted
