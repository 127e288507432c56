"""Tests of the independent verifier (FORMAT §2)."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from conftest import DATA
from slotalloc.io import load_instance, load_solution
from slotalloc.models import Instance, Solution, Status
from slotalloc.verify import (
    UnscorableAssignmentError,
    VerificationReport,
    Violation,
    age_in_months,
    check_assignment,
    eligible_group,
    locked_conflicts,
    score_of,
    verify,
)

DAY = "2025-04-19"

# Ages on 2025-04-19 under cn-2019 (infant [6, 12), toddler [12, 24), older [24, 36)).
INFANT = "2024-08-01"  # 8 months
TODDLER = "2024-01-01"  # 15 months
OLDER = "2022-10-01"  # 30 months


# ---------------------------------------------------------------- builders


def sess(
    sid: str,
    start: str = "08:00",
    end: str = "12:00",
    *,
    capacity: int = 20,
    caregivers: int = 10,
    day: str = DAY,
    offset: str = "+08:00",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": sid,
        "site": "X",
        "start": f"{day}T{start}:00{offset}",
        "end": f"{day}T{end}:00{offset}",
        "capacity": capacity,
        "caregivers": caregivers,
        **extra,
    }


def kid(cid: str, birth: str = TODDLER) -> dict[str, Any]:
    return {"id": cid, "birth_date": birth}


def req(rid: str, children: list[str], prefs: list[str], priority: int = 0) -> dict[str, Any]:
    return {"id": rid, "children": children, "preferences": prefs, "priority": priority}


def make(
    sessions: list[dict[str, Any]],
    children: list[dict[str, Any]],
    requests: list[dict[str, Any]],
    **extra: Any,
) -> Instance:
    return Instance(sessions=sessions, children=children, requests=requests, **extra)


def sol(
    pairs: list[tuple[str, str]],
    score: int | None = None,
    *,
    status: str = "feasible",
    bound: int | None = None,
) -> Solution:
    return Solution(
        status=status,
        score=score,
        bound=bound,
        assignments=[{"request": r, "session": s} for r, s in pairs],
    )


def infeasible_claim() -> Solution:
    return Solution(
        status="infeasible",
        explanation=[{"rule": "4-overlap", "message": "Locked bookings overlap."}],
    )


def rules(violations: list[Violation] | tuple[Violation, ...]) -> list[str]:
    return [v.rule for v in violations]


def one_child_each(n: int, birth: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """n children of one birth date, each with a request for session s."""
    children = [kid(f"c{i}", birth) for i in range(n)]
    requests = [req(f"r{i}", [f"c{i}"], ["s"]) for i in range(n)]
    return children, requests


def all_to_s(n: int) -> list[tuple[str, str]]:
    return [(f"r{i}", "s") for i in range(n)]


# ---------------------------------------------------------------- the samples


@pytest.mark.parametrize(
    ("name", "expected"),
    [("sample-small", 66560), ("sample-rebalance", 270790), ("sample-tight", 243010)],
)
def test_sample_fcfs_solutions_are_accepted(name: str, expected: int) -> None:
    instance = load_instance(DATA / f"{name}.json")
    solution = load_solution(DATA / f"{name}.fcfs-solution.json")
    report = verify(instance, solution)
    assert report.violations == ()
    assert report.accepted and report.valid
    assert report.score == expected
    assert not report.instance_infeasible
    assert report.verdict == f"Accepted: a valid feasible solution with score {expected}."


def test_sample_with_a_wrong_score_is_rejected() -> None:
    instance = load_instance(DATA / "sample-small.json")
    good = load_solution(DATA / "sample-small.fcfs-solution.json")
    bad = good.model_copy(update={"score": 66561})
    report = verify(instance, bad)
    assert not report.accepted and report.valid
    assert rules(report.violations) == ["score"]
    assert report.score == 66560


# ---------------------------------------------------------------- ages and eligibility


@pytest.mark.parametrize(
    ("birth", "on", "age"),
    [
        ("2023-01-31", "2023-02-28", 0),
        ("2023-01-31", "2023-03-30", 1),
        ("2023-01-31", "2023-03-31", 2),
        ("2024-02-29", "2025-02-28", 11),
        ("2024-02-29", "2025-03-01", 12),
        ("2023-05-02", "2025-04-19", 23),
        ("2025-04-20", "2025-04-19", -1),
        ("2025-05-01", "2025-04-19", -1),
        ("2025-04-19", "2025-04-19", 0),
        ("2025-06-01", "2025-04-19", -2),
    ],
)
def test_age_in_completed_months(birth: str, on: str, age: int) -> None:
    assert age_in_months(dt.date.fromisoformat(birth), dt.date.fromisoformat(on)) == age


def _months_policy() -> dict[str, Any]:
    return {
        "age_groups": [
            {"name": "newborn", "min_months": 0, "max_months": 1, "ratio": 3, "max_group_size": 9},
            {"name": "young", "min_months": 1, "max_months": 2, "ratio": 3, "max_group_size": 9},
        ]
    }


def test_child_born_on_the_31st() -> None:
    # Groups span [0, 2) months: age 0 and 1 are eligible, age 2 is not.
    instance = make(
        [
            sess("feb28", day="2023-02-28"),
            sess("mar30", day="2023-03-30"),
            sess("mar31", day="2023-03-31"),
        ],
        [kid("c", "2023-01-31")],
        [
            req("r-feb28", ["c"], ["feb28"]),
            req("r-mar30", ["c"], ["mar30"]),
            req("r-mar31", ["c"], ["mar31"]),
        ],
        policy=_months_policy(),
    )
    assert eligible_group(instance, "c", "feb28").name == "newborn"  # type: ignore[union-attr]
    assert eligible_group(instance, "c", "mar30").name == "young"  # type: ignore[union-attr]
    assert eligible_group(instance, "c", "mar31") is None
    assert check_assignment(instance, [("r-feb28", "feb28")]) == []
    assert check_assignment(instance, [("r-mar30", "mar30")]) == []
    (v,) = check_assignment(instance, [("r-mar31", "mar31")])
    assert v.rule == "2-eligibility"
    assert (v.sessions, v.requests, v.children) == (("mar31",), ("r-mar31",), ("c",))
    assert "2 months" in v.message


def test_age_uses_the_date_in_the_sessions_own_offset() -> None:
    # Both sessions start at the instant 2023-03-31T01:00Z; their own dates differ.
    instance = make(
        [
            sess("east", "09:00", "10:00", day="2023-03-31", offset="+08:00"),
            sess("west", "20:00", "21:00", day="2023-03-30", offset="-05:00"),
        ],
        [kid("c", "2023-01-31")],
        [req("r", ["c"], ["east", "west"])],
        policy=_months_policy(),
    )
    assert eligible_group(instance, "c", "east") is None  # 2023-03-31: 2 months
    assert eligible_group(instance, "c", "west") is not None  # 2023-03-30: 1 month
    assert rules(check_assignment(instance, [("r", "east")])) == ["2-eligibility"]
    assert check_assignment(instance, [("r", "west")]) == []


def test_child_not_yet_born_is_never_eligible() -> None:
    instance = make([sess("s")], [kid("c", "2025-05-01")], [req("r", ["c"], ["s"])])
    (v,) = check_assignment(instance, [("r", "s")])
    assert v.rule == "2-eligibility"
    assert "not yet born" in v.message
    assert v.children == ("c",)


def test_ineligible_outside_the_session_range_or_any_group() -> None:
    instance = make(
        [sess("big", min_months=24), sess("any")],
        [kid("t", TODDLER), kid("o", OLDER), kid("baby", "2025-01-01")],
        [req("rt", ["t"], ["big"]), req("ro", ["o"], ["big"]), req("rb", ["baby"], ["any"])],
    )
    violations = check_assignment(instance, [("rt", "big"), ("ro", "big"), ("rb", "any")])
    assert rules(violations) == ["2-eligibility", "2-eligibility"]
    assert [v.children for v in violations] == [("t",), ("baby",)]
    assert "[24, 36)" in violations[0].message  # the session range, default max applied


def test_age_in_session_range_but_in_no_group() -> None:
    gap_policy = {
        "age_groups": [
            {"name": "a", "min_months": 0, "max_months": 6, "ratio": 3, "max_group_size": 9},
            {"name": "b", "min_months": 12, "max_months": 24, "ratio": 5, "max_group_size": 9},
        ]
    }
    instance = make([sess("s")], [kid("c", INFANT)], [req("r", ["c"], ["s"])], policy=gap_policy)
    (v,) = check_assignment(instance, [("r", "s")])
    assert v.rule == "2-eligibility"
    assert "none of the policy's age groups" in v.message


# ---------------------------------------------------------------- rule 3


def test_capacity() -> None:
    children, requests = one_child_each(3, TODDLER)
    instance = make([sess("s", capacity=2)], children, requests)
    (v,) = check_assignment(instance, all_to_s(3))
    assert v.rule == "3-capacity"
    assert v.sessions == ("s",)
    assert v.requests == ("r0", "r1", "r2")
    assert check_assignment(instance, all_to_s(2)) == []


def test_group_cap_from_session() -> None:
    children, requests = one_child_each(2, INFANT)
    instance = make([sess("s", group_caps={"infant": 1})], children, requests)
    (v,) = check_assignment(instance, all_to_s(2))
    assert v.rule == "3-group-cap"
    assert v.children == ("c0", "c1")
    assert "'infant'" in v.message


def test_group_cap_from_policy_and_a_larger_override() -> None:
    # cn-2019 infants: max group size 10; 11 infants need ceil(11/3) = 4 caregivers.
    children, requests = one_child_each(11, INFANT)
    plain = make([sess("s", capacity=30, caregivers=4)], children, requests)
    assert rules(check_assignment(plain, all_to_s(11))) == ["3-group-cap"]
    assert check_assignment(plain, all_to_s(10)) == []
    larger = make(
        [sess("s", capacity=30, caregivers=4, group_caps={"infant": 12})], children, requests
    )
    assert check_assignment(larger, all_to_s(11)) == []


def test_caregivers_per_group() -> None:
    # ratio 3: 4 infants need 2 caregivers
    children, requests = one_child_each(4, INFANT)
    one = make([sess("s", caregivers=1)], children, requests)
    (v,) = check_assignment(one, all_to_s(4))
    assert v.rule == "3-caregivers"
    assert "needs 2 caregivers" in v.message
    assert check_assignment(one, all_to_s(3)) == []
    two = make([sess("s", caregivers=2)], children, requests)
    assert check_assignment(two, all_to_s(4)) == []


def _infants_and_older(n_infants: int, n_older: int, staffing: str) -> Instance:
    children = [kid(f"i{k}", INFANT) for k in range(n_infants)]
    children += [kid(f"o{k}", OLDER) for k in range(n_older)]
    requests = [req(f"r-{c['id']}", [c["id"]], ["s"]) for c in children]
    return make(
        [sess("s", caregivers=1)],
        children,
        requests,
        policy={"preset": "cn-2019", "staffing": staffing},
    )


def _everyone(instance: Instance) -> list[tuple[str, str]]:
    return [(r.id, "s") for r in instance.requests]


def test_caregivers_pooled_compared_exactly() -> None:
    # 2/3 + 3/7 = 23/21 > 1
    over = _infants_and_older(2, 3, "pooled")
    (v,) = check_assignment(over, _everyone(over))
    assert v.rule == "3-caregivers"
    assert "23/21" in v.message
    # 1/3 + 3/7 = 16/21 <= 1
    fits = _infants_and_older(1, 3, "pooled")
    assert check_assignment(fits, _everyone(fits)) == []
    # the same children need ceil(1/3) + ceil(3/7) = 2 caregivers per group
    per_group = _infants_and_older(1, 3, "per_group")
    assert rules(check_assignment(per_group, _everyone(per_group))) == ["3-caregivers"]


def test_pooled_exactly_at_the_limit() -> None:
    # 3/3 + 7/7 = 2 caregivers exactly (no float rounding)
    children = [kid(f"i{k}", INFANT) for k in range(3)] + [kid(f"o{k}", OLDER) for k in range(7)]
    requests = [req(f"r{k}", [c["id"]], ["s"]) for k, c in enumerate(children)]
    pairs = [(f"r{k}", "s") for k in range(len(children))]
    policy = {"preset": "cn-2019", "staffing": "pooled"}
    fits = make([sess("s", caregivers=2)], children, requests, policy=policy)
    assert check_assignment(fits, pairs) == []
    short = make([sess("s", caregivers=1)], children, requests, policy=policy)
    assert rules(check_assignment(short, pairs)) == ["3-caregivers"]


def test_siblings_across_age_groups() -> None:
    # an infant and an older sibling: per group, ceil(1/3) + ceil(1/7) = 2 caregivers
    children = [kid("baby", INFANT), kid("big", OLDER)]
    requests = [req("fam", ["baby", "big"], ["one", "two", "class"], priority=1)]
    sessions = [
        sess("one", caregivers=1),
        sess("two", caregivers=2),
        sess("class", min_months=24, caregivers=5),
    ]
    instance = make(sessions, children, requests)
    assert rules(check_assignment(instance, [("fam", "one")])) == ["3-caregivers"]
    assert check_assignment(instance, [("fam", "two")]) == []
    (v,) = check_assignment(instance, [("fam", "class")])
    assert (v.rule, v.children) == ("2-eligibility", ("baby",))
    # both children count: 2 * (1000 + 100 * 1 - 10 * 1)
    assert score_of(instance, [("fam", "two")]) == 2180
    assert verify(instance, sol([("fam", "two")], 2180)).accepted


# ---------------------------------------------------------------- rules 4 and 5


def test_touching_intervals_do_not_overlap() -> None:
    instance = make(
        [sess("a", "08:00", "10:00"), sess("b", "10:00", "12:00"), sess("c", "09:59", "11:00")],
        [kid("k")],
        [req("ra", ["k"], ["a"]), req("rb", ["k"], ["b"]), req("rc", ["k"], ["c"])],
    )
    assert check_assignment(instance, [("ra", "a"), ("rb", "b")]) == []
    violations = check_assignment(instance, [("ra", "a"), ("rc", "c"), ("rb", "b")])
    assert rules(violations) == ["4-overlap", "4-overlap"]
    assert {v.sessions for v in violations} == {("a", "c"), ("c", "b")}
    assert all(v.children == ("k",) for v in violations)


def test_overlap_compares_instants_across_offsets() -> None:
    instance = make(
        [
            sess("east", "08:00", "10:00", offset="+08:00"),  # 00:00Z - 02:00Z
            sess("utc-touch", "02:00", "04:00", offset="Z"),
            sess("utc-over", "01:30", "03:00", offset="Z"),
        ],
        [kid("k")],
        [
            req("r1", ["k"], ["east"]),
            req("r2", ["k"], ["utc-touch"]),
            req("r3", ["k"], ["utc-over"]),
        ],
    )
    assert check_assignment(instance, [("r1", "east"), ("r2", "utc-touch")]) == []
    (v,) = check_assignment(instance, [("r1", "east"), ("r3", "utc-over")])
    assert v.rule == "4-overlap"


def test_same_session_through_two_requests_of_one_child() -> None:
    instance = make(
        [sess("s")],
        [kid("k"), kid("sib")],
        [req("alone", ["k"], ["s"]), req("family", ["k", "sib"], ["s"])],
    )
    (v,) = check_assignment(instance, [("alone", "s"), ("family", "s")])
    assert v.rule == "4-overlap"
    assert (v.sessions, v.requests, v.children) == (("s",), ("alone", "family"), ("k",))
    assert "twice" in v.message


def test_per_child_cap() -> None:
    sessions = [sess("a", "08:00", "09:00"), sess("b", "10:00", "11:00")]
    children = [kid("k")]
    requests = [req("ra", ["k"], ["a"]), req("rb", ["k"], ["b"])]
    capped = make(
        sessions, children, requests, policy={"preset": "cn-2019", "max_sessions_per_child": 1}
    )
    (v,) = check_assignment(capped, [("ra", "a"), ("rb", "b")])
    assert (v.rule, v.children, v.requests) == ("5-per-child-cap", ("k",), ("ra", "rb"))
    assert check_assignment(capped, [("ra", "a")]) == []
    uncapped = make(sessions, children, requests)
    assert check_assignment(uncapped, [("ra", "a"), ("rb", "b")]) == []


# ---------------------------------------------------------------- rules 1, 6, 7 and unknown ids


def test_locked_booking_not_kept() -> None:
    instance = make(
        [sess("a", "08:00", "09:00"), sess("b", "10:00", "11:00")],
        [kid("k")],
        [req("r", ["k"], ["a", "b"])],
        bookings=[{"request": "r", "session": "a", "locked": True}],
    )
    assert check_assignment(instance, [("r", "a")]) == []
    (moved,) = check_assignment(instance, [("r", "b")])
    assert (moved.rule, moved.requests, moved.sessions) == ("6-locked", ("r",), ("a", "b"))
    (dropped,) = check_assignment(instance, [])
    assert dropped.rule == "6-locked"
    assert "unassigned" in dropped.message
    report = verify(instance, sol([], -100000))
    assert not report.accepted and rules(report.violations) == ["6-locked"]


def test_request_assigned_twice() -> None:
    instance = make(
        [sess("a", "08:00", "09:00"), sess("b", "10:00", "11:00")],
        [kid("k")],
        [req("r", ["k"], ["a", "b"])],
    )
    (v,) = check_assignment(instance, [("r", "a"), ("r", "b")])
    assert (v.rule, v.requests, v.sessions) == ("7-request-once", ("r",), ("a", "b"))
    # the very same pair twice: reported once, counted once elsewhere
    assert rules(check_assignment(instance, [("r", "a"), ("r", "a")])) == ["7-request-once"]
    report = verify(instance, sol([("r", "a"), ("r", "b")], 1000))
    assert not report.accepted and report.score is None


def test_assignment_to_a_non_preference() -> None:
    instance = make([sess("a"), sess("b")], [kid("k")], [req("r", ["k"], ["a"])])
    (v,) = check_assignment(instance, [("r", "b")])
    assert (v.rule, v.requests, v.sessions) == ("1-preference", ("r",), ("b",))
    report = verify(instance, sol([("r", "b")], 1000))
    assert not report.accepted and not report.valid and report.score is None


def test_unknown_ids_are_violations_not_crashes() -> None:
    instance = make([sess("s")], [kid("k")], [req("r", ["k"], ["s"])])
    pairs = [("ghost", "s"), ("r", "nowhere"), ("ghost2", "nowhere2")]
    violations = check_assignment(instance, pairs)
    assert rules(violations) == ["unknown-id"] * 3
    assert "unknown request 'ghost'" in violations[0].message
    assert "unknown session 'nowhere'" in violations[1].message
    assert violations[2].requests == ("ghost2",) and violations[2].sessions == ("nowhere2",)
    report = verify(instance, sol(pairs, 0))
    assert not report.accepted and not report.valid and report.score is None
    with pytest.raises(UnscorableAssignmentError):
        score_of(instance, [("ghost", "s")])


def test_every_violation_is_reported() -> None:
    children, requests = one_child_each(4, INFANT)
    requests.append(req("extra", ["c0"], ["s"]))
    instance = make(
        [sess("s", capacity=3, caregivers=1, group_caps={"infant": 2})], children, requests
    )
    violations = check_assignment(instance, [*all_to_s(4), ("extra", "s"), ("r0", "s")])
    assert rules(violations) == [
        "7-request-once",
        "3-capacity",
        "3-group-cap",
        "3-caregivers",
        "4-overlap",
    ]


# ---------------------------------------------------------------- score and claims


def test_score_move_and_drop_terms() -> None:
    instance = make(
        [sess("a", "08:00", "09:00"), sess("b", "10:00", "11:00")],
        [kid("k1"), kid("k2"), kid("k3"), kid("k4")],
        [
            req("moved", ["k1"], ["a", "b"], priority=2),
            req("dropped", ["k2", "k3"], ["a", "b"]),
            req("kept-locked", ["k4"], ["b", "a"]),
            req("fresh", ["k2"], ["b", "a"], priority=9),
        ],
        objective={"serve": 1000, "priority": 100, "rank": 10, "move": 500, "drop": 100000},
        bookings=[
            {"request": "moved", "session": "a"},
            {"request": "dropped", "session": "b"},
            {"request": "kept-locked", "session": "b", "locked": True},
        ],
    )
    pairs = [("moved", "b"), ("kept-locked", "b"), ("fresh", "a")]
    # moved: 1 * (1000 + 200 - 10) - 500 move; kept-locked: 1000; fresh: 1000 + 900 - 10;
    # dropped: -100000
    expected = 690 + 1000 + 1890 - 100000
    assert score_of(instance, pairs) == expected == -96420
    report = verify(instance, sol(pairs, expected))
    assert report.accepted and report.score == expected


def test_score_with_other_weights() -> None:
    instance = make(
        [sess("a", "08:00", "09:00"), sess("b", "10:00", "11:00")],
        [kid("k1"), kid("k2")],
        [req("r1", ["k1", "k2"], ["a", "b"], priority=3), req("r2", ["k1"], ["b"])],
        objective={"serve": 7, "priority": 2, "rank": 5, "move": 3, "drop": 11},
        bookings=[{"request": "r1", "session": "a"}, {"request": "r2", "session": "b"}],
    )
    # r1 at rank 1: 2 * (7 + 6 - 5) = 16, moved: -3; r2 unassigned: -11
    assert score_of(instance, [("r1", "b")]) == 2
    # r1 kept at rank 0: 2 * 13 = 26; r2 at rank 0 but overlapping nothing: 7
    assert score_of(instance, [("r1", "a"), ("r2", "b")]) == 33
    assert score_of(instance, []) == -22


def test_wrong_claimed_score() -> None:
    instance = make([sess("s")], [kid("k")], [req("r", ["k"], ["s"], priority=1)])
    report = verify(instance, sol([("r", "s")], 1000))
    assert report.valid and not report.accepted
    assert report.score == 1100
    (v,) = report.violations
    assert v.rule == "score" and "1000" in v.message and "1100" in v.message


def test_bound_and_optimal_claims() -> None:
    instance = make([sess("s")], [kid("k")], [req("r", ["k"], ["s"])])
    pairs = [("r", "s")]
    assert verify(instance, sol(pairs, 1000, bound=1000)).accepted
    assert verify(instance, sol(pairs, 1000, bound=5000)).accepted
    assert verify(instance, sol(pairs, 1000, status="optimal", bound=1000)).accepted
    assert verify(instance, sol(pairs, 1000, status="optimal")).accepted
    below = verify(instance, sol(pairs, 1000, bound=999))
    assert not below.accepted and below.valid and rules(below.violations) == ["bound"]
    not_proven = verify(instance, sol(pairs, 1000, status="optimal", bound=1010))
    assert not not_proven.accepted and rules(not_proven.violations) == ["status"]
    # a feasible claim need not be the best: leaving r out scores 0
    assert verify(instance, sol([], 0, bound=1000)).accepted
    assert not verify(instance, sol([], 0, status="optimal", bound=1000)).accepted


# ---------------------------------------------------------------- infeasibility


def _overlapping_locked() -> Instance:
    return make(
        [sess("a", "08:00", "10:00"), sess("b", "09:00", "11:00")],
        [kid("k")],
        [req("ra", ["k"], ["a"]), req("rb", ["k"], ["b"])],
        bookings=[
            {"request": "ra", "session": "a", "locked": True},
            {"request": "rb", "session": "b", "locked": True},
        ],
    )


def test_infeasible_claim_on_overlapping_locked_bookings() -> None:
    instance = _overlapping_locked()
    (c,) = locked_conflicts(instance)
    assert c.rule == "4-overlap" and c.requests == ("ra", "rb")
    report = verify(instance, infeasible_claim())
    assert report.accepted and report.valid and report.instance_infeasible
    assert report.score is None and report.violations == ()
    assert "infeasible" in report.verdict and "4-overlap" in report.verdict
    # a feasible claim must assign both locked bookings, which overlap
    claim = verify(instance, sol([("ra", "a"), ("rb", "b")], 2000))
    assert not claim.accepted and rules(claim.violations) == ["4-overlap"]
    partial = verify(instance, sol([("ra", "a")], 1000 - 100000))
    assert not partial.accepted and rules(partial.violations) == ["6-locked"]


def test_infeasible_claim_on_a_locked_ineligible_booking() -> None:
    instance = make(
        [sess("class", min_months=24), sess("free", "14:00", "15:00")],
        [kid("k", TODDLER)],
        [req("r", ["k"], ["class"]), req("other", ["k"], ["free"])],
        bookings=[{"request": "r", "session": "class", "locked": True}],
    )
    assert rules(locked_conflicts(instance)) == ["2-eligibility"]
    assert verify(instance, infeasible_claim()).accepted


def test_infeasible_claim_on_a_feasible_instance() -> None:
    instance = make(
        [sess("a", "08:00", "10:00"), sess("b", "10:00", "11:00")],
        [kid("k")],
        [req("ra", ["k"], ["a"]), req("rb", ["k"], ["b"])],
        bookings=[
            {"request": "ra", "session": "a", "locked": True},
            {"request": "rb", "session": "b", "locked": False},
        ],
    )
    assert locked_conflicts(instance) == []
    report = verify(instance, infeasible_claim())
    assert not report.accepted and not report.valid and report.score is None
    assert rules(report.violations) == ["infeasible-claim"]
    assert report.violations[0].requests == ("ra",)
    assert report.verdict.startswith("Rejected: 1 violation (1 x infeasible-claim)")


def test_unlocked_bookings_never_make_an_instance_infeasible() -> None:
    instance = make(
        [sess("a", "08:00", "10:00"), sess("b", "09:00", "11:00")],
        [kid("k")],
        [req("ra", ["k"], ["a"]), req("rb", ["k"], ["b"])],
        bookings=[{"request": "ra", "session": "a"}, {"request": "rb", "session": "b"}],
    )
    assert locked_conflicts(instance) == []
    assert not verify(instance, infeasible_claim()).accepted


# ---------------------------------------------------------------- report and independence


def test_report_is_frozen_and_readable() -> None:
    instance = make([sess("s", capacity=0)], [kid("k")], [req("r", ["k"], ["s"])])
    report = verify(instance, sol([("r", "s")], 1000))
    assert isinstance(report, VerificationReport)
    assert report.status is Status.FEASIBLE and report.claimed_score == 1000
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.accepted = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        report.violations[0].rule = "x"  # type: ignore[misc]
    assert str(report) == report.verdict
    assert report.verdict.startswith("Rejected: 1 violation (1 x 3-capacity); first: Session 's'")
    assert str(report.violations[0]).startswith("[3-capacity] Session 's' holds 1 child,")


#: The verifier's package directory: every module in it is checked.
VERIFY_DIR = Path(importlib.util.find_spec("slotalloc.verify").origin).parent  # type: ignore[arg-type, union-attr]
FORBIDDEN = ("slotalloc.compile", "slotalloc.rules", "slotalloc.solver")
ALLOWED = ("slotalloc.models", "slotalloc.exceptions")


def _forbidden(module: str) -> bool:
    return any(module == f or module.startswith(f + ".") for f in FORBIDDEN)


def _allowed(module: str) -> bool:
    # The shared models and exceptions, and the verifier's own sub-modules.
    return module.startswith("slotalloc.verify.") or any(
        module == a or module.startswith(a + ".") for a in ALLOWED
    )


def test_verifier_source_imports_no_shared_machinery() -> None:
    files = sorted(VERIFY_DIR.glob("*.py"))
    assert VERIFY_DIR / "__init__.py" in files
    imported: list[str] = []
    for file in files:
        for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                imported += [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                assert node.level == 0, "relative imports hide what is imported"
                base = node.module or ""
                imported += [base] + [f"{base}.{a.name}" for a in node.names]
    local = {m for m in imported if m.split(".")[0] == "slotalloc"}
    assert local, "expected imports of slotalloc.models"
    assert not [m for m in local if _forbidden(m)]
    assert not [m for m in local if not _allowed(m)]


def test_importing_the_verifier_loads_no_shared_machinery() -> None:
    # The package's __init__ imports the compiler, so load slotalloc.verify under
    # a bare package object that does not run __init__.
    package_dir = str(VERIFY_DIR.parent)
    script = textwrap.dedent(
        f"""
        import importlib, sys, types
        pkg = types.ModuleType("slotalloc")
        pkg.__path__ = [{package_dir!r}]
        sys.modules["slotalloc"] = pkg
        importlib.import_module("slotalloc.verify")
        print("\\n".join(sorted(m for m in sys.modules if m.startswith("slotalloc"))))
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "slotalloc.verify" in out
    assert not [m for m in out if _forbidden(m)]
