"""The bookings alone arranged by HiGHS, and rule 8's city path placing them first."""

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
from slotalloc.solver.search.bookings import arrange_bookings, keeps_bookings


def _drops(c: Compiled, arcs: IntArray) -> int:
    placed = np.zeros(c.n_requests, dtype=np.bool_)
    placed[c.arc_req[arcs]] = True
    return int(((c.booked_session >= 0) & ~placed).sum())


def _compiled(inst: Instance) -> tuple[Compiled, IntArray]:
    """The compiled instance and its FCFS."""
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    return c, fcfs


def _cut_pair() -> Instance:
    # Eight older children booked in A, whose caregivers were cut to one
    # (ratio 7): one booking cannot stay, and B has room for it.
    reqs = [(f"r{i}", ["A", "B"]) for i in range(8)]
    return make([("A", 10, 1), ("B", 10, 1)], reqs, [(f"r{i}", "A", False) for i in range(8)])


def test_keeps_bookings_tells_a_drop_from_every_booking_kept_in_place() -> None:
    inst = _cut_pair()
    c, fcfs = _compiled(inst)
    assert _drops(c, fcfs) == 1
    assert not keeps_bookings(c, fcfs)
    at_a = np.flatnonzero(c.arc_sess == c.booked_session[c.arc_req])
    assert keeps_bookings(c, at_a)
    assert not keeps_bookings(c, at_a[1:])


def test_the_arrangement_moves_the_booking_fcfs_drops() -> None:
    inst = _cut_pair()
    c, fcfs = _compiled(inst)
    kept = arrange_bookings(build_formulation(c), fcfs, time_limit=10.0)
    assert kept is not None
    assert _drops(c, kept) == 0
    # Seven stay in A, one moves to B (FORMAT §2: serve 1000, rank 10, move 500).
    assert _accepted_score(inst, c, kept) == 7 * 1000 + (1000 - 10 - 500)


def test_regression_mip_child_answer_survives_highs_printing_to_stdout() -> None:
    # On this district HiGHS prints a line to stdout from C++
    # (transformNewIntegerFeasibleSolution); the child wrote its answer to the
    # same stream, the parent read the line as the frame, and the bookings'
    # arrangement was silently lost (None), on the plain path too.
    inst = _district_with_a_caregiver_cut()
    c, fcfs = _compiled(inst)
    assert _drops(c, fcfs) > 0
    kept = arrange_bookings(build_formulation(c), fcfs, time_limit=20.0)
    assert kept is not None
    assert _drops(c, kept) < _drops(c, fcfs)
    assert _accepted_score(inst, c, kept) > score_of_arcs(c, fcfs)


def test_the_city_path_places_the_arranged_bookings_first_when_fcfs_drops_some() -> None:
    # 40 % booked, three caregivers cut: FCFS drops bookings that could move.
    data = generate_xiamen(7, 1200, 6, bookings=0.4, cut=3).model_dump(
        mode="json", exclude_none=True
    )
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    inst = Instance.model_validate(data)
    c, fcfs = _compiled(inst)
    assert _drops(c, fcfs) > 0
    runs = {}
    for share in (0.5, 0.0):
        params = OptimizerParams(mip_max_arcs=0, floor_bookings_share=share)
        opt = optimize_fair(c, inst.policy, optimize, params=params, time_limit=4.0, seed=0)
        assert group_floor(c, fcfs).satisfied(opt.arcs)
        assert opt.bound is not None
        assert _accepted_score(inst, c, opt.arcs) <= opt.bound
        runs[share] = opt.stats
    on, off = runs[0.5], runs[0.0]
    assert str(on["start"]).endswith("-bookings") and "bookings_mip_seconds" in on
    assert not str(off["start"]).endswith("-bookings") and "bookings_mip_seconds" not in off
    # The drops the arrangement avoids are worth far more than what the floors cost.
    assert int(on["repaired_score"]) > int(off["repaired_score"])  # type: ignore[call-overload]


def test_the_arrangement_can_be_ended_and_then_has_no_answer() -> None:
    from slotalloc.solver.search.bookings import BookingsArrangement

    inst = _district_with_a_caregiver_cut()
    c, fcfs = _compiled(inst)
    job = BookingsArrangement(build_formulation(c), fcfs, time_limit=30.0)
    job.stop()
    assert job.result(timeout=5.0) is None
