"""The public surface: every name in __all__ imports; nothing happens at import."""

from __future__ import annotations

import subprocess
import sys

import slotalloc


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
