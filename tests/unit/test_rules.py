"""One tiny hand-made instance per rule, solved by every solver and verified.

The expected assignment of first-come-first-served is known by hand for each
case; every result, of every solver, goes through the independent verifier.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from brute import brute_force
from conftest import SAMPLE_FIGURES, sample_fcfs_solution, sample_instance
from slotalloc import Instance, Result, Status, solve
from slotalloc.verify import verify
from strategies import instances

DAY = "2025-04-19"


def sess(
    sid: str, h0: int = 9, h1: int = 10, *, cap: int = 10, carers: int = 5, **kw: Any
) -> dict[str, Any]:
    return {
        "id": sid,
        "site": "A",
        "start": f"{DAY}T{h0:02d}:00:00+08:00",
        "end": f"{DAY}T{h1:02d}:00:00+08:00",
        "capacity": cap,
        "caregivers": carers,
        **kw,
    }


INFANT, TODDLER, OLDER = "2024-08-01", "2023-09-01", "2022-12-01"


def make(
    sessions: list[dict[str, Any]],
    children: dict[str, str],
    requests: list[tuple[str, list[str], list[str]]],
    **extra: Any,
) -> Instance:
    return Instance(
        name="tiny",
        sessions=sessions,
        children=[{"id": k, "birth_date": v} for k, v in children.items()],
        requests=[{"id": r, "children": c, "preferences": p} for r, c, p in requests],
        **extra,
    )


def checked(inst: Instance, method: str = "fcfs", **kw: Any) -> Result:
    res = solve(inst, method=method, **kw)  # type: ignore[arg-type]
    report = verify(inst, res.to_solution())
    assert report.accepted, report.violations
    assert report.score == res.score
    if res.bound is not None and res.score is not None:
        assert res.bound >= res.score
    return res


def placed(res: Result) -> dict[str, str]:
    return {a.request: a.session for a in res.assignments}


def test_capacity() -> None:
    inst = make(
        [sess("s", cap=2)],
        {f"k{i}": OLDER for i in range(3)},
        [(f"r{i}", [f"k{i}"], ["s"]) for i in range(3)],
    )
    assert placed(checked(inst)) == {"r0": "s", "r1": "s"}


def test_group_cap_override_may_exceed_the_policy() -> None:
    kids = {f"k{i}": INFANT for i in range(12)}
    reqs = [(f"r{i}", [f"k{i}"], ["s"]) for i in range(12)]
    small = make([sess("s", cap=20, carers=9, group_caps={"infant": 2})], kids, reqs)
    assert len(placed(checked(small))) == 2
    large = make([sess("s", cap=20, carers=9, group_caps={"infant": 11})], kids, reqs)
    assert len(placed(checked(large))) == 11  # above max_group_size 10


def test_per_group_staffing_rounds_up_per_group() -> None:
    # 1 caregiver: 3 infants (ratio 3) fill it; a toddler then needs a second one.
    inst = make(
        [sess("s", carers=1)],
        {"i1": INFANT, "i2": INFANT, "i3": INFANT, "i4": INFANT, "t": TODDLER},
        [
            ("a", ["i1"], ["s"]),
            ("b", ["i2"], ["s"]),
            ("c", ["i3"], ["s"]),
            ("d", ["i4"], ["s"]),
            ("e", ["t"], ["s"]),
        ],
    )
    assert placed(checked(inst)) == {"a": "s", "b": "s", "c": "s"}


def test_pooled_staffing_is_an_exact_rational_sum() -> None:
    # 1 infant (1/3) + 3 older (3/7) = 16/21 <= 1; a 4th older child makes 19/21;
    # a 2nd infant would make 23/21 > 1.
    policy = {"preset": "cn-2019", "staffing": "pooled"}
    inst = make(
        [sess("s", carers=1)],
        {"i": INFANT, "o1": OLDER, "o2": OLDER, "o3": OLDER, "i2": INFANT, "o4": OLDER},
        [
            ("a", ["i"], ["s"]),
            ("b", ["o1"], ["s"]),
            ("c", ["o2"], ["s"]),
            ("d", ["o3"], ["s"]),
            ("e", ["i2"], ["s"]),
            ("f", ["o4"], ["s"]),
        ],
        policy=policy,
    )
    assert set(placed(checked(inst))) == {"a", "b", "c", "d", "f"}


def test_overlapping_sessions_but_touching_ones_are_fine() -> None:
    inst = make(
        [sess("am", 8, 12), sess("mid", 11, 13), sess("noon", 12, 14)],
        {"k": OLDER},
        [("r1", ["k"], ["am"]), ("r2", ["k"], ["mid"]), ("r3", ["k"], ["noon"])],
    )
    assert placed(checked(inst)) == {"r1": "am", "r3": "noon"}


def test_same_session_through_two_requests_is_an_overlap() -> None:
    inst = make(
        [sess("s")], {"k": OLDER, "j": OLDER}, [("r1", ["k"], ["s"]), ("r2", ["j", "k"], ["s"])]
    )
    assert placed(checked(inst)) == {"r1": "s"}


def test_per_child_cap() -> None:
    inst = make(
        [sess("a", 8, 9), sess("b", 9, 10), sess("c", 10, 11)],
        {"k": OLDER},
        [("r1", ["k"], ["a"]), ("r2", ["k"], ["b"]), ("r3", ["k"], ["c"])],
        policy={"preset": "cn-2019", "max_sessions_per_child": 2},
    )
    assert placed(checked(inst)) == {"r1": "a", "r2": "b"}


def test_siblings_are_all_or_nothing() -> None:
    inst = make(
        [sess("s", cap=2), sess("t", cap=3)],
        {"a": OLDER, "b": OLDER, "c": OLDER},
        [("solo", ["a"], ["s"]), ("twins", ["b", "c"], ["s", "t"])],
    )
    assert placed(checked(inst)) == {"solo": "s", "twins": "t"}


def test_bookings_kept_moved_or_dropped_and_locked_first() -> None:
    inst = make(
        [sess("s", cap=1), sess("t", cap=1)],
        {"a": OLDER, "b": OLDER},
        [("free", ["a"], ["s", "t"]), ("held", ["b"], ["s"])],
        bookings=[
            {"request": "free", "session": "s"},
            {"request": "held", "session": "s", "locked": True},
        ],
    )
    res = checked(inst)
    # the locked booking is kept, the unlocked one cannot stay and is dropped
    assert placed(res) == {"held": "s"}
    assert res.score == 1000 - 100000


def test_locked_bookings_that_break_a_rule_make_the_instance_infeasible() -> None:
    inst = make(
        [sess("a", 8, 12), sess("b", 11, 13)],
        {"k": OLDER},
        [("r1", ["k"], ["a"]), ("r2", ["k"], ["b"])],
        bookings=[
            {"request": "r1", "session": "a", "locked": True},
            {"request": "r2", "session": "b", "locked": True},
        ],
    )
    res = checked(inst)
    assert res.status is Status.INFEASIBLE
    assert res.explanation and res.explanation[0].rule == "overlap"
    assert set(res.explanation[0].bookings) == {"r1", "r2"}


def test_locked_booking_of_an_ineligible_child_is_infeasible() -> None:
    inst = make(
        [sess("s", min_months=30)],
        {"k": TODDLER},
        [("r", ["k"], ["s"])],
        bookings=[{"request": "r", "session": "s", "locked": True}],
    )
    res = checked(inst)
    assert res.status is Status.INFEASIBLE
    assert res.explanation is not None and res.explanation[0].rule == "eligibility"


@pytest.mark.parametrize("name", sorted(SAMPLE_FIGURES))
def test_fcfs_reproduces_the_reference_baseline(name: str) -> None:
    inst = sample_instance(name)
    res = checked(inst)
    ref = sample_fcfs_solution(name)
    assert res.score == SAMPLE_FIGURES[name][0] == ref.score
    assert set(res.assignments) == set(ref.assignments)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(bookings=True))
def test_every_fcfs_solution_is_accepted_by_the_verifier(inst: Instance) -> None:
    res = checked(inst)
    report_infeasible = res.status is Status.INFEASIBLE
    assert report_infeasible == bool(res.explanation)


def test_rows_implied_by_request_once_are_left_out_and_the_rest_kept() -> None:
    from slotalloc.compile import compile_instance
    from slotalloc.solver.build import build_formulation

    # k's one request spans two overlapping sessions: request-once covers both its
    # overlap row and its cap row. j is in two requests: both rows stay.
    inst = make(
        [sess("a", 8, 12), sess("b", 9, 11), sess("c", 13, 14)],
        {"k": OLDER, "j": OLDER},
        [("rk", ["k"], ["a", "b", "c"]), ("rj1", ["j"], ["a", "c"]), ("rj2", ["j"], ["b"])],
        policy={"preset": "cn-2019", "max_sessions_per_child": 1},
    )
    c = compile_instance(inst)
    f = build_formulation(c)
    blocks = {b.name: b for b in f.blocks}
    req = {int(c.arc_req[v]) for v in blocks["overlap"].var.tolist()}
    assert req == {c.request_ids.index("rj1"), c.request_ids.index("rj2")}
    assert blocks["child_cap"].n_rows == 1
    res = checked(inst, method="cp-sat", time_limit=2, deterministic=True)
    assert res.status is Status.OPTIMAL
    assert res.score == brute_force(inst)
    assert len(placed(res)) == 2  # j keeps to one session (cap 1), k takes one
