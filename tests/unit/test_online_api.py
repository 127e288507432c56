"""The Allocator's state API: status, occupancy, apply/full_scan, used ids, state/restore.

Also what a caller finds without the source: ``book`` given mappings, ``len``,
iteration and ``in``, and the documented examples, which are run.

Every check of a state goes through ``slotalloc.verify.verify`` on ``export()``,
and ``apply`` is compared with the plain reference model
(``tests/reference_online.py``): the changes are valid exactly when the
reference finds the resulting places valid, and the scan that follows promotes
the same requests.
"""

from __future__ import annotations

import doctest
import json
import math
import random
from fractions import Fraction
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from conftest import DATA, sample_instance
from reference_online import ReferenceOnline, RefError, RefInvalidState
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    DuplicateRequestError,
    IneligibleRequestError,
    InvalidStateError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.io import parse_event
from slotalloc.models import BookEvent, Child, Instance, Request
from slotalloc.online import STATE_FORMAT, Allocator, Placement, RequestStatus
from slotalloc.online.replay import _decisions
from slotalloc.verify import verify
from strategies import instance_dicts


def events_lines() -> list[str]:
    return (DATA / "sample-events.jsonl").read_text(encoding="utf-8").splitlines()


def expected_decisions() -> list[dict[str, Any]]:
    text = (DATA / "sample-events.decisions.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def run(alloc: Allocator, lines: list[str]) -> list[Any]:
    """Apply event lines through the public API; a refused event gives its exception type."""
    out: list[Any] = []
    for line in lines:
        event = parse_event(line)
        try:
            if isinstance(event, BookEvent):
                d = alloc.book(event.request, event.children or ())
                out.append((d.request, d.session))
            else:
                c = alloc.cancel(event.request)
                out.append((c.request, c.session, list(c.promoted)))
        except BookingError as e:
            out.append(type(e))
    return out


def accepted(alloc: Allocator) -> tuple[Any, Any]:
    inst, sol = alloc.export()
    report = verify(inst, sol)
    assert report.accepted, report.verdict
    return inst.model_dump(mode="json"), sol.model_dump(mode="json")


def whole(alloc: Allocator) -> tuple[Any, ...]:
    return alloc.held(), alloc.waitlist(), accepted(alloc)


@pytest.fixture(scope="module")
def streamed() -> tuple[Instance, Allocator]:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst)
    run(alloc, events_lines())
    return inst, alloc


# ---------------------------------------------------------------- status


def test_status_of_every_kind_of_request() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst, used_ids=["old-1"])
    lines = events_lines()
    run(alloc, lines)
    held, waiting = alloc.held(), alloc.waitlist()
    assert held and waiting
    booked = [
        e.request.id
        for e, d in zip(map(parse_event, lines), expected_decisions(), strict=True)
        if isinstance(e, BookEvent) and "error" not in d
    ]
    live = {r["id"] for r in accepted(alloc)[0]["requests"]}
    for rid in [r.id for r in inst.requests] + booked:
        st_ = alloc.status(rid)
        assert st_.request == rid
        assert st_.session == held.get(rid)
        assert st_.waitlisted == (rid in waiting)
        assert st_.position == (waiting.index(rid) + 1 if rid in waiting else None)
        assert st_.cancelled == (rid not in live)
        assert not (st_.cancelled and (st_.waitlisted or st_.session))
    idle = next(r.id for r in inst.requests if r.id in live and r.id not in held)
    assert alloc.status(idle) == RequestStatus(idle, None, False, False)
    assert alloc.status("old-1") == RequestStatus("old-1", None, False, True)
    with pytest.raises(UnknownRequestError):
        alloc.status("never-used")


