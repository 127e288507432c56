"""Fairness audit figures, and the metamorphic property: residency never matters."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slotalloc import Instance, solve
from slotalloc.analysis.fairness import audit
from strategies import instance_dicts


def test_audit_counts_children_by_residency_and_age_group() -> None:
    inst = Instance(
        sites=[{"id": "A", "district": "Huli"}],
        sessions=[
            {
                "id": "s",
                "site": "A",
                "start": "2025-04-19T09:00:00+08:00",
                "end": "2025-04-19T10:00:00+08:00",
                "capacity": 1,
                "caregivers": 1,
            },
            {
                "id": "t",
                "site": "A",
                "start": "2025-04-19T10:00:00+08:00",
                "end": "2025-04-19T11:00:00+08:00",
                "capacity": 1,
                "caregivers": 1,
            },
        ],
        children=[
            {"id": "a", "birth_date": "2023-01-01", "residency": "local"},
            {"id": "b", "birth_date": "2024-08-01", "residency": "non_local"},
            {"id": "c", "birth_date": "2023-02-01", "residency": "non_local"},
        ],
        requests=[
            {"id": "r1", "children": ["a"], "preferences": ["s"]},
            {"id": "r2", "children": ["b"], "preferences": ["s"]},
            {"id": "r3", "children": ["c"], "preferences": ["s", "t"]},
        ],
    )
    res = solve(inst, method="fcfs")
    fa = audit(inst, res.assignments)
    assert (fa.overall.requesting, fa.overall.served) == (3, 2)
    assert fa.overall.ranks[:2] == (1, 1)
    by_res = {r.value: (r.requesting, r.served) for r in fa.dimension("residency")}
    assert by_res == {"local": (1, 1), "non_local": (2, 1)}
    by_age = {r.value: (r.requesting, r.served) for r in fa.dimension("age_group")}
    assert by_age == {"older": (2, 2), "infant": (1, 0)}
    assert [r.value for r in fa.dimension("district")] == ["Huli"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instance_dicts(bookings=True), st.randoms(use_true_random=False))
def test_relabelling_residency_or_household_never_changes_the_allocation(doc, rnd) -> None:  # type: ignore[no-untyped-def]
    inst = Instance.model_validate(doc)
    for child in doc["children"]:
        child["residency"] = rnd.choice(["local", "non_local", None, "x"])
        child["household"] = rnd.choice(["h1", "h2", None])
    relabelled = Instance.model_validate(doc)
    a = solve(inst, method="fcfs")
    b = solve(relabelled, method="fcfs")
    assert (a.status, a.score, a.assignments) == (b.status, b.score, b.assignments)
