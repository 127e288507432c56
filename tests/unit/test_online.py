"""The online engine against FORMAT §3, the sample stream and the plain reference model."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import DATA, sample_instance
from reference_online import ReferenceOnline, RefInvalidState, reference_replay
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    ChildConflictError,
    DuplicateRequestError,
    InvalidStateError,
    UnknownChildError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.io import parse_event
from slotalloc.models import BookEvent, Child, Instance, Request
from slotalloc.online import Allocator, replay
from slotalloc.solve import solve
from slotalloc.verify import verify
from strategies import instances


def events_lines() -> list[str]:
    return (DATA / "sample-events.jsonl").read_text(encoding="utf-8").splitlines()


def expected_decisions() -> list[dict[str, Any]]:
    text = (DATA / "sample-events.decisions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def assert_export_accepted(alloc: Allocator) -> None:
    inst, sol = alloc.export()
    report = verify(inst, sol)
    assert report.accepted, report.verdict
    assert len(sol.assignments) == len(alloc.held())


def with_bookings(inst: Instance, bookings: Any) -> Instance:
    fields = {name: getattr(inst, name) for name in Instance.model_fields}
    fields["bookings"] = tuple(bookings)
    return Instance.model_validate(fields)


def snapshot(alloc: Allocator) -> tuple[Any, ...]:
    inst, sol = alloc.export()
    return alloc.held(), alloc.waitlist(), inst, sol


# ---------------------------------------------------------------- the sample stream


def test_sample_stream_decisions_exactly() -> None:
    got = list(replay(sample_instance("sample-events"), events_lines()))
    expected = expected_decisions()
    assert len(got) == len(expected) == 400
    for g, e in zip(got, expected, strict=True):
        if "error" in e:
            assert set(g) == {"event", "error"} and g["event"] == e["event"]
            assert isinstance(g["error"], str) and g["error"]
        else:
            assert g == e
            assert list(g) == list(e)  # exactly the FORMAT keys, in its order


def test_sample_stream_through_the_api_and_export() -> None:
    alloc = Allocator(sample_instance("sample-events"))
    for n, (line, expected) in enumerate(zip(events_lines(), expected_decisions(), strict=True)):
        event = parse_event(line)
        try:
            if isinstance(event, BookEvent):
                d = alloc.book(event.request, event.children or ())
                got: dict[str, Any] = {
                    "event": n,
                    "request": d.request,
                    "session": d.session,
                    "waitlisted": d.waitlisted,
                }
            else:
                c = alloc.cancel(event.request)
                got = {
                    "event": n,
                    "request": c.request,
                    "cancelled": True,
                    "promoted": [{"request": r, "session": s} for r, s in c.promoted],
                }
        except BookingError as e:
            got = {"event": n, "error": str(e)}
            assert "error" in expected
            continue
        assert got == expected
        if n % 50 == 0:
            assert_export_accepted(alloc)
    assert_export_accepted(alloc)


def test_sample_stream_matches_the_reference_model() -> None:
    inst = sample_instance("sample-events")
    lines = events_lines()[:200]
    mine = list(replay(inst, lines))
    ref = list(reference_replay(inst, lines))
    for a, b in zip(mine, ref, strict=True):
        if "error" in b:
            assert "error" in a
        else:
            assert a == b


def test_export_is_the_starting_instance_plus_accepted_minus_cancelled() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst)
    lines = events_lines()
    cancelled: set[str] = set()
    booked: list[str] = []
    for line, d in zip(lines, expected_decisions(), strict=True):
        event = parse_event(line)
        if "error" in d:
            continue  # refused (FORMAT §3): changes nothing
        if isinstance(event, BookEvent):
            alloc.book(event.request, event.children or ())
            booked.append(event.request.id)
        else:
            alloc.cancel(event.request)
            cancelled.add(event.request)
    out, sol = alloc.export()
    start_ids = [r.id for r in inst.requests if r.id not in cancelled]
    assert [r.id for r in out.requests] == start_ids + [r for r in booked if r not in cancelled]
    assert out.bookings == ()
    assert out.sessions == inst.sessions and out.policy == inst.policy
    assert [c.id for c in out.children][: len(inst.children)] == [c.id for c in inst.children]
    assert sol.status.value == "feasible" and sol.bound is None
    assert verify(out, sol).accepted


# ---------------------------------------------------------------- errors change nothing


def _child(cid: str, born: str) -> Child:
    return Child(id=cid, birth_date=born)


def test_errors_raise_the_library_exception_and_change_nothing() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst)
    s0, s1 = inst.sessions[0].id, inst.sessions[1].id
    known = inst.children[0]
    alloc.book(
        Request(id="x-1", children=["new-1"], preferences=[s0]), [_child("new-1", "2024-01-10")]
    )
    # a waitlisted request too, so that the waitlist is part of what must not change
    for i in range(40):
        alloc.book(
            Request(id=f"fill-{i}", children=[f"f-{i}"], preferences=[s0]),
            [_child(f"f-{i}", "2023-06-01")],
        )
    assert alloc.waitlist()
    booked = {b.request for b in inst.bookings}
    idle = next(r.id for r in inst.requests if r.id not in booked)
    before = snapshot(alloc)
    cases: list[tuple[type[BookingError], Any]] = [
        (
            DuplicateRequestError,
            lambda: alloc.book(Request(id="x-1", children=[known.id], preferences=[s0])),
        ),
        (
            DuplicateRequestError,
            lambda: alloc.book(
                Request(id=inst.requests[0].id, children=[known.id], preferences=[s0])
            ),
        ),
        (
            UnknownChildError,
            lambda: alloc.book(Request(id="x-2", children=["nobody"], preferences=[s0])),
        ),
        (
            UnknownSessionError,
            lambda: alloc.book(Request(id="x-3", children=[known.id], preferences=[s0, "nowhere"])),
        ),
        (
            ChildConflictError,
            lambda: alloc.book(
                Request(id="x-4", children=["new-2"], preferences=[s1]),
                [_child("new-2", "2024-01-10"), _child("new-2", "2024-01-10")],
            ),
        ),
        (
            ChildConflictError,
            lambda: alloc.book(
                Request(id="x-5", children=[known.id], preferences=[s1]),
                [_child(known.id, "2020-01-01")],
            ),
        ),
        (
            UnknownSessionError,  # a valid new child in a refused event is not added
            lambda: alloc.book(
                Request(id="x-6", children=["new-3"], preferences=["nowhere"]),
                [_child("new-3", "2024-01-10")],
            ),
        ),
        (UnknownRequestError, lambda: alloc.cancel("never")),
        (UnknownRequestError, lambda: alloc.cancel(idle)),
    ]
    for kind, call in cases:
        with pytest.raises(kind):
            call()
        assert snapshot(alloc) == before
    # the refused events used no id: they may now be booked
    alloc.book(
        Request(id="x-2", children=[known.id], preferences=[s1]),
        [_child(known.id, known.birth_date.isoformat())],
    )
    with pytest.raises(UnknownChildError):
        alloc.book(Request(id="x-7", children=["new-3"], preferences=[s1]))
    # cancelled twice
    alloc.cancel("x-1")
    with pytest.raises(AlreadyCancelledError, match="already cancelled"):
        alloc.cancel("x-1")
    with pytest.raises(DuplicateRequestError):
        alloc.book(Request(id="x-1", children=[known.id], preferences=[s1]))


def test_starting_requests_without_booking_cannot_be_cancelled() -> None:
    inst = sample_instance("sample-events")
    booked = {b.request for b in inst.bookings}
    idle = next(r.id for r in inst.requests if r.id not in booked)
    alloc = Allocator(inst)
    with pytest.raises(UnknownRequestError):
        alloc.cancel(idle)
    assert idle not in alloc.waitlist()


# ---------------------------------------------------------------- starting state


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(bookings=True, max_requests=8))
def test_invalid_starting_bookings_name_the_first_bad_one(inst: Instance) -> None:
    try:
        ref = ReferenceOnline(inst)
    except RefInvalidState as e:
        with pytest.raises(InvalidStateError, match=rf"^bookings\[{e.index}\]"):
            Allocator(inst)
        with pytest.raises(InvalidStateError):
            replay(inst, [])
        return
    alloc = Allocator(inst)
    assert alloc.held() == {rid: sid for rid, sid in ref.held}
    assert alloc.waitlist() == []
    assert_export_accepted(alloc)


@pytest.mark.parametrize(
    "name", ["sample-small", "sample-rebalance", "sample-tight", "sample-events"]
)
def test_from_result_of_fcfs(name: str) -> None:
    inst = sample_instance(name)
    result = solve(inst, method="fcfs")
    alloc = Allocator.from_result(inst, result)
    places = [(a.request, a.session) for a in result.assignments]
    ref, promoted = ReferenceOnline.from_places(inst, places)
    assert [tuple(p) for p in alloc.initial_promotions] == promoted
    assert alloc.held() == {
        r.id: ref.held_map()[r.id] for r in inst.requests if r.id in ref.held_map()
    }
    assert alloc.waitlist() == ref.waitlist
    assert_export_accepted(alloc)
    # then online: cancel every other place held, same promotions as the reference
    for rid in list(alloc.held())[::2]:
        if rid in alloc.held():
            assert [tuple(p) for p in alloc.cancel(rid).promoted] == ref.cancel(rid)
    assert alloc.waitlist() == ref.waitlist
    assert_export_accepted(alloc)


def test_from_result_refuses_an_invalid_result() -> None:
    inst = sample_instance("sample-small")
    result = solve(inst, method="fcfs")
    bad = type(result)(
        status=result.status,
        score=result.score,
        bound=None,
        assignments=(*result.assignments, result.assignments[0]),
    )
    with pytest.raises(InvalidStateError, match="rule 7"):
        Allocator.from_result(inst, bad)


def test_importing_the_engine_loads_no_solver() -> None:
    code = (
        "import sys, slotalloc.online, slotalloc.online.replay;"
        "bad = [m for m in sys.modules if m.split('.')[0] in ('ortools', 'highspy', 'pyscipopt')];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_siblings_are_all_or_nothing_and_waitlist_is_fifo() -> None:
    inst = Instance.model_validate(
        {
            "sessions": [
                {
                    "id": "s",
                    "site": "a",
                    "start": "2025-04-19T08:00:00+08:00",
                    "end": "2025-04-19T12:00:00+08:00",
                    "capacity": 2,
                    "caregivers": 2,
                },
            ],
            "children": [
                {"id": "a1", "birth_date": "2024-01-01"},
                {"id": "a2", "birth_date": "2024-01-01"},
                {"id": "b1", "birth_date": "2023-01-01"},
                {"id": "c1", "birth_date": "2023-02-01"},
            ],
            "requests": [],
        }
    )
    alloc = Allocator(inst)
    assert alloc.book(Request(id="b", children=["b1"], preferences=["s"])).session == "s"
    d = alloc.book(Request(id="a", children=["a1", "a2"], preferences=["s"]))
    assert d.waitlisted and d.session is None
    assert alloc.book(Request(id="c", children=["c1"], preferences=["s"])).session == "s"
    assert alloc.waitlist() == ["a"]
    assert alloc.cancel("b").promoted == []  # one place free, two children waiting
    promoted = alloc.cancel("c").promoted
    assert [tuple(p) for p in promoted] == [("a", "s")]
    assert alloc.waitlist() == []
    assert_export_accepted(alloc)