def test_used_ids_are_refused_and_reported_cancelled() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst, used_ids={"gone-1", "gone-2"})
    before = whole(alloc)
    request = Request(
        id="gone-1", children=[inst.children[0].id], preferences=[inst.sessions[0].id]
    )
    with pytest.raises(DuplicateRequestError):
        alloc.book(request)
    with pytest.raises(AlreadyCancelledError):
        alloc.cancel("gone-2")
    assert whole(alloc) == before
    assert alloc.status("gone-2").cancelled
    # The ids also survive a state round trip.
    again = Allocator.restore(inst, json.loads(json.dumps(alloc.state())))
    with pytest.raises(DuplicateRequestError):
        again.book(request)


# ---------------------------------------------------------------- occupancy


def _check_occupancy(alloc: Allocator) -> None:
    inst, sol = alloc.export()
    assert verify(inst, sol).accepted
    ref = ReferenceOnline(inst.model_copy(update={"requests": ()}))  # its own eligibility code
    requests = {r.id: r for r in inst.requests}
    policy = inst.policy
    order = [a.request for a in sol.assignments]
    for s in inst.sessions:
        occ = alloc.occupancy(s.id)
        holders = [a.request for a in sol.assignments if a.session == s.id]
        assert list(occ.requests) == sorted(holders, key=order.index)
        names = [ref.group(c, s) for rid in holders for c in requests[rid].children]
        assert occ.taken == len(names) == sum(g.taken for g in occ.groups)
        assert occ.capacity == s.capacity and occ.caregivers_available == s.caregivers
        assert occ.staffing == policy.staffing
        total: Fraction | int = 0
        for g, group in zip(occ.groups, policy.groups, strict=True):
            n = names.count(group.name)
            assert (g.group, g.taken, g.ratio) == (group.name, n, group.ratio)
            assert g.cap == s.group_caps.get(group.name, group.max_group_size)
            need = (
                Fraction(n, group.ratio)
                if policy.staffing == "pooled"
                else math.ceil(n / group.ratio)
            )
            assert g.caregivers_needed == need
            total += need
        assert occ.caregivers_needed == total
        data = occ.to_json()
        assert json.loads(json.dumps(data)) == data
        assert data["caregivers_needed"] == pytest.approx(float(total))


def test_occupancy_agrees_with_the_export(streamed: tuple[Instance, Allocator]) -> None:
    _check_occupancy(streamed[1])
    with pytest.raises(UnknownSessionError):
        streamed[1].occupancy("nowhere")


# ---------------------------------------------------------------- random worlds


def _busy(doc: dict[str, Any]) -> Instance:
    for s in doc["sessions"]:
        s["capacity"] = max(1, min(s["capacity"], 4))
        s["caregivers"] = max(1, s["caregivers"])
    return Instance.model_validate(doc)


WORLDS = st.one_of(
    instance_dicts(max_sessions=6, max_children=6, max_requests=6, bookings=True).map(_busy),
    instance_dicts(max_sessions=6, max_children=6, max_requests=6, bookings=True).map(
        Instance.model_validate
    ),
)


def _valid_start(inst: Instance) -> Instance:
    try:
        ReferenceOnline(inst)
    except RefInvalidState as e:
        fields = {name: getattr(inst, name) for name in Instance.model_fields}
        fields["bookings"] = inst.bookings[: e.index]
        inst = Instance.model_validate(fields)
    return inst


