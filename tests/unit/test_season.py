"""The season generator (scenarios/season.py) and the carry-over rule (analysis/carryover.py)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from slotalloc import solve
from slotalloc.analysis.carryover import CarryOver, carry_over
from slotalloc.io import parse_instance
from slotalloc.models import Instance, Solution, Status
from slotalloc.scenarios.season import generate_season, generate_season_json, weekend_dates
from slotalloc.scenarios.xiamen import generate_xiamen, generate_xiamen_json
from slotalloc.verify import age_in_months, verify

SEED, WEEKS, REQUESTS, SITES = 5, 4, 400, 4


@pytest.fixture(scope="module")
def season() -> list[Instance]:
    return generate_season(SEED, WEEKS, REQUESTS, SITES)


def _households(inst: Instance) -> set[str]:
    return {c.household for c in inst.children if c.household is not None}


# ---------------------------------------------------------------- generator


def test_weekend_one_is_the_weekend_generator(season: list[Instance]) -> None:
    assert season[0] == generate_xiamen(SEED, REQUESTS, SITES)
    texts = generate_season_json(SEED, 2, REQUESTS, SITES)
    assert texts[0] == generate_xiamen_json(SEED, REQUESTS, SITES)


def test_deterministic(season: list[Instance]) -> None:
    again = generate_season(SEED, WEEKS, REQUESTS, SITES)
    assert again == season
    assert generate_season_json(SEED, 3, REQUESTS, SITES) == generate_season_json(
        SEED, 3, REQUESTS, SITES
    )
    assert generate_season(SEED + 1, 2, REQUESTS, SITES)[1] != season[1]


def test_first_weekends_do_not_depend_on_the_season_length(season: list[Instance]) -> None:
    assert generate_season(SEED, 2, REQUESTS, SITES) == season[:2]


def test_weekend_dates() -> None:
    assert weekend_dates(1) == ("2025-04-19", "2025-04-20")
    assert weekend_dates(3) == ("2025-05-03", "2025-05-04")
    with pytest.raises(ValueError, match="week"):
        weekend_dates(0)


def test_sessions_shift_by_seven_days(season: list[Instance]) -> None:
    first = season[0]
    for k, inst in enumerate(season[1:], 2):
        assert inst.sites == first.sites
        assert inst.policy == first.policy
        assert not inst.bookings
        assert len(inst.sessions) == len(first.sessions)
        shift = dt.timedelta(days=7 * (k - 1))
        saturday, _ = weekend_dates(k)
        assert saturday in inst.name
        for s0, s in zip(first.sessions, inst.sessions, strict=True):
            assert s.start == s0.start + shift and s.end == s0.end + shift
            assert s.start.utcoffset() == s0.start.utcoffset()
            old, new = s0.start.date().isoformat(), s.start.date().isoformat()
            assert s.id == s0.id.replace(old, new)
            same = ("site", "capacity", "caregivers", "min_months", "max_months", "group_caps")
            assert all(getattr(s, f) == getattr(s0, f) for f in (*same, "kind", "course"))


def test_households_stable(season: list[Instance]) -> None:
    first = season[0]
    by_id = {r.id: r for r in first.requests}
    seen = _households(first)
    for k, inst in enumerate(season[1:], 2):
        households = _households(inst)
        # Most households ask again; the others are newcomers, marked as such.
        assert len(households & _households(first)) >= 0.7 * len(households)
        assert all(h in seen or h.startswith("hn") for h in households)
        seen |= households
        child_household = {c.id: c.household for c in inst.children}
        for r in inst.requests:
            prefix, stem = r.id.split("-", 1)
            assert prefix == f"w{k:02d}"
            if stem in by_id:  # a weekend-1 household: the same children, at most
                old = by_id[stem]
                assert set(r.children) <= set(old.children)
                assert r.priority == old.priority
                assert len(r.preferences) == len(old.preferences)
            else:
                assert stem.startswith("rn")
                assert all(child_household[c].startswith("hn") for c in r.children)
    # Request ids are stable: a household asking on two weekends uses the same stem.
    stems = [{r.id.split("-", 1)[1] for r in w.requests} for w in season[1:]]
    assert len(stems[0] & stems[1]) >= 0.7 * len(stems[1])


def test_season_keeps_its_size(season: list[Instance]) -> None:
    n = len(season[0].requests)
    for inst in season[1:]:
        assert 0.75 * n <= len(inst.requests) <= n


def test_children_aged_correctly(season: list[Instance]) -> None:
    known: dict[str, tuple[dt.date, str | None]] = {}
    for k, inst in enumerate(season, 1):
        saturday = dt.date.fromisoformat(weekend_dates(k)[0])
        for c in inst.children:
            # Same child, same birth date and household on every weekend.
            assert known.setdefault(c.id, (c.birth_date, c.household)) == (
                c.birth_date,
                c.household,
            )
            if k >= 2:  # a child of 36 months or more has left
                assert age_in_months(c.birth_date, saturday) < 36
        used = {cid for r in inst.requests for cid in r.children}
        assert used == {c.id for c in inst.children}
    # A returning child is a week older: its age never goes down, and some cross a month.
    sat1, sat2 = (dt.date.fromisoformat(weekend_dates(k)[0]) for k in (1, 2))
    second = {c.id for c in season[1].children}
    steps = [
        age_in_months(c.birth_date, sat2) - age_in_months(c.birth_date, sat1)
        for c in season[0].children
        if c.id in second
    ]
    assert set(steps) == {0, 1}


def test_every_instance_valid(season: list[Instance]) -> None:
    texts = generate_season_json(SEED, WEEKS, REQUESTS, SITES)
    assert [parse_instance(json.loads(t)) for t in texts] == season
    for inst in season:
        res = solve(inst, method="fcfs")
        assert verify(inst, res.to_solution()).accepted


def test_booking_options_describe_weekend_one_only(season: list[Instance]) -> None:
    booked = generate_season(SEED, 2, REQUESTS, SITES, bookings=0.2, locked=0.5)
    assert booked[0] == generate_xiamen(SEED, REQUESTS, SITES, bookings=0.2, locked=0.5)
    assert booked[0].bookings
    assert booked[1] == season[1]


def test_shape_options_shape_every_weekend() -> None:
    pooled = generate_season(SEED, 2, REQUESTS, SITES, staffing="pooled", tight=True)
    plain = generate_season(SEED, 2, REQUESTS, SITES)
    for a, b in zip(pooled, plain, strict=True):
        assert a.policy.staffing == "pooled"
        assert [s.caregivers for s in a.sessions] != [s.caregivers for s in b.sessions]


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"weeks": 0}, ValueError),
        ({"weeks": 1.5}, ValueError),
        ({"requests": 0}, ValueError),
        ({"colour": "red"}, TypeError),
        ({"locked": 0.5}, ValueError),
    ],
)
def test_bad_arguments(kwargs: dict[str, Any], error: type[Exception]) -> None:
    args: dict[str, Any] = {"seed": 1, "weeks": 2, "requests": 50, "sites": 2} | kwargs
    with pytest.raises(error):
        generate_season(**args)


def test_one_weekend() -> None:
    assert generate_season(1, 1, 50, 2) == [generate_xiamen(1, 50, 2)]


# ---------------------------------------------------------------- carry-over


def _instance(
    date: str, requests: list[dict[str, Any]], children: list[dict[str, Any]]
) -> Instance:
    """One session with room for one child on ``date``; the given requests."""
    return Instance.model_validate(
        {
            "format": "slotalloc.instance/1",
            "name": f"tiny-{date}",
            "sessions": [
                {
                    "id": f"s/{date}",
                    "site": "s",
                    "start": f"{date}T08:30:00+08:00",
                    "end": f"{date}T12:00:00+08:00",
                    "capacity": 1,
                    "caregivers": 1,
                }
            ],
            "children": children,
            "requests": [{**r, "preferences": [f"s/{date}"]} for r in requests],
        },
        strict=True,
    )


def _child(cid: str, household: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": cid, "birth_date": "2023-05-02"}
    if household is not None:
        out["household"] = household
    return out


CHILDREN = [
    _child("c1", "h1"),
    _child("c2", "h2"),
    _child("c3", "h3"),
    _child("c4", None),
    _child("c6", "h6"),
    _child("c7", "h7"),
    _child("c8", "h8"),
]


@pytest.fixture
def pair() -> tuple[Instance, Solution, Instance]:
    # Last weekend: one place. h1 asked first and got it; h2, h3, h6 and the
    # child without a household asked and got nothing; h7 and h8 did not ask.
    previous = _instance(
        "2025-04-19",
        [
            {"id": "p1", "children": ["c1"]},
            {"id": "p2", "children": ["c2"]},
            {"id": "p3", "children": ["c3"], "priority": 5},
            {"id": "p4", "children": ["c4"]},
            {"id": "p6", "children": ["c6"], "priority": 9},
        ],
        CHILDREN[:5],
    )
    solution = solve(previous, method="fcfs").to_solution()
    assert [a.request for a in solution.assignments] == ["p1"]
    nxt = _instance(
        "2025-04-26",
        [
            {"id": "n1", "children": ["c1"]},  # got something: unchanged
            {"id": "n2", "children": ["c2"]},  # asked, got nothing: +1
            {"id": "n4", "children": ["c4"]},  # no household: never matched
            {"id": "n6", "children": ["c6"], "priority": 9},  # 9 stays 9
            {"id": "n7", "children": ["c7"], "priority": 2},  # did not ask: unchanged
            {"id": "n37", "children": ["c3", "c7"], "priority": 5},  # h3 qualifies: +1
            {"id": "n8", "children": ["c8"]},  # did not ask: unchanged
        ],
        CHILDREN,
    )
    return previous, solution, nxt


def _priorities(inst: Instance) -> dict[str, int]:
    return {r.id: r.priority for r in inst.requests}


def test_carry_over_raises_exactly_the_right_requests(
    pair: tuple[Instance, Solution, Instance],
) -> None:
    previous, solution, nxt = pair
    out = carry_over(previous, solution, nxt)
    assert isinstance(out, CarryOver)
    assert _priorities(out.instance) == {
        "n1": 0,
        "n2": 1,
        "n4": 0,
        "n6": 9,
        "n7": 2,
        "n37": 6,
        "n8": 0,
    }
    assert [
        (e.request, e.households, e.old_priority, e.new_priority, e.capped) for e in out.entries
    ] == [
        ("n2", ("h2",), 0, 1, False),
        ("n6", ("h6",), 9, 9, True),
        ("n37", ("h3",), 5, 6, False),
    ]
    assert out.counts() == {
        "households_asked": 4,  # h1, h2, h3, h6 (c4 has no household)
        "households_unserved": 3,  # h2, h3, h6
        "requests_raised": 2,
        "requests_capped": 1,
        "requests_unmatched": 1,  # n4
    }
    # Everything but the priorities is unchanged.
    assert out.instance.model_copy(update={"requests": nxt.requests}) == nxt
    assert [r.id for r in out.instance.requests] == [r.id for r in nxt.requests]


def test_carry_over_cap_and_step(pair: tuple[Instance, Solution, Instance]) -> None:
    previous, solution, nxt = pair
    out = carry_over(previous, solution, nxt, step=2, cap=6)
    got = _priorities(out.instance)
    assert got["n2"] == 2  # 0 + 2
    assert got["n37"] == 6  # 5 + 2, held at the cap 6
    assert got["n6"] == 9  # above the cap already: never lowered
    assert out.requests_capped == 2
    low = carry_over(previous, solution, nxt, step=1, cap=0)
    assert _priorities(low.instance) == _priorities(nxt)
    assert low.requests_raised == 0 and low.requests_capped == 3
    assert all(
        p <= 9 for p in _priorities(carry_over(previous, solution, nxt, step=9).instance).values()
    )


def test_raised_instance_validates_and_verifies(pair: tuple[Instance, Solution, Instance]) -> None:
    previous, solution, nxt = pair
    raised = carry_over(previous, solution, nxt).instance
    assert Instance.model_validate(raised.model_dump(mode="json"), strict=True) == raised
    res = solve(raised, method="fcfs")
    report = verify(raised, res.to_solution())
    assert report.accepted
    assert [a.request for a in res.assignments] == ["n1"]


def test_explanation_names_ids_and_no_birth_date(pair: tuple[Instance, Solution, Instance]) -> None:
    previous, solution, nxt = pair
    doc = carry_over(previous, solution, nxt).to_dict()
    text = json.dumps(doc)
    assert "2023-05-02" not in text and "birth" not in text
    assert doc["rule"] == {"step": 1, "cap": 9}
    assert doc["requests"][0] == {
        "request": "n2",
        "households": ["h2"],
        "old_priority": 0,
        "new_priority": 1,
        "capped": False,
        "reason": "household h2 asked on the previous weekend and got no place; priority 0 -> 1.",
    }


def test_several_qualifying_households_are_named() -> None:
    prev = _instance(
        "2025-04-19",
        [
            {"id": "p0", "children": ["c8"]},
            {"id": "p1", "children": ["c1"]},
            {"id": "p2", "children": ["c2"]},
        ],
        [CHILDREN[0], CHILDREN[1], CHILDREN[6]],
    )
    sol = solve(prev, method="fcfs").to_solution()
    nxt = _instance("2025-04-26", [{"id": "n", "children": ["c2", "c1"]}], CHILDREN[:2])
    (entry,) = carry_over(prev, sol, nxt).entries
    assert entry.households == ("h1", "h2")
    assert entry.reason.startswith("households h1, h2 asked")


@pytest.mark.parametrize(
    "kwargs", [{"step": 0}, {"step": 10}, {"step": True}, {"cap": 10}, {"cap": -1}, {"cap": 1.0}]
)
def test_carry_over_bad_parameters(
    pair: tuple[Instance, Solution, Instance], kwargs: dict[str, Any]
) -> None:
    previous, solution, nxt = pair
    with pytest.raises(ValueError):
        carry_over(previous, solution, nxt, **kwargs)


def test_carry_over_refuses_mismatched_or_infeasible_solutions(
    pair: tuple[Instance, Solution, Instance],
) -> None:
    previous, _, nxt = pair
    stranger = Solution.model_validate(
        {"status": "feasible", "score": 0, "assignments": [{"request": "zz", "session": "s"}]},
        strict=True,
    )
    with pytest.raises(ValueError, match="'zz'"):
        carry_over(previous, stranger, nxt)
    infeasible = Solution.model_validate(
        {
            "status": "infeasible",
            "explanation": [{"rule": "3-capacity", "message": "full"}],
        },
        strict=True,
    )
    assert infeasible.status is Status.INFEASIBLE
    with pytest.raises(ValueError, match="infeasible"):
        carry_over(previous, infeasible, nxt)


def test_carry_over_on_a_generated_season(season: list[Instance]) -> None:
    first, second = season[0], season[1]
    sol = solve(first, method="fcfs").to_solution()
    out = carry_over(first, sol, second)
    placed = {a.request for a in sol.assignments}
    kids = {c.id: c.household for c in first.children}
    served = {kids[c] for r in first.requests if r.id in placed for c in r.children}
    unserved = _households(first) - served
    assert out.households_asked == len(_households(first))
    assert out.households_unserved == len(unserved)
    hh = {c.id: c.household for c in second.children}
    due = [r.id for r in second.requests if {hh[c] for c in r.children} & unserved]
    assert [e.request for e in out.entries] == due
    before, after = _priorities(second), _priorities(out.instance)
    for rid in before:
        expected = min(before[rid] + 1, 9) if rid in due else before[rid]
        assert after[rid] == expected
    assert out.requests_raised == sum(after[r] > before[r] for r in before) > 0
    assert verify(out.instance, solve(out.instance, method="fcfs").to_solution()).accepted
