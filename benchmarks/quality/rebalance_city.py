"""City-scale rebalancing after a caregiver shortfall, and the other city figures.

Steps: generate the city (seed 1, 25000 requests), solve it (10 s), turn the
solution into bookings (30% locked, chosen by a seeded draw), cut one
caregiver at ~10 booked sessions that need all of theirs, re-solve (10 s) and
report moves / drops / placements (``diff_solutions`` against the bookings),
time and score vs bound; everything checked by the verifier. Optional parts:
``--fairness 0.8 0.9`` (cost of the opt-in rule) and ``--plan K`` (time of
``slotalloc plan --top K``).

Usage::

    python benchmarks/quality/rebalance_city.py [--cuts 10] [--fairness 0.8 0.9] [--plan 10]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from slotalloc import solve
from slotalloc.analysis.diff import diff_solutions
from slotalloc.analysis.fairness import audit
from slotalloc.compile import compile_instance
from slotalloc.models import Assignment, Instance, Solution, Status
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solve import hint_arcs
from slotalloc.solver.rows.group_fairness import group_service
from slotalloc.verify import verify


def _checked(inst: Instance, res: Any) -> None:
    rep = verify(inst, res.to_solution())
    assert rep.accepted and rep.score == res.score, rep.violations[:3]


def _line(label: str, res: Any, wall: float) -> str:
    pct = 100 * res.score / res.bound if res.bound else float("nan")
    return (
        f"{label}: status {res.status.value}, score {res.score}, bound {res.bound} "
        f"({pct:.3f}% of bound), {len(res.assignments)} placed, {wall:.2f} s wall"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cuts", type=int, default=10)
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--fairness", type=float, nargs="*", default=[])
    ap.add_argument("--plan", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(7)

    inst = generate_xiamen(1, 25000)
    t = time.perf_counter()
    base = solve(inst, time_limit=args.time_limit, seed=0)
    print(_line("base solve", base, time.perf_counter() - t))
    _checked(inst, base)

    # Bookings from the solution, 30% locked; then cut caregivers at booked sessions.
    doc = inst.model_dump(mode="json", exclude_none=True)
    locked = rng.random(len(base.assignments)) < 0.3
    doc["bookings"] = [
        {"request": a.request, "session": a.session, "locked": bool(lk)}
        for a, lk in zip(base.assignments, locked, strict=True)
    ]
    per_session: dict[str, int] = {}
    for a in base.assignments:
        per_session[a.session] = per_session.get(a.session, 0) + 1
    busy = sorted(per_session, key=lambda s: (-per_session[s], s))
    by_id = {s["id"]: s for s in doc["sessions"]}
    cut: list[str] = []
    for sid in busy:
        if len(cut) == args.cuts:
            break
        if by_id[sid]["caregivers"] >= 2:
            by_id[sid]["caregivers"] -= 1
            cut.append(sid)
    booked = Instance.model_validate(doc)
    print(f"bookings: {len(booked.bookings)} ({int(locked.sum())} locked); caregiver cut at {cut}")

    t = time.perf_counter()
    res = solve(booked, time_limit=args.time_limit, seed=0)
    wall = time.perf_counter() - t
    print(_line("rebalance solve", res, wall))
    figures = res.stats.figures
    print(f"  rounding score {figures.get('rounding_score')}, LP bound {figures.get('lp_bound')}")
    _checked(booked, res)
    before = Solution(
        status=Status.FEASIBLE,
        score=0,
        assignments=tuple(
            Assignment(request=b.request, session=b.session) for b in booked.bookings
        ),
    )
    d = diff_solutions(booked, before, res.to_solution())
    print(f"diff vs bookings: {d.counts()}")
    moved_from_cut = sum(1 for _, old, _ in d.moved if old in cut)
    dropped_from_cut = sum(1 for _, old in d.dropped if old in cut)
    print(f"  of which out of the cut sessions: moved {moved_from_cut}, dropped {dropped_from_cut}")
    ids = set(cut)
    print(
        f"  moved/dropped elsewhere: {len(d.moved) - moved_from_cut} / "
        f"{len(d.dropped) - dropped_from_cut}; cut sessions {len(ids)}"
    )

    c = compile_instance(inst)
    for rate in [None, *args.fairness]:
        t = time.perf_counter()
        r = solve(inst, time_limit=args.time_limit, seed=0, min_group_rate=rate, compiled=c)
        wall = time.perf_counter() - t
        _checked(inst, r)
        served, demand = group_service(c, hint_arcs(c, r))
        kids = int(served.sum())
        a = audit(inst, r.assignments)
        place = ", ".join(
            f"{g} {p}/{q}={p / q:.3f}"
            for g, p, q in zip(c.group_names, served.tolist(), demand.tolist(), strict=True)
        )
        aud = ", ".join(f"{x.value} {x.rate:.3f}" for x in a.dimension("age_group"))
        print(_line(f"fairness {rate}", r, wall))
        print(f"  child places {kids} (overall rate {kids / demand.sum():.3f}); {place}")
        print(f"  audit (children served / requesting): {aud}; overall {a.overall.rate:.3f}")

    if args.plan:
        from slotalloc.analysis.plan import plan

        t = time.perf_counter()
        recs = plan(inst, top=args.plan, time_limit=1.0, seed=0)
        print(f"plan --top {args.plan}: {time.perf_counter() - t:.1f} s wall")
        for rec in recs:
            print("  ", rec.to_dict())


if __name__ == "__main__":
    main()
