"""Rule 9's lazy rows (slotalloc.solver.rows.no_envy).

The incumbent breaks each of its rows; no assignment meeting rule 9 breaks any.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from test_fairness_rules import envy_world

from brute import valid_assignments
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.solver.build import build_formulation
from slotalloc.solver.envy import envy_triples
from slotalloc.solver.rows.no_envy import EnvyRows
from strategies import instances


def broken_rows(rows: EnvyRows, arcs: list[int]) -> int:
    """Rows of the lazy blocks that the assignment, with its z at their best, breaks."""
    v = rows.values(arcs)
    out = 0
    for b in rows.f.blocks:
        if not b.name.startswith("no_justified_envy"):
            continue
        for i in range(b.n_rows):
            lhs = int(np.dot(b.coef[b.ptr[i] : b.ptr[i + 1]], v[b.var[b.ptr[i] : b.ptr[i + 1]]]))
            out += not (b.lo[i] <= lhs <= b.hi[i])
    return out


def test_the_row_of_a_lost_place_cuts_that_plan_only() -> None:
    c = compile_instance(envy_world(None))
    low = [a for a in range(c.n_arcs) if c.request_ids[int(c.arc_req[a])] == "low"]
    assert len(envy_triples(c, low)) == 1
    rows = EnvyRows(build_formulation(c))
    assert rows.add(low, envy_triples(c, low)) == 1
    assert broken_rows(rows, low) == 1
    high = [a for a in range(c.n_arcs) if c.request_ids[int(c.arc_req[a])] == "high"]
    assert broken_rows(rows, high) == 0
    assert broken_rows(rows, []) == 0  # nobody placed: no envy either
    assert rows.add(low, envy_triples(c, low)) == 0  # the same row is not added twice


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(inst=instances(max_requests=5))
def test_every_envy_free_plan_keeps_every_row(inst: Instance) -> None:
    c = compile_instance(inst)
    plans = [list(plan) for plan, _score in valid_assignments(c)]
    rows = EnvyRows(build_formulation(c))
    for plan in plans:
        triples = envy_triples(c, plan)
        if triples:
            rows.add(plan, triples)
            assert broken_rows(rows, plan) >= 1  # its own rows cut it
    for plan in plans:
        if not envy_triples(c, plan):
            assert broken_rows(rows, plan) == 0