def _drive(inst: Instance, rng: random.Random, steps: int) -> tuple[Allocator, ReferenceOnline]:
    """Random books (siblings, new children) and cancels on the engine and the reference."""
    alloc, ref = Allocator(inst), ReferenceOnline(inst)
    sessions = [s.id for s in inst.sessions]
    for i in range(steps):
        if rng.random() < 0.75 or not (ref.held or ref.waitlist):
            kids = rng.sample(sorted(ref.births), k=min(len(ref.births), rng.randint(1, 2)))
            declared: list[Child] = []
            if rng.random() < 0.3:
                declared = [Child(id=f"n{i}", birth_date=ref.births[kids[0]])]
                kids = [f"n{i}"]
            prefs = rng.sample(sessions, k=rng.randint(1, len(sessions)))
            request = Request(id=f"q{i}", children=kids, preferences=prefs)
            try:
                want = ref.book(request, declared)
            except RefError:  # no preference could ever take it: refused (FORMAT §3)
                with pytest.raises(IneligibleRequestError):
                    alloc.book(request, declared)
                continue
            assert alloc.book(request, declared).session == want
        else:
            rid = rng.choice([r for r, _ in ref.held] + ref.waitlist)
            assert list(alloc.cancel(rid).promoted) == [Placement(*p) for p in ref.cancel(rid)]
    assert alloc.held() == ref.held_map() and alloc.waitlist() == ref.waitlist
    return alloc, ref


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(doc=WORLDS, seed=st.integers(0, 2**32 - 1))
def test_apply_is_all_or_nothing_and_agrees_with_the_reference(doc: Instance, seed: int) -> None:
    inst = _valid_start(doc)
    rng = random.Random(seed)
    alloc, ref = _drive(inst, rng, rng.randint(0, 25))
    _check_occupancy(alloc)
    assert alloc.full_scan() == []  # the invariant holds between operations
    held = ref.held_map()
    requests = ref.requests
    moves = [(r, rng.choice(requests[r].preferences)) for r in held if rng.random() < 0.3]
    moved = {r for r, _ in moves}
    drops = [r for r in held if r not in moved and rng.random() < 0.2]
    places = [(r, rng.choice(requests[r].preferences)) for r in ref.waitlist if rng.random() < 0.4]
    if rng.random() < 0.1 and held:
        drops.append(next(iter(held)))  # sometimes a request changed twice
    rng.shuffle(drops)
    # The reference: the new places, valid or not, then the literal scan.
    new = {**held, **dict(moves), **dict(places)}
    for r in drops:
        new.pop(r, None)
    twice = len({r for r, _ in moves} | set(drops) | {r for r, _ in places}) < (
        len(moves) + len(drops) + len(places)
    )
    ok = not twice and ref.valid(list(new.items()))
    event("apply: valid" if ok else "apply: refused")
    before = whole(alloc)
    if not ok:
        with pytest.raises(InvalidStateError):
            alloc.apply(moves, drops, places)
        assert whole(alloc) == before
        return
    order = list(requests)
    ref.held = list(new.items())
    placed = {r for r, _ in places}
    ref.waitlist = [w for w in ref.waitlist if w not in placed] + sorted(drops, key=order.index)
    expected = [Placement(*p) for p in ref.scan()]
    assert alloc.apply(moves, drops, places) == expected
    assert alloc.held() == ref.held_map() and alloc.waitlist() == ref.waitlist
    accepted(alloc)
    _check_occupancy(alloc)
    # Later operations keep agreeing (the invariant was restored by the scan).
    for rid in list(ref.held_map())[:2]:
        assert list(alloc.cancel(rid).promoted) == [Placement(*p) for p in ref.cancel(rid)]
    assert alloc.held() == ref.held_map() and alloc.waitlist() == ref.waitlist


def test_apply_refusals_name_the_problem_and_change_nothing(
    streamed: tuple[Instance, Allocator],
) -> None:
    inst, base = streamed
    alloc = Allocator.restore(inst, base.state())
    held, waiting = alloc.held(), alloc.waitlist()
    h = next(iter(held))
    w = waiting[0]
    before = whole(alloc)
    cases: list[tuple[type[Exception], str, dict[str, Any]]] = [
        (UnknownRequestError, "unknown request", {"drops": ["nobody"]}),
        (UnknownSessionError, "unknown session", {"moves": [(h, "nowhere")]}),
        (InvalidStateError, "holds no place", {"drops": [w]}),
        (InvalidStateError, "not waitlisted", {"places": [(h, held[h])]}),
        (InvalidStateError, "rule 7", {"drops": [h, h]}),
        (
            InvalidStateError,
            "rule 1",
            {"moves": [(h, next(s.id for s in inst.sessions if s.id != held[h]))]},
        ),
    ]
    # A waitlisted request fits none of its preferences (the invariant), so
    # placing it in its first breaks rule 2, 3, 4 or 5.
    first = next(r for r in _book_requests() if r.id == w).preferences[0]
    cases.append((InvalidStateError, "rule [2-5]", {"places": [(w, first)]}))
    for exc, text, kwargs in cases:
        with pytest.raises(exc, match=text):
            alloc.apply(**kwargs)
        assert whole(alloc) == before


