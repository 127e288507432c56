"""Dropped bookings re-seated by chains of moves (solver/search/reseat.py)."""

from __future__ import annotations

import dataclasses
from random import Random

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from test_fair_repair import _accepted_score
from test_rebalance import make

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance
from slotalloc.result import score_of_arcs
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.fair import optimize_fair
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.optimizer import optimize
from slotalloc.solver.params import PARAMS
from slotalloc.solver.rows.group_fairness import group_floor
from slotalloc.solver.search.bookings import drops
from slotalloc.solver.search.reseat import reseat_and_fill, reseat_dropped
from slotalloc.solver.search.rounding import round_and_repair
from slotalloc.verify import locked_conflicts
from strategies import instances


def _at(c: Compiled, inst: Instance, arcs: IntArray) -> dict[str, str]:
    return {
        inst.requests[int(c.arc_req[a])].id: inst.sessions[int(c.arc_sess[a])].id
        for a in arcs.tolist()
    }


def _arcs_of(c: Compiled, inst: Instance, pairs: dict[str, str]) -> IntArray:
    rid = {r.id: i for i, r in enumerate(inst.requests)}
    sid = {s.id: i for i, s in enumerate(inst.sessions)}
    out = [
        int(a)
        for a in range(c.n_arcs)
        if pairs.get(inst.requests[int(c.arc_req[a])].id) == inst.sessions[int(c.arc_sess[a])].id
    ]
    assert len(out) == len(pairs), (rid, sid)
    return np.asarray(sorted(out), dtype=np.int64)


def _chain_of_two() -> tuple[Instance, dict[str, str]]:
    """A lost a caregiver: seven of its eight bookings fit (older children, 1:7).

    r7 also asked for B, which seven bookings fill; one of them, b0, also
    asked for C, which is empty. Seating r7 takes two moves: b0 to C, r7 to B.
    """
    reqs = [(f"r{i}", ["A", "B"]) for i in range(8)]
    reqs += [("b0", ["B", "C"])] + [(f"b{i}", ["B"]) for i in range(1, 7)]
    bookings = [(f"r{i}", "A", False) for i in range(8)]
    bookings += [(f"b{i}", "B", False) for i in range(7)]
    inst = make([("A", 10, 1), ("B", 10, 1), ("C", 10, 1)], reqs, bookings)
    start = {f"r{i}": "A" for i in range(7)} | {f"b{i}": "B" for i in range(7)}
    return inst, start


def test_a_dropped_booking_is_seated_by_moving_another_booking_on() -> None:
    inst, start = _chain_of_two()
    c = compile_instance(inst)
    arcs = _arcs_of(c, inst, start)
    assert drops(c, arcs) == 1
    out, seated = reseat_dropped(c, arcs)
    assert seated == 1
    assert drops(c, out) == 0
    at = _at(c, inst, out)
    assert at["r7"] == "B" and at["b0"] == "C"
    # Two moves (500 each) against a drop saved (FORMAT §2 defaults).
    assert _accepted_score(inst, c, out) > _accepted_score(inst, c, arcs)


def test_the_shortest_chain_is_kept() -> None:
    # With depth 1 tried first, r7 moves to B and b0 to C; the chain through
    # A (r0 out of A to B, then b0 to C) would move three bookings.
    inst, start = _chain_of_two()
    c = compile_instance(inst)
    out, _ = reseat_dropped(c, _arcs_of(c, inst, start))
    at = _at(c, inst, out)
    moved = [r for r, s in at.items() if r.startswith("r") and s != "A"]
    assert moved == ["r7"]


def test_an_unbooked_placement_may_leave_for_a_booking() -> None:
    # B holds seven unbooked children; r7's drop costs more than one of them.
    reqs = [(f"r{i}", ["A", "B"]) for i in range(8)] + [(f"u{i}", ["B"]) for i in range(7)]
    inst = make([("A", 10, 1), ("B", 10, 1)], reqs, [(f"r{i}", "A", False) for i in range(8)])
    c = compile_instance(inst)
    arcs = _arcs_of(c, inst, {f"r{i}": "A" for i in range(7)} | {f"u{i}": "B" for i in range(7)})
    out, seated = reseat_dropped(c, arcs)
    assert seated == 1 and drops(c, out) == 0
    assert sum(1 for r in _at(c, inst, out) if r.startswith("u")) == 6
    assert _accepted_score(inst, c, out) > _accepted_score(inst, c, arcs)


