"""The bookings alone arranged (CP-SAT in a thread, HiGHS as its peer), placed first."""

from __future__ import annotations

import numpy as np
from test_fair_repair import _accepted_score
from test_rebalance import _district_with_a_caregiver_cut, make

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance
from slotalloc.result import score_of_arcs
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.build import build_formulation
from slotalloc.solver.fair import optimize_fair
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.optimizer import optimize
from slotalloc.solver.params import OptimizerParams
from slotalloc.solver.rows.group_fairness import group_floor
from slotalloc.solver.search.bookings import (
    ArrangingThread,
    arrange_bookings,
    arrange_bookings_cpsat,
    drops,
    keeps_bookings,
)


def _compiled(inst: Instance) -> tuple[Compiled, IntArray]:
    """The compiled instance and its FCFS."""
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    return c, fcfs


def _weekend_under_rule_8() -> Instance:
    """1 200 requests, 40 % booked, three caregivers cut, ``group_floor: "fcfs"``."""
    data = generate_xiamen(7, 1200, 6, bookings=0.4, cut=3).model_dump(
        mode="json", exclude_none=True
    )
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    return Instance.model_validate(data)


def _cut_pair() -> Instance:
    # Eight older children booked in A, whose caregivers were cut to one
    # (ratio 7): one booking cannot stay, and B has room for it.
    reqs = [(f"r{i}", ["A", "B"]) for i in range(8)]
    return make([("A", 10, 1), ("B", 10, 1)], reqs, [(f"r{i}", "A", False) for i in range(8)])


def test_keeps_bookings_tells_a_drop_from_every_booking_kept_in_place() -> None:
    inst = _cut_pair()
    c, fcfs = _compiled(inst)
    assert drops(c, fcfs) == 1
    assert not keeps_bookings(c, fcfs)
    at_a = np.flatnonzero(c.arc_sess == c.booked_session[c.arc_req])
    assert keeps_bookings(c, at_a)
    assert not keeps_bookings(c, at_a[1:])


def test_the_arrangement_moves_the_booking_fcfsdrops() -> None:
    inst = _cut_pair()
    c, fcfs = _compiled(inst)
    kept = arrange_bookings(build_formulation(c), fcfs, time_limit=10.0)
    assert kept is not None
    assert drops(c, kept) == 0
    # Seven stay in A, one moves to B (FORMAT §2: serve 1000, rank 10, move 500).
    assert _accepted_score(inst, c, kept) == 7 * 1000 + (1000 - 10 - 500)


def test_the_deterministic_arrangement_moves_the_booking_fcfs_drops_as_highs_does() -> None:
    inst = _cut_pair()
    c, fcfs = _compiled(inst)
    kept, spent = arrange_bookings_cpsat(build_formulation(c), fcfs, dtime=5.0)
    assert kept is not None and spent <= 5.0
    assert drops(c, kept) == 0
    assert _accepted_score(inst, c, kept) == 7 * 1000 + (1000 - 10 - 500)


def _cut_district() -> Instance:
    """3 000 requests, 60 % of FCFS's placements booked, 30 % of them locked, six cuts."""
    return generate_xiamen(23, 3000, 12, bookings=0.6, locked=0.3, cut=6)


def test_the_deterministic_arrangement_is_as_good_as_highs_on_a_district_and_repeats() -> None:
    inst = _cut_district()
    c, fcfs = _compiled(inst)
    assert drops(c, fcfs) > 0
    f = build_formulation(c)
    by_highs = arrange_bookings(f, fcfs, time_limit=20.0)
    first, _ = arrange_bookings_cpsat(f, fcfs, dtime=5.0)
    again, _ = arrange_bookings_cpsat(f, fcfs, dtime=5.0)
    assert by_highs is not None and first is not None and again is not None
    assert np.array_equal(first, again)
    assert _accepted_score(inst, c, first) == _accepted_score(inst, c, by_highs)


def test_the_arranging_thread_gives_the_functions_answer_and_can_be_stopped() -> None:
    inst = _cut_district()
    c, fcfs = _compiled(inst)
    f = build_formulation(c)
    direct, _ = arrange_bookings_cpsat(f, fcfs, dtime=5.0)
    threaded, spent = ArrangingThread(f, fcfs, dtime=5.0).result()
    assert direct is not None and threaded is not None and spent > 0
    assert np.array_equal(direct, threaded)
    job = ArrangingThread(f, fcfs, time_limit=30.0)
    job.stop()
    arcs, _ = job.result()
    # Stopped at once, it may still hold a first solution; any it holds is valid.
    if arcs is not None:
        assert _accepted_score(inst, c, arcs) > 0


def test_regression_mip_child_answer_survives_highs_printing_to_stdout() -> None:
    # On this district HiGHS prints a line to stdout from C++
    # (transformNewIntegerFeasibleSolution); the child wrote its answer to the
    # same stream, the parent read the line as the frame, and the bookings'
    # arrangement was silently lost (None), on the plain path too.
    inst = _district_with_a_caregiver_cut()
    c, fcfs = _compiled(inst)
    assert drops(c, fcfs) > 0
    kept = arrange_bookings(build_formulation(c), fcfs, time_limit=20.0)
    assert kept is not None
    assert drops(c, kept) < drops(c, fcfs)
    assert _accepted_score(inst, c, kept) > score_of_arcs(c, fcfs)


def test_the_city_path_places_the_arranged_bookings_first_when_fcfs_drops_some() -> None:
    # 40 % booked, three caregivers cut: FCFS drops bookings that could move.
    inst = _weekend_under_rule_8()
    c, fcfs = _compiled(inst)
    assert drops(c, fcfs) > 0
    runs = {}
    for share in (0.5, 0.0):
        params = OptimizerParams(mip_max_arcs=0, floor_bookings_share=share)
        opt = optimize_fair(c, inst.policy, optimize, params=params, time_limit=4.0, seed=0)
        assert group_floor(c, fcfs).satisfied(opt.arcs)
        assert opt.bound is not None
        assert _accepted_score(inst, c, opt.arcs) <= opt.bound
        runs[share] = opt.stats
    on, off = runs[0.5], runs[0.0]
    assert str(on["start"]).endswith("-bookings") and "bookings_seconds" in on
    assert not str(off["start"]).endswith("-bookings") and "bookings_seconds" not in off
    # The drops the arrangement avoids are worth far more than what the floors cost.
    assert int(on["repaired_score"]) > int(off["repaired_score"])  # type: ignore[call-overload]


def test_a_deterministic_city_path_places_the_arranged_bookings_first_and_repeats() -> None:
    inst = _weekend_under_rule_8()
    c, fcfs = _compiled(inst)
    params = OptimizerParams(mip_max_arcs=0)
    runs = [
        optimize_fair(
            c, inst.policy, optimize, params=params, time_limit=4.0, seed=0, deterministic=True
        )
        for _ in range(2)
    ]
    for opt in runs:
        assert group_floor(c, fcfs).satisfied(opt.arcs)
        assert opt.bound is not None
        assert _accepted_score(inst, c, opt.arcs) <= opt.bound
    assert str(runs[0].stats["start"]).endswith("-bookings")
    assert "bookings_dtime" in runs[0].stats
    assert np.array_equal(runs[0].arcs, runs[1].arcs)
