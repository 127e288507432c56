"""Minimal infeasibility explanations: each named locked booking is needed for the conflict."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from slotalloc import Status, solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.solver.infeasibility import locked_conflicts, minimal_conflicts
from slotalloc.verify import locked_conflicts as verifier_conflicts
from slotalloc.verify import verify
from strategies import instances

OLDER = "2022-10-01"


def only_locked(instance: Instance, requests: set[str]) -> Instance:
    """The instance with exactly these bookings, all locked."""
    doc = instance.model_dump(mode="json", exclude_none=True)
    doc["bookings"] = [
        {"request": b.request, "session": b.session, "locked": True}
        for b in instance.bookings
        if b.request in requests
    ]
    return Instance.model_validate(doc)


def assert_minimal(instance: Instance, explained: set[str]) -> None:
    """The verifier (independent code) finds the set conflicting and each one-smaller set not."""
    assert explained
    assert verifier_conflicts(only_locked(instance, explained))
    for b in explained:
        assert not verifier_conflicts(only_locked(instance, explained - {b})), b


def explained_bookings(instance: Instance) -> set[str]:
    return {b for item in minimal_conflicts(compile_instance(instance)) for b in item.bookings}


def world(
    sessions: list[tuple[str, int, int, int, int]],
    requests: list[tuple[str, list[str], list[str]]],
    locked: list[tuple[str, str]],
    births: dict[str, str] | None = None,
    policy: dict[str, Any] | None = None,
) -> Instance:
    """Sessions (id, capacity, caregivers, start hour, end hour); requests (id, children, prefs)."""
    kids = sorted({k for _, ch, _ in requests for k in ch})
    doc: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "sessions": [
            {
                "id": sid,
                "site": "x",
                "start": f"2025-04-19T{h0:02d}:00:00+08:00",
                "end": f"2025-04-19T{h1:02d}:00:00+08:00",
                "capacity": cap,
                "caregivers": cg,
            }
            for sid, cap, cg, h0, h1 in sessions
        ],
        "children": [{"id": k, "birth_date": (births or {}).get(k, OLDER)} for k in kids],
        "requests": [{"id": r, "children": ch, "preferences": p} for r, ch, p in requests],
        "bookings": [{"request": r, "session": s, "locked": True} for r, s in locked],
    }
    if policy is not None:
        doc["policy"] = policy
    return Instance.model_validate(doc)


def test_capacity_conflict_names_capacity_plus_one_bookings() -> None:
    # Five locked in a session of capacity 3 (and a second session with its own lock).
    reqs = [(f"r{i}", [f"c{i}"], ["A"]) for i in range(5)] + [("q", ["cq"], ["B"])]
    inst = world(
        [("A", 3, 5, 8, 12), ("B", 5, 5, 14, 17)],
        reqs,
        [(f"r{i}", "A") for i in range(5)] + [("q", "B")],
    )
    assert len(locked_conflicts(compile_instance(inst))[0].bookings) == 5
    explained = explained_bookings(inst)
    assert len(explained) == 4 and "q" not in explained
    assert_minimal(inst, explained)


def test_overlap_conflict_is_the_pair() -> None:
    # One child locked in two overlapping sessions, plus unrelated locked bookings.
    inst = world(
        [("A", 5, 5, 8, 12), ("B", 5, 5, 10, 11), ("C", 5, 5, 14, 17)],
        [("r1", ["k"], ["A"]), ("r2", ["k"], ["B"]), ("r3", ["j"], ["A"]), ("r4", ["k"], ["C"])],
        [("r3", "A"), ("r1", "A"), ("r2", "B"), ("r4", "C")],
    )
    explained = explained_bookings(inst)
    assert explained == {"r1", "r2"}
    assert_minimal(inst, explained)


def test_caregiver_conflict_and_all_methods_explain_the_same() -> None:
    # Ratio 7: eight older children locked with one caregiver; one more locked elsewhere.
    reqs = [(f"r{i}", [f"c{i}"], ["A"]) for i in range(8)] + [("z", ["cz"], ["B"])]
    inst = world(
        [("A", 20, 1, 8, 12), ("B", 20, 1, 8, 12)],
        reqs,
        [(f"r{i}", "A") for i in range(8)] + [("z", "B")],
    )
    explained = explained_bookings(inst)
    assert len(explained) == 8
    assert_minimal(inst, explained)
    for method in ("auto", "cp-sat", "fcfs"):
        res = solve(inst, method=method, time_limit=1, deterministic=True)  # type: ignore[arg-type]
        assert res.status is Status.INFEASIBLE
        assert verify(inst, res.to_solution()).accepted
        assert res.explanation is not None
        assert {b for item in res.explanation for b in item.bookings} == explained
        assert {item.rule for item in res.explanation} == {"caregivers"}


def test_eligibility_conflict_is_one_booking() -> None:
    inst = world(
        [("A", 5, 5, 8, 12)],
        [("r1", ["baby"], ["A"]), ("r2", ["c2"], ["A"])],
        [("r2", "A"), ("r1", "A")],
        births={"baby": "2025-01-01"},  # 3 months: in no group
    )
    assert explained_bookings(inst) == {"r1"}
    assert_minimal(inst, {"r1"})


def test_consistent_locks_have_no_explanation() -> None:
    inst = world([("A", 5, 5, 8, 12)], [("r1", ["c1"], ["A"])], [("r1", "A")])
    assert minimal_conflicts(compile_instance(inst)) == ()


@pytest.mark.filterwarnings("ignore")
@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
@given(instances(bookings=True))
def test_minimal_on_random_instances(inst: Instance) -> None:
    c = compile_instance(inst)
    full = locked_conflicts(c)
    minimal = minimal_conflicts(c)
    assert bool(full) == bool(minimal) == bool(verifier_conflicts(inst))
    if minimal:
        explained = {b for item in minimal for b in item.bookings}
        assert explained <= {b for item in full for b in item.bookings}
        assert_minimal(inst, explained)
        res = solve(inst, method="fcfs")
        assert res.status is Status.INFEASIBLE and verify(inst, res.to_solution()).accepted
        assert {b for item in res.explanation or () for b in item.bookings} == explained