def test_locked_bookings_never_move() -> None:
    # b0 is locked in B: no chain through it, r7 stays dropped.
    inst, start = _chain_of_two()
    doc = inst.model_dump(mode="json", exclude_none=True)
    for b in doc["bookings"]:
        if b["request"].startswith("b"):
            b["locked"] = True
    inst = Instance.model_validate(doc)
    c = compile_instance(inst)
    arcs = _arcs_of(c, inst, start)
    # Only through A: r0..r6 could go to B, which the locked bookings fill.
    out, seated = reseat_dropped(c, arcs)
    assert seated == 0
    assert np.array_equal(out, arcs)


def test_no_check_left_changes_nothing() -> None:
    inst, start = _chain_of_two()
    c = compile_instance(inst)
    arcs = _arcs_of(c, inst, start)
    out, seated = reseat_dropped(c, arcs, max_checks=0)
    assert seated == 0 and np.array_equal(out, arcs)


def test_on_a_district_the_result_is_valid_better_and_repeatable() -> None:
    # Every placement booked, pooled staffing, eight caregivers cut.
    inst = generate_xiamen(4, 1500, 6, bookings=1.0, cut=8, staffing="pooled")
    c = compile_instance(inst)
    start = round_and_repair(c, None)
    assert start is not None and drops(c, start) > 0
    out, seated = reseat_dropped(c, start)
    assert seated > 0 and drops(c, out) == drops(c, start) - seated
    assert _accepted_score(inst, c, out) > score_of_arcs(c, start)
    again, _ = reseat_dropped(c, start)
    assert np.array_equal(out, again)
    # Cut short anywhere, it is still valid and no worse.
    for cap in (50, 500, 5000):
        part, _ = reseat_dropped(c, start, max_checks=cap)
        assert _accepted_score(inst, c, part) >= score_of_arcs(c, start)


def test_regression_search_left_drops_a_chain_of_moves_could_seat() -> None:
    # A district with every placement booked and 12 caregivers cut: the
    # search's neighbourhoods, grown around linked sessions, left 30 drops
    # at 2 units; chains of moves through bookings far apart seat two more.
    inst = generate_xiamen(3, 3000, 12, bookings=1.0, cut=12)
    c = compile_instance(inst)
    off = dataclasses.replace(PARAMS, reseat_max_checks=0)
    before = optimize(c, time_limit=2, deterministic=True, params=off)
    after = optimize(c, time_limit=2, deterministic=True)
    assert after.stats["reseat_seated"] > 0
    assert drops(c, after.arcs) < drops(c, before.arcs)
    assert _accepted_score(inst, c, after.arcs) > _accepted_score(inst, c, before.arcs)
    assert after.bound is not None and after.score <= after.bound


def _thinned(c: Compiled, rnd: Random, keep: float) -> IntArray:
    """A valid start: the greedy one with some placements (bookings among them) taken out."""
    full = round_and_repair(c, None)
    assert full is not None
    return np.asarray(
        [a for a in full.tolist() if c.locked[c.arc_req[a]] or rnd.random() < keep],
        dtype=np.int64,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    instances(bookings=True, max_requests=10),
    st.randoms(use_true_random=False),
    st.sampled_from([3, 20, 2_000_000]),
)
def test_property_reseating_keeps_every_rule_and_never_lowers_the_score(
    inst: Instance, rnd: Random, max_checks: int
) -> None:
    # Cut short (a few checks) it undoes the chain under way: still valid.
    assume(not locked_conflicts(inst))
    c = compile_instance(inst)
    start = _thinned(c, rnd, 0.6)
    out, seated = reseat_dropped(c, start, max_checks=max_checks)
    assert _accepted_score(inst, c, out) >= score_of_arcs(c, start)
    assert drops(c, out) == drops(c, start) - seated


def _every_request_booked() -> Instance:
    """A fully booked district with only its booked requests: the bookings are the whole model."""
    doc = generate_xiamen(3, 8000, 20, bookings=1.0, cut=12).model_dump(
        mode="json", exclude_none=True
    )
    booked = {b["request"] for b in doc["bookings"]}
    doc["requests"] = [r for r in doc["requests"] if r["id"] in booked]
    kids = {k for r in doc["requests"] for k in r["children"]}
    doc["children"] = [ch for ch in doc["children"] if ch["id"] in kids]
    return Instance.model_validate(doc)


