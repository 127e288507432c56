"""Which limit binds per session (the report's table and sessions.csv)."""

from __future__ import annotations

from test_fairness_rules import INFANT, OLDER, floor_world, sess, solution, world

from slotalloc.analysis.binding import binding_limits


def test_three_infants_with_one_caregiver_bind_the_caregivers() -> None:
    inst = floor_world(None)
    (limit,) = binding_limits(inst, solution(inst, [(f"r-i{k}", "s1") for k in range(3)]))
    assert (limit.children, limit.capacity, limit.caregivers_needed) == (3, 7, 1)
    assert limit.binds == "caregivers"


def test_a_full_room_binds_the_room() -> None:
    inst = floor_world(None)
    (limit,) = binding_limits(inst, solution(inst, [(f"r-o{k}", "s1") for k in range(7)]))
    assert (limit.children, limit.binds) == (7, "room")


def test_an_empty_session_binds_nothing_and_a_full_group_its_cap() -> None:
    kids = {"i0": INFANT, "o0": OLDER}
    inst = world(
        [sess("s1", cap=10, carers=5, group_caps={"infant": 1}), sess("s2", 11, 12)],
        kids,
        [("r-i0", ["i0"], ["s1"], 0), ("r-o0", ["o0"], ["s2"], 0)],
    )
    limits = {x.session: x for x in binding_limits(inst, solution(inst, [("r-i0", "s1")]))}
    assert limits["s1"].binds == "group cap (infant)"
    assert limits["s2"].binds == ""
