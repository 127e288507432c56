"""The compiler: ages, eligibility edges, arcs, coefficients, overlaps."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings

from conftest import sample_instance
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.rules import age_months, group_of
from strategies import instances


def session(sid: str, start: str, end: str, **kw: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "site": "A",
        "start": start,
        "end": end,
        "capacity": 10,
        "caregivers": 3,
        **kw,
    }


def world(
    sessions: list[dict[str, Any]],
    children: dict[str, str],
    requests: list[tuple[str, list[str], list[str]]],
    **extra: Any,
) -> Instance:
    return Instance(
        sessions=sessions,
        children=[{"id": k, "birth_date": v} for k, v in children.items()],
        requests=[{"id": r, "children": c, "preferences": p} for r, c, p in requests],
        **extra,
    )


@pytest.mark.parametrize(
    ("birth", "on", "months"),
    [
        ((2023, 1, 31), (2023, 2, 28), 0),
        ((2023, 1, 31), (2023, 3, 31), 2),
        ((2023, 1, 31), (2023, 3, 30), 1),
        ((2024, 2, 29), (2025, 2, 28), 11),
        ((2024, 2, 29), (2025, 3, 1), 12),
        ((2025, 5, 1), (2025, 4, 19), -1),
    ],
)
def test_age_in_completed_months(
    birth: tuple[int, int, int], on: tuple[int, int, int], months: int
) -> None:
    assert age_months(*birth, *on) == months


def test_age_vectorised_equals_scalar() -> None:
    rng = np.random.default_rng(7)
    b = rng.integers([2020, 1, 1], [2026, 13, 29], size=(500, 3))
    d = rng.integers([2020, 1, 1], [2026, 13, 29], size=(500, 3))
    vec = age_months(b[:, 0], b[:, 1], b[:, 2], d[:, 0], d[:, 1], d[:, 2])
    for i in range(500):
        assert vec[i] == age_months(*(int(x) for x in b[i]), *(int(x) for x in d[i]))


def test_child_born_on_the_31st_becomes_an_infant_on_the_first() -> None:
    inst = world(
        [
            session("apr30", "2025-04-30T09:00:00+08:00", "2025-04-30T10:00:00+08:00"),
            session("may01", "2025-05-01T09:00:00+08:00", "2025-05-01T10:00:00+08:00"),
        ],
        {"c": "2024-10-31"},
        [("r", ["c"], ["apr30", "may01"])],
    )
    c = compile_instance(inst)
    assert c.arc_sess.tolist() == [1]  # 5 months on Apr 30, 6 on May 1
    assert c.arc_rank.tolist() == [1]  # rank is the index in the original list
    assert group_of(c, dt.date(2024, 10, 31), 0) == -1
    assert c.group_names[group_of(c, dt.date(2024, 10, 31), 1)] == "infant"


def test_age_uses_the_session_date_in_its_own_offset() -> None:
    # 23:30 at -02:00 on the 19th is already the 20th in UTC.
    inst = world(
        [session("late", "2025-04-19T23:30:00-02:00", "2025-04-20T00:30:00-02:00")],
        {"c": "2024-10-20"},
        [("r", ["c"], ["late"])],
    )
    assert compile_instance(inst).n_arcs == 0


def test_unborn_and_too_old_children_have_no_arcs() -> None:
    inst = world(
        [session("s", "2025-04-19T09:00:00+08:00", "2025-04-19T10:00:00+08:00")],
        {"unborn": "2025-06-01", "old": "2022-04-19", "ok": "2022-04-20"},
        [("r1", ["unborn"], ["s"]), ("r2", ["old"], ["s"]), ("r3", ["ok"], ["s"])],
    )
    c = compile_instance(inst)
    assert [c.request_ids[r] for r in c.arc_req.tolist()] == ["r3"]
    assert c.group_names[int(np.argmax(c.arc_groups[0]))] == "older"


def test_sibling_request_across_groups_counts_each_group() -> None:
    inst = world(
        [session("s", "2025-04-19T09:00:00+08:00", "2025-04-19T10:00:00+08:00")],
        {"baby": "2024-09-01", "big": "2023-01-01"},
        [("r", ["baby", "big"], ["s"])],
    )
    c = compile_instance(inst)
    assert dict(zip(c.group_names, c.arc_groups[0].tolist(), strict=True)) == {
        "infant": 1,
        "toddler": 0,
        "older": 1,
    }
    assert c.arc_coef.tolist() == [2 * 1000]


def test_a_sibling_outside_the_session_range_removes_the_arc() -> None:
    inst = world(
        [session("s", "2025-04-19T09:00:00+08:00", "2025-04-19T10:00:00+08:00", min_months=12)],
        {"baby": "2024-09-01", "big": "2023-01-01"},
        [("r", ["baby", "big"], ["s"])],
    )
    assert compile_instance(inst).n_arcs == 0


def test_score_coefficients_include_priority_rank_and_move() -> None:
    inst = Instance(
        sessions=[
            session(s, "2025-04-19T09:00:00+08:00", "2025-04-19T10:00:00+08:00")
            for s in ("a", "b", "c")
        ],
        children=[{"id": "k", "birth_date": "2023-01-01"}, {"id": "m", "birth_date": "2023-01-01"}],
        requests=[
            {"id": "r", "children": ["k"], "preferences": ["a", "b", "c"], "priority": 2},
            {"id": "q", "children": ["m"], "preferences": ["a", "b"]},
        ],
        bookings=[
            {"request": "r", "session": "b"},
            {"request": "q", "session": "b", "locked": True},
        ],
    )
    c = compile_instance(inst)
    r_arcs = slice(int(c.req_arc_ptr[0]), int(c.req_arc_ptr[1]))
    assert c.arc_coef[r_arcs].tolist() == [1200 - 500, 1190, 1180 - 500]
    # a locked request keeps only its locked arc
    q_arcs = slice(int(c.req_arc_ptr[1]), int(c.req_arc_ptr[2]))
    assert [c.session_ids[s] for s in c.arc_sess[q_arcs].tolist()] == ["b"]
    assert c.drop_cost.tolist() == [100000, 100000]


def test_overlap_cliques_keep_touching_sessions_apart() -> None:
    inst = world(
        [
            session("a", "2025-04-19T08:00:00+08:00", "2025-04-19T12:00:00+08:00"),
            session("b", "2025-04-19T09:00:00+08:00", "2025-04-19T10:00:00+08:00"),
            session("c", "2025-04-19T12:00:00+08:00", "2025-04-19T13:00:00+08:00"),
            session("d", "2025-04-19T04:00:00Z", "2025-04-19T06:00:00Z"),
        ],  # 12:00-14:00 +08
        {"k": "2023-01-01"},
        [("r", ["k"], ["a"])],
    )
    c = compile_instance(inst)
    cliques = {
        tuple(c.clique_sess[c.clique_ptr[i] : c.clique_ptr[i + 1]].tolist())
        for i in range(len(c.clique_ptr) - 1)
    }
    assert cliques == {(0, 1), (2, 3)}


@settings(max_examples=60, deadline=None)
@given(instances(bookings=True))
def test_compiled_arrays_are_read_only_and_consistent(inst: Instance) -> None:
    c = compile_instance(inst)
    assert not c.arc_coef.flags.writeable
    assert (np.diff(c.arc_req) >= 0).all()
    assert c.req_arc_ptr[-1] == c.n_arcs
    assert (c.arc_groups.sum(axis=1) == c.req_size[c.arc_req]).all()
    assert c.child_arc_ptr[-1] == int(c.req_size[c.arc_req].sum())
    # every session is in at least one clique (a session overlaps itself)
    assert set(c.clique_sess.tolist()) == set(range(c.n_sessions))


def test_samples_compile() -> None:
    for name in ("sample-small", "sample-rebalance", "sample-tight", "sample-events"):
        c = compile_instance(sample_instance(name))
        assert c.n_arcs > 0