def test_chains_run_when_every_request_is_booked() -> None:
    # No bookings-alone arrangement then (it would be the whole model), but
    # the search's answer still goes to the chains.
    inst = _every_request_booked()
    c = compile_instance(inst)
    assert bool((c.booked_session >= 0).all()) and c.n_arcs > PARAMS.whole_model_arcs
    opt = optimize(c, time_limit=2, deterministic=True)
    assert "bookings_dtime" not in opt.stats
    assert "reseat_seated" in opt.stats
    assert opt.bound is not None and _accepted_score(inst, c, opt.arcs) <= opt.bound


def test_rule_8_city_path_reseats_and_keeps_the_floors() -> None:
    # The fully booked district of the regression above, under rule 8, through
    # the city path: the chains run on FCFS while the bookings are arranged,
    # and on the search's answer; the answer still meets every floor.
    doc = generate_xiamen(3, 3000, 12, bookings=1.0, cut=12).model_dump(
        mode="json", exclude_none=True
    )
    doc["policy"]["fairness"] = {"group_floor": "fcfs"}
    inst = Instance.model_validate(doc)
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    runs = {}
    for cap in (0, PARAMS.reseat_max_checks):
        params = dataclasses.replace(PARAMS, mip_max_arcs=0, reseat_max_checks=cap)
        opt = optimize_fair(
            c, inst.policy, optimize, params=params, time_limit=2, seed=0, deterministic=True
        )
        assert opt.stats["strategy"] == "floors-from-lp"
        assert group_floor(c, fcfs).satisfied(opt.arcs)
        assert opt.bound is not None and _accepted_score(inst, c, opt.arcs) <= opt.bound
        runs[cap] = opt
    on = runs[PARAMS.reseat_max_checks]
    assert int(on.stats["reseat_start_seated"]) > 0  # type: ignore[call-overload]
    assert drops(c, on.arcs) <= drops(c, runs[0].arcs)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances(bookings=True, max_requests=10), st.randoms(use_true_random=False))
def test_property_with_floors_no_placement_leaves_below_one(inst: Instance, rnd: Random) -> None:
    # Regression: reseat_and_fill did not pass the floors on to the chains,
    # so on rule 8's city path a chain let children of a group at its floor
    # go and the whole answer was thrown away (x4: 24 bookings seated, none kept).
    assume(not locked_conflicts(inst))
    c = compile_instance(inst)
    start = _thinned(c, rnd, 0.7)
    rule = group_floor(c, start)
    out, _ = reseat_and_fill(c, start, max_checks=2_000_000, deadline=None, floors=rule)
    assert rule.satisfied(out)
    assert _accepted_score(inst, c, out) >= score_of_arcs(c, start)


def test_regression_the_floors_reach_the_chains() -> None:
    # B holds five unbooked toddlers (one caregiver) in a room of five, with a
    # second caregiver free: r7 (older) fits once a toddler leaves. Without a
    # floor it does; with the toddlers' floor at FCFS's five it must not
    # (reseat_and_fill once dropped the floors on the way to the chains, and on
    # x4 rule 8's city path threw 24 seated bookings away).
    reqs = [(f"r{i}", ["A", "B"]) for i in range(8)] + [(f"u{i}", ["B"]) for i in range(5)]
    inst = make([("A", 10, 1), ("B", 5, 2)], reqs, [(f"r{i}", "A", False) for i in range(8)])
    doc = inst.model_dump(mode="json", exclude_none=True)
    for ch in doc["children"]:
        if ch["id"].startswith("c-u"):
            ch["birth_date"] = "2024-01-15"
    inst = Instance.model_validate(doc)
    c = compile_instance(inst)
    start = _arcs_of(c, inst, {f"r{i}": "A" for i in range(7)} | {f"u{i}": "B" for i in range(5)})
    rule = group_floor(c, start)
    free, seated = reseat_and_fill(c, start, max_checks=10_000, deadline=None)
    assert seated == 1 and not rule.satisfied(free)
    kept, seated = reseat_and_fill(c, start, max_checks=10_000, deadline=None, floors=rule)
    assert seated == 0 and rule.satisfied(kept)