def _book_requests() -> list[Request]:
    return [e.request for e in map(parse_event, events_lines()) if isinstance(e, BookEvent)]


def test_apply_with_nothing_to_change_is_a_full_scan(streamed: tuple[Instance, Allocator]) -> None:
    inst, base = streamed
    alloc = Allocator.restore(inst, base.state())
    before = whole(alloc)
    assert alloc.apply() == []
    assert whole(alloc) == before


# ---------------------------------------------------------------- state and restore


def test_state_is_plain_json_and_restores_exactly(streamed: tuple[Instance, Allocator]) -> None:
    inst, _ = streamed
    lines = events_lines()
    half = len(lines) // 2
    alloc = Allocator(inst)
    run(alloc, lines[:half])
    state = alloc.state()
    assert state["format"] == STATE_FORMAT
    text = json.dumps(state)
    again = Allocator.restore(inst, json.loads(text))
    assert json.dumps(again.state()) == text
    assert whole(again) == whole(alloc)
    for rid in alloc.held():
        assert again.status(rid) == alloc.status(rid)
    # Both decide the rest of the stream alike, and end in the same state.
    assert run(again, lines[half:]) == run(alloc, lines[half:])
    assert whole(again) == whole(alloc)
    assert json.dumps(again.state()) == json.dumps(alloc.state())


def test_state_of_a_replayed_stream_keeps_its_json_sources() -> None:
    inst = sample_instance("sample-events")
    lines = events_lines()
    by_replay = Allocator(inst)
    list(_decisions(by_replay, lines))  # sources kept as the events' own JSON
    by_api = Allocator(inst)
    run(by_api, lines)
    restored = Allocator.restore(inst, json.loads(json.dumps(by_replay.state())))
    assert whole(restored) == whole(by_api) == whole(by_replay)


def test_restore_refuses_a_bad_state(streamed: tuple[Instance, Allocator]) -> None:
    inst, alloc = streamed
    good = alloc.state()

    def edited(change: Any) -> dict[str, Any]:
        state = json.loads(json.dumps(good))
        change(state)
        return state

    rows = good["requests"]
    held_at = next(i for i, r in enumerate(rows) if r[1] == "held")
    wait_at = next(i for i, r in enumerate(rows) if r[1] == "waitlisted")

    def overfill(state: dict[str, Any]) -> None:
        # every waitlisted request takes its first preference: some rule breaks
        for row in state["requests"]:
            if row[1] == "waitlisted":
                src = row[3] or next(r for r in inst.requests if r.id == row[0]).model_dump()
                row[1], row[2] = "held", src["preferences"][0]
        state["waitlist"] = []

    def free_one(state: dict[str, Any]) -> None:
        # a holder vanishes: its place is free and a waitlisted request may fit it
        row = state["requests"].pop(held_at)
        state["used"].append(row[0])

    bad = [
        edited(lambda s: s.update(format="other")),
        edited(lambda s: s.pop("waitlist")),
        edited(lambda s: s["requests"].append(s["requests"][0])),
        edited(lambda s: s["requests"][held_at].__setitem__(2, "nowhere")),
        edited(lambda s: s["requests"][wait_at].__setitem__(1, "lost")),
        edited(lambda s: s["waitlist"].pop()),
        edited(lambda s: s["children"].append(s["children"][0])),
        edited(overfill),
    ]
    for state in bad:
        with pytest.raises(InvalidStateError):
            Allocator.restore(inst, state)
    # Freeing a place without the scan breaks the invariant when someone fits it.
    state = edited(free_one)
    try:
        again = Allocator.restore(inst, state)
    except InvalidStateError as e:
        assert "fits" in str(e)
    else:
        assert again.full_scan() == []


