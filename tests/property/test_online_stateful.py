"""Random book/cancel sequences: the engine and the plain reference decide alike.

Small worlds from :mod:`strategies` (overlapping and touching sessions, group
caps, age limits, both staffing modes, per-child caps), siblings, children
declared on the way, and every kind of refused event. After every step the
places held and the waitlist must equal the reference's, and the exported state
must be accepted by the verifier.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from reference_online import ReferenceOnline, RefError, RefInvalidState
from slotalloc.exceptions import BookingError, IneligibleRequestError
from slotalloc.models import Child, Instance, Request
from slotalloc.online import Allocator
from slotalloc.verify import verify
from strategies import birth_dates, instance_dicts


def _with_bookings(inst: Instance, n: int) -> Instance:
    fields = {name: getattr(inst, name) for name in Instance.model_fields}
    fields["bookings"] = inst.bookings[:n]
    return Instance.model_validate(fields)


def _busy(doc: dict[str, Any]) -> Instance:
    # Sessions that can hold someone, but only a few: waitlists form and cancels promote.
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


class OnlineMachine(RuleBasedStateMachine):
    alloc: Allocator
    ref: ReferenceOnline

    @initialize(inst=WORLDS)
    def start(self, inst: Instance) -> None:
        try:
            ReferenceOnline(inst)
        except RefInvalidState as e:
            inst = _with_bookings(inst, e.index)  # keep the valid prefix of the bookings
        self.ref = ReferenceOnline(inst)
        self.alloc = Allocator(inst)
        self.session_ids = [s.id for s in inst.sessions]
        self.next_id = 0
        self.step = 0

    def _fresh(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    @rule(data=st.data())
    def book(self, data: st.DataObject) -> None:
        known = sorted(self.ref.births)
        declared: list[Child] = []
        n_new = data.draw(st.integers(0, 2), label="new children")
        new_ids = [self._fresh("n") for _ in range(n_new)]
        for cid in new_ids:
            declared.append(Child(id=cid, birth_date=data.draw(birth_dates())))
        if known and data.draw(st.integers(0, 4)) == 0:
            # re-declare a known child, usually with its own birth date
            cid = data.draw(st.sampled_from(known))
            same = data.draw(st.integers(0, 3)) > 0
            born = self.ref.births[cid] if same else data.draw(birth_dates())
            declared.append(Child(id=cid, birth_date=born))
        if declared and data.draw(st.integers(0, 15)) == 0:
            declared.append(declared[0])  # declared twice
        pool = known + new_ids + (["ghost"] if data.draw(st.integers(0, 15)) == 0 else [])
        kids = data.draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3, unique=True))
        sessions = self.session_ids + (["nowhere"] if data.draw(st.integers(0, 15)) == 0 else [])
        prefs = data.draw(
            st.lists(st.sampled_from(sessions), min_size=1, max_size=len(sessions), unique=True)
        )
        used = sorted(self.ref.used)
        if used and data.draw(st.integers(0, 15)) == 0:
            rid = data.draw(st.sampled_from(used))
        else:
            rid = self._fresh("q")
        request = Request(
            id=rid, children=kids, preferences=prefs, priority=data.draw(st.integers(0, 9))
        )
        try:
            expected: Any = self.ref.book(request, declared)
        except RefError:
            expected = RefError
        try:
            got: Any = self.alloc.book(request, declared)
        except BookingError:
            got = RefError
        event(
            "book: refused"
            if expected is RefError
            else "book: waitlisted"
            if expected is None
            else "book: placed"
        )
        if expected is RefError:
            assert got is RefError
        else:
            assert got is not RefError
            assert got.session == expected and got.waitlisted == (expected is None)

    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        held = [r for r, _ in self.ref.held]
        if held and data.draw(st.integers(0, 3)) > 0:
            rid = data.draw(st.sampled_from(held))
        else:
            pool = [*held, *self.ref.waitlist, *sorted(self.ref.used)[:3], "nobody"]
            rid = data.draw(st.sampled_from(pool))
        try:
            expected: Any = self.ref.cancel(rid)
        except RefError:
            expected = RefError
        try:
            got: Any = [tuple(p) for p in self.alloc.cancel(rid).promoted]
        except BookingError:
            got = RefError
        assert got == expected
        event("cancel: promoted" if got and got is not RefError else "cancel: no promotion")

    @invariant()
    def same_state(self) -> None:
        if not hasattr(self, "alloc"):
            return
        assert self.alloc.held() == self.ref.held_map()
        assert self.alloc.waitlist() == self.ref.waitlist

    @invariant()
    def every_rule_holds(self) -> None:
        if not hasattr(self, "alloc"):
            return
        self.step += 1
        if self.step % 3:
            return
        inst, sol = self.alloc.export()
        report = verify(inst, sol)
        assert report.accepted, report.verdict


OnlineMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestOnlineMachine = OnlineMachine.TestCase


@settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.large_base_example],
)
@given(inst=WORLDS, rnd=st.randoms(use_true_random=False))
def test_long_random_sequences_match_the_reference(inst: Instance, rnd: random.Random) -> None:
    """Longer runs than the state machine reaches, with many promotions."""
    try:
        ReferenceOnline(inst)
    except RefInvalidState as e:
        inst = _with_bookings(inst, e.index)
    ref = ReferenceOnline(inst)
    alloc = Allocator(inst)
    sessions = [s.id for s in inst.sessions]
    births = [c.birth_date for c in inst.children]
    promotions = 0
    for step in range(120):
        if rnd.random() < 0.55:
            declared = []
            if rnd.random() < 0.3:
                declared.append(Child(id=f"n{step}", birth_date=rnd.choice(births)))
            pool = sorted(ref.births)
            kids = rnd.sample(pool, min(len(pool), 1 + (rnd.random() < 0.3)))
            prefs = rnd.sample(sessions, rnd.randint(1, min(3, len(sessions))))
            request = Request(id=f"q{step}", children=kids, preferences=prefs)
            try:
                expected = ref.book(request, declared)
            except RefError:  # no preference could ever take it (FORMAT §3)
                with pytest.raises(IneligibleRequestError):
                    alloc.book(request, declared)
                continue
            got = alloc.book(request, declared)
            assert got.session == expected
        else:
            pool = [r for r, _ in ref.held] + ref.waitlist[:2]
            if not pool:
                continue
            rid = rnd.choice(pool)
            expected_p = ref.cancel(rid)
            got_p = [tuple(p) for p in alloc.cancel(rid).promoted]
            assert got_p == expected_p
            promotions += bool(got_p)
        assert alloc.waitlist() == ref.waitlist
        if step % 10 == 0:
            out, sol = alloc.export()
            assert verify(out, sol).accepted
    assert alloc.held() == ref.held_map()  # dict equality: the order of places is free
    event(
        f"promotions: {min(promotions, 10)}+" if promotions >= 10 else f"promotions: {promotions}"
    )
