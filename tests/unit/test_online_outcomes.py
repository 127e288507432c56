"""Online outcomes that say why: reasons, refusals, positions, queries, a batch start.

Tiny hand-made worlds, one per reason; every state reached is exported and
verified.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from conftest import DATA, sample_instance
from slotalloc import solve
from slotalloc.exceptions import (
    AlreadyCancelledError,
    IneligibleRequestError,
    UnknownRequestError,
)
from slotalloc.models import Child, Instance, Request
from slotalloc.online import Allocator, RequestStatus
from slotalloc.rules import Rule
from slotalloc.service.ledger import DurableAllocator, LedgerMismatchError
from slotalloc.verify import verify

DAY = "2025-04-19"
INFANT, TODDLER, OLDER = "2024-08-01", "2023-09-01", "2022-12-01"
NEWBORN = "2025-03-20"  # under a month old on DAY: in no age group


def sess(sid: str, h0: int = 9, h1: int = 10, *, cap: int = 10, carers: int = 5, **kw: Any):
    return {
        "id": sid,
        "site": kw.pop("site", "A"),
        "start": f"{DAY}T{h0:02d}:00:00+08:00",
        "end": f"{DAY}T{h1:02d}:00:00+08:00",
        "capacity": cap,
        "caregivers": carers,
        **kw,
    }


def world(sessions: list[dict[str, Any]], children: dict[str, str], **policy: Any) -> Instance:
    return Instance(
        name="tiny",
        policy={"preset": "cn-2019", **policy},
        sessions=sessions,
        children=[
            {"id": k, "birth_date": v, "household": f"h-{k[:2]}"} for k, v in children.items()
        ],
        requests=[],
    )


def req(rid: str, kids: list[str], prefs: list[str], priority: int = 0) -> Request:
    return Request(id=rid, children=kids, preferences=prefs, priority=priority)


def accepted(alloc: Allocator) -> None:
    inst, sol = alloc.export()
    report = verify(inst, sol)
    assert report.accepted, report.verdict


# ---------------------------------------------------------------- reasons


def test_a_placed_request_has_no_reason() -> None:
    alloc = Allocator(world([sess("s1")], {"c1": OLDER}))
    d = alloc.book(req("r1", ["c1"], ["s1"]))
    assert d.session == "s1" and d.reason is None
    accepted(alloc)


@pytest.mark.parametrize(
    ("session", "children", "held", "extra", "reason"),
    [
        # the room is full
        (sess("s1", cap=1), {"c1": OLDER, "c2": OLDER}, [["c1"]], {}, Rule.CAPACITY),
        # the infants' cap of the session
        (
            sess("s1", group_caps={"infant": 1}),
            {"c1": INFANT, "c2": INFANT},
            [["c1"]],
            {},
            Rule.GROUP_CAP,
        ),
        # one caregiver, three infants already: a fourth needs a second caregiver
        (
            sess("s1", carers=1),
            {"c1": INFANT, "c2": INFANT, "c3": INFANT, "c4": INFANT},
            [["c1"], ["c2"], ["c3"]],
            {},
            Rule.CAREGIVERS,
        ),
    ],
)
def test_a_waitlisted_book_names_the_rule_its_first_preference_breaks(
    session: dict[str, Any],
    children: dict[str, str],
    held: list[list[str]],
    extra: dict[str, Any],
    reason: Rule,
) -> None:
    alloc = Allocator(world([session], children, **extra))
    for i, kids in enumerate(held):
        assert alloc.book(req(f"h{i}", kids, ["s1"])).session == "s1"
    last = sorted(children)[-1]
    d = alloc.book(req("late", [last], ["s1"]))
    assert d.waitlisted and d.reason is reason
    assert reason.value in repr(d)
    accepted(alloc)


def test_overlap_and_per_child_cap_are_named() -> None:
    inst = world(
        [sess("a", 9, 11), sess("b", 10, 12), sess("c", 13, 14)],
        {"c1": OLDER},
        max_sessions_per_child=1,
    )
    alloc = Allocator(inst)
    assert alloc.book(req("r1", ["c1"], ["a"])).session == "a"
    assert alloc.book(req("r2", ["c1"], ["b"])).reason is Rule.OVERLAP
    # c does not overlap a, but the child already has its one session
    assert alloc.book(req("r3", ["c1"], ["c"])).reason is Rule.PER_CHILD_CAP
    accepted(alloc)


def test_a_first_preference_the_child_is_too_young_for_says_eligibility() -> None:
    inst = world([sess("young", min_months=24), sess("any", cap=1)], {"c1": INFANT, "c2": OLDER})
    alloc = Allocator(inst)
    alloc.book(req("r0", ["c2"], ["any"]))
    d = alloc.book(req("r1", ["c1"], ["young", "any"]))
    assert d.waitlisted and d.reason is Rule.ELIGIBILITY
    assert Rule.ELIGIBILITY.code == "2-eligibility" and Rule.GROUP_CAP.code == "3-group-cap"


# ---------------------------------------------------------------- refusals


def test_a_request_no_preference_could_ever_take_is_refused_and_changes_nothing() -> None:
    inst = world([sess("s1"), sess("s2", min_months=24)], {"c1": INFANT})
    alloc = Allocator(inst)
    before = (alloc.held(), alloc.waitlist(), alloc.export()[0].model_dump())
    baby = Child(id="baby", birth_date=NEWBORN, household="h-new")
    with pytest.raises(IneligibleRequestError, match="could never be placed") as err:
        alloc.book(req("r1", ["baby"], ["s1", "s2"]), [baby])
    assert NEWBORN not in str(err.value)  # no birth date in a message
    # a sibling pair: the infant fits s1 but not s2, the newborn neither
    with pytest.raises(IneligibleRequestError):
        alloc.book(req("r2", ["c1", "baby"], ["s1", "s2"]), [baby])
    assert (alloc.held(), alloc.waitlist(), alloc.export()[0].model_dump()) == before
    # nothing was used: the id and the child may come again, eligible this time
    older = Child(id="baby", birth_date=OLDER)
    assert alloc.book(req("r1", ["baby"], ["s2"]), [older]).session == "s2"
    accepted(alloc)


def test_a_second_cancel_says_already_cancelled() -> None:
    alloc = Allocator(world([sess("s1")], {"c1": OLDER}))
    alloc.book(req("r1", ["c1"], ["s1"]))
    alloc.cancel("r1")
    with pytest.raises(AlreadyCancelledError, match="already cancelled"):
        alloc.cancel("r1")
    with pytest.raises(UnknownRequestError):
        alloc.cancel("never")
    assert alloc.status("r1") == RequestStatus("r1", None, False, True)


# ---------------------------------------------------------------- the read side


def test_waitlist_positions_follow_the_scan_order() -> None:
    alloc = Allocator(world([sess("s1", cap=1)], {f"c{i}": OLDER for i in range(5)}))
    for i in range(5):
        alloc.book(req(f"r{i}", [f"c{i}"], ["s1"]))
    assert [alloc.status(f"r{i}").position for i in range(5)] == [None, 1, 2, 3, 4]
    alloc.cancel("r2")
    assert [alloc.status(r).position for r in ("r1", "r3", "r4")] == [1, 2, 3]
    promoted = alloc.cancel("r0").promoted
    assert [p.request for p in promoted] == ["r1"]
    assert [alloc.status(r).position for r in ("r1", "r3", "r4")] == [None, 1, 2]


def test_requests_by_child_and_by_household() -> None:
    inst = world(
        [sess("s1", cap=1), sess("s2", 11, 12)], {"aa1": OLDER, "aa2": OLDER, "bb1": OLDER}
    )
    alloc = Allocator(inst)
    alloc.book(req("r1", ["aa1"], ["s1"]))
    alloc.book(req("r2", ["aa2", "bb1"], ["s1", "s2"]))
    alloc.book(req("r3", ["bb1"], ["s1"]))
    alloc.book(req("r4", ["aa2"], ["s1"]))
    alloc.cancel("r4")
    assert [s.request for s in alloc.requests_of(child="bb1")] == ["r2", "r3"]
    assert [s.request for s in alloc.requests_of(household="h-aa")] == ["r1", "r2"]
    assert alloc.requests_of(child="nobody") == []
    got = {s.request: s for s in alloc.requests_of(household="h-bb")}
    assert got["r3"].waitlisted and got["r3"].position == 1
    with pytest.raises(ValueError, match="exactly one"):
        alloc.requests_of()


def test_occupancies_count_the_waiting_and_carry_the_session_facts() -> None:
    inst = world(
        [sess("s1", cap=1, site="A"), sess("s2", 14, 15, cap=1, site="B")],
        {f"c{i}": OLDER for i in range(4)},
    )
    alloc = Allocator(inst)
    alloc.book(req("r0", ["c0"], ["s1"]))
    alloc.book(req("r1", ["c1"], ["s2"]))
    alloc.book(req("r2", ["c2"], ["s1", "s2"]))
    alloc.book(req("r3", ["c3"], ["s2"]))
    occ = {o.session: o for o in alloc.occupancies()}
    assert (occ["s1"].waiting, occ["s2"].waiting) == (1, 2)
    assert occ["s2"].site == "B" and occ["s2"].start.startswith(f"{DAY}T14:00")
    assert alloc.occupancy("s2") == occ["s2"]
    assert alloc.occupancy("s1").to_json()["waiting"] == 1


# ---------------------------------------------------------------- batch, then online


def test_from_result_takes_a_solution_as_well_as_a_result() -> None:
    inst = sample_instance("sample-events")
    res = solve(inst, method="fcfs")
    a = Allocator.from_result(inst, res)
    b = Allocator.from_result(inst, res.to_solution())
    assert a.held() == b.held() and a.waitlist() == b.waitlist()
    accepted(b)


def test_a_durable_service_starts_from_a_batch_plan(tmp_path: Path) -> None:
    inst = sample_instance("sample-events")
    sol = solve(inst, method="fcfs").to_solution()
    db = tmp_path / "l.db"
    with DurableAllocator(inst, db, start=sol) as da:
        assert da.held() == Allocator.from_result(inst, sol).held()
        rid = next(iter(da.held()))
        da.cancel(rid, privileged=True)
        state = (da.held(), da.waitlist())
    with DurableAllocator(inst, db, start=sol) as again:
        assert (again.held(), again.waitlist()) == state
        inst2, sol2 = again.export()
        assert verify(inst2, sol2).accepted
    # the ledger is bound to its start: the bare instance is another world
    with pytest.raises(LedgerMismatchError):
        DurableAllocator(inst, db)


def test_export_cli_folds_the_places_held_into_bookings(tmp_path: Path) -> None:
    from slotalloc.cli import main
    from slotalloc.io import load_instance, load_solution

    src = DATA / "sample-events.json"
    inst = sample_instance("sample-events")
    db = tmp_path / "online.sqlite"
    with DurableAllocator(inst, db) as da:
        da.cancel(next(iter(da.held())))
        held = da.held()
        head = da.head
    out, sol = tmp_path / "deadline.json", tmp_path / "held.json"
    args = ["export", str(src), "--db", str(db), "-o", str(out), "--held", str(sol)]
    assert main(args) == 0
    deadline = load_instance(out)
    assert {b.request: b.session for b in deadline.bookings} == held
    assert not any(b.locked for b in deadline.bookings)
    assert verify(deadline, load_solution(sol)).accepted
    with DurableAllocator(inst, db) as again:  # the export wrote nothing
        assert again.head == head
    assert main([*args, "--locked"]) == 0
    assert all(b.locked for b in load_instance(out).bookings)
    # a ledger that is not there, and a plan the ledger was not started from: exit 2
    assert main(["export", str(src), "--db", str(tmp_path / "none"), "-o", str(out)]) == 2
    plan = tmp_path / "plan.json"
    plan.write_text(solve(inst, method="fcfs").to_solution().model_dump_json(), encoding="utf-8")
    assert main([*args, "--solution", str(plan)]) == 2


def test_serve_refuses_a_plan_that_breaks_a_rule(tmp_path: Path, capsys: Any) -> None:
    from slotalloc.cli import main

    src = DATA / "sample-events.json"
    inst = sample_instance("sample-events")
    sol = solve(inst, method="fcfs").to_solution()
    a = sol.assignments[0]
    other = next(b for b in sol.assignments if b.request != a.request and b.session != a.session)
    twice = sol.model_copy(update={"assignments": (*sol.assignments, other.model_copy(
        update={"session": a.session}))})  # fmt: skip
    plan = tmp_path / "bad-plan.json"
    plan.write_text(twice.model_dump_json(), encoding="utf-8")
    db = tmp_path / "late.sqlite"
    code = main(["serve", str(src), "--solution", str(plan), "--db", str(db), "--port", "0"])
    assert code == 2
    err = capsys.readouterr().err
    assert str(plan) in err and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad-plan.json"]  # nothing written