# ---------------------------------------------------------------- found without the source


def test_book_takes_mappings_as_the_models_would() -> None:
    inst = sample_instance("sample-events")
    lines = events_lines()
    by_models, by_dicts = Allocator(inst), Allocator(inst)
    want = run(by_models, lines)
    got: list[Any] = []
    for line in lines:
        event_ = parse_event(line)
        try:
            if isinstance(event_, BookEvent):
                req = event_.request.model_dump(mode="json", exclude_none=True)
                kids = [c.model_dump(mode="json") for c in event_.children or ()]
                d = by_dicts.book(req, kids)
                got.append((d.request, d.session))
            else:
                c = by_dicts.cancel(event_.request)
                got.append((c.request, c.session, list(c.promoted)))
        except BookingError as e:
            got.append(type(e))
    assert got == want
    assert whole(by_dicts) == whole(by_models)


def test_book_refuses_what_is_neither_a_model_nor_a_mapping() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst)
    before = whole(alloc)
    sid = inst.sessions[0].id
    for bad in ("r-1", 7, None, [("id", "r-1")]):
        with pytest.raises(TypeError, match="Request or a mapping"):
            alloc.book(bad)  # type: ignore[arg-type]
    request = {"id": "new-1", "children": ["k-1"], "preferences": [sid]}
    with pytest.raises(TypeError, match="Child objects or mappings"):
        alloc.book(request, ["k-1"])  # type: ignore[list-item]
    with pytest.raises(ValidationError):
        alloc.book({"id": "new-1", "children": [], "preferences": [sid]})
    with pytest.raises(ValidationError):
        alloc.book(request, [{"id": "k-1", "birth_date": "not a date"}])
    assert whole(alloc) == before


def test_len_iter_and_in_read_the_live_requests(streamed: tuple[Instance, Allocator]) -> None:
    alloc = streamed[1]
    exported = [r.id for r in alloc.export()[0].requests]
    statuses = list(alloc)
    assert len(alloc) == len(statuses) == len(exported)
    assert [s.request for s in statuses] == exported
    assert statuses == [alloc.status(rid) for rid in exported]
    assert not any(s.cancelled for s in statuses)
    assert [s.request for s in statuses if s.waitlisted] == alloc.waitlist()
    assert all(rid in alloc for rid in exported)
    gone = next(r for r in _book_requests() if alloc.status(r.id).cancelled).id
    assert gone not in alloc and "never-used" not in alloc
    assert 3 not in alloc


def _examples_of(obj: Any) -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(recurse=False)
    return [t for t in finder.find(obj, getattr(obj, "__qualname__", None)) if t.examples]


def test_the_documented_examples_run() -> None:
    """The Allocator example builds ``alloc``; every method example runs on a fresh one."""
    (setup,) = _examples_of(Allocator)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)

    def check(test: doctest.DocTest, globs: dict[str, Any]) -> None:
        test.globs = globs
        result = runner.run(test, clear_globs=False)
        assert result.failed == 0 and result.attempted == len(test.examples), test.name

    check(setup, {})
    documented = [
        "held",
        "waitlist",
        "status",
        "requests_of",
        "occupancy",
        "occupancies",
        "__len__",
        "__iter__",
        "__contains__",
        "book",
        "cancel",
    ]
    for name in documented:
        tests = _examples_of(getattr(Allocator, name))
        assert tests, f"Allocator.{name} has no example"
        for test in tests:
            fresh: dict[str, Any] = {}
            check(setup, fresh)
            check(test, fresh)
