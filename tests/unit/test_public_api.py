"""The public surface: every name in __all__ imports; nothing happens at import."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import slotalloc

DATA = Path(__file__).parents[1] / "data"


def test_every_name_in_all_imports() -> None:
    for name in slotalloc.__all__:
        assert getattr(slotalloc, name) is not None, name


def test_all_has_no_duplicates_and_is_sorted_for_readers() -> None:
    assert len(set(slotalloc.__all__)) == len(slotalloc.__all__)


def test_import_has_no_side_effects() -> None:
    code = (
        "import logging, warnings, sys\n"
        # dependencies may set their own filters; slotalloc itself must not
        "import numpy, pydantic\n"
        "before = list(warnings.filters)\n"
        "root = list(logging.getLogger().handlers)\n"
        "import slotalloc\n"
        "assert warnings.filters == before, 'warning filters changed'\n"
        "assert logging.getLogger().handlers == root, 'root logger touched'\n"
        "hs = logging.getLogger('slotalloc').handlers\n"
        "assert any(isinstance(h, logging.NullHandler) for h in hs)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "" and out.stderr == ""


def test_python_constructors_take_json_shaped_values() -> None:
    req = slotalloc.Request(id="r-1", children=["c-1"], preferences=["s1", "s2"])
    child = slotalloc.Child(id="c-1", birth_date="2024-01-30")
    assert req.preferences == ("s1", "s2")
    assert child.birth_date.isoformat() == "2024-01-30"


def test_solve_stats_write_the_solution_files_stats_in_order() -> None:
    stats = slotalloc.SolveStats(
        solver="auto",
        compile_seconds=0.1,
        figures={"lp_bound": 7, "strategy": "lns"},
        min_group_rate="4/5",
        solve_seconds=1.5,
    )
    assert list(stats.to_json()) == [
        "solver",
        "compile_seconds",
        "lp_bound",
        "strategy",
        "min_group_rate",
        "solve_seconds",
    ]
    assert stats.strategy == "lns"
    assert slotalloc.SolveStats.from_json(stats.to_json()) == stats
    assert slotalloc.SolveStats().to_json() == {}
    # A value of another type than the attribute's stays a figure, verbatim.
    odd = slotalloc.SolveStats.from_json({"solver": 3, "x": 1})
    assert odd.solver is None and odd.to_json() == {"solver": 3, "x": 1}
    with pytest.raises(ValueError, match="both"):
        slotalloc.SolveStats(solver="fcfs", figures={"solver": "fcfs"})


def test_result_stats_as_a_mapping_still_read_but_warn() -> None:
    inst = slotalloc.load_instance(DATA / "sample-small.json")
    res = slotalloc.solve(inst, method="fcfs")
    assert isinstance(res.stats, slotalloc.SolveStats)
    assert res.stats.solver == "fcfs" and res.stats.solve_seconds is not None
    with pytest.warns(DeprecationWarning, match="deprecated"):
        assert res.stats["solver"] == "fcfs"
    with pytest.warns(DeprecationWarning):
        assert res.stats.get("strategy") is None
    with pytest.warns(DeprecationWarning):
        assert dict(res.stats) == res.stats.to_json()
    with pytest.warns(DeprecationWarning):
        assert "solve_seconds" in res.stats
    # A mapping given to a Result is read as its figures.
    built = slotalloc.Result(slotalloc.Status.FEASIBLE, 1, None, stats={"solver": "x", "k": 2})
    assert built.stats == slotalloc.SolveStats(solver="x", figures={"k": 2})
    assert built.to_solution().stats == {"solver": "x", "k": 2}
