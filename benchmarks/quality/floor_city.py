"""Rule 8 (``group_floor: "fcfs"``) on cities: score against bound, child places against FCFS.

For each generator variant (none of them tuned on but the first), the
optimiser's answer under the rule is verified, and the table gives its score
against its own bound, its child places against FCFS, and two LP bounds
that say what is possible at all: the most child places any assignment
meeting the floors can have (the LP relaxation maximising child places under
the floor rows, an upper bound), and the child places of the LP's score
optimum under them.

Run: ``python benchmarks/quality/floor_city.py --time-limit 10`` (cities) or
``python benchmarks/quality/floor_city.py --set districts --no-lp --time-limit 10``.
"""

from __future__ import annotations

import argparse
import json
import os
import time

from slotalloc import solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.bounds.lp import solve_lp
from slotalloc.solver.build import build_formulation
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.params import PARAMS
from slotalloc.solver.rows.group_fairness import group_floor
from slotalloc.solver.rows.staffing_hull import add_staffing_hull
from slotalloc.verify import fcfs_assignment, group_places, verify

#: (name, generate_xiamen arguments)
VARIANTS: list[tuple[str, dict[str, object]]] = [
    ("seed 21, 20k, mix", {"seed": 21, "requests": 20000, "priorities": "mix"}),
    ("seed 33, 25k", {"seed": 33, "requests": 25000}),
    (
        "seed 5, 20k, 30 % booked, 10 % locked",
        {"seed": 5, "requests": 20000, "bookings": 0.3, "locked": 0.1},
    ),
    (
        "seed 8, 20k, mix, pooled, overlap",
        {"seed": 8, "requests": 20000, "priorities": "mix", "staffing": "pooled", "overlap": True},
    ),
    (
        "seed 13, 20k, mix, 20 % booked, 30 cuts",
        {"seed": 13, "requests": 20000, "priorities": "mix", "bookings": 0.2, "cut": 30},
    ),
]

#: Cities first run after RINS was tuned on ``VARIANTS`` (session 10): other
#: sizes, pooled staffing, tight rooms, overlap with locks, bookings and cuts.
UNSEEN: list[tuple[str, dict[str, object]]] = [
    (
        "u61, 18k, mix, pooled, 20 % booked",
        {"seed": 61, "requests": 18000, "bookings": 0.2, "priorities": "mix", "staffing": "pooled"},
    ),
    ("u77, 30k, tight", {"seed": 77, "requests": 30000, "tight": True}),
    (
        "u90, 22k, overlap, 5 % locked, 10 % booked, 15 cuts",
        {
            "seed": 90,
            "requests": 22000,
            "overlap": True,
            "locked": 0.05,
            "bookings": 0.1,
            "cut": 15,
        },
    ),
]

#: Cities first run in session 11: tight rooms with many bookings and locks,
#: where the repair of the rounded LP point finds too little to evict.
TIGHT: list[tuple[str, dict[str, object]]] = [
    (
        "t303, 26k, mix, tight, 15 % locked, 30 % booked",
        {
            "seed": 303,
            "requests": 26000,
            "priorities": "mix",
            "locked": 0.15,
            "bookings": 0.3,
            "tight": True,
        },
    ),
    (
        "t404, 22k, tight, 10 % locked, 30 % booked",
        {"seed": 404, "requests": 22000, "locked": 0.1, "bookings": 0.3, "tight": True},
    ),
    (
        "t505, 20k, mix, tight, 15 % locked, 25 % booked, 10 cuts",
        {
            "seed": 505,
            "requests": 20000,
            "priorities": "mix",
            "locked": 0.15,
            "bookings": 0.25,
            "tight": True,
            "cut": 10,
        },
    ),
]

#: Districts (up to ``mip_max_arcs`` arcs), the same way.
DISTRICTS: list[tuple[str, dict[str, object]]] = [
    ("s41 2000/10 mix", {"seed": 41, "requests": 2000, "sites": 10, "priorities": "mix"}),
    ("s42 5000/20", {"seed": 42, "requests": 5000, "sites": 20}),
    ("s43 8000/40 mix", {"seed": 43, "requests": 8000, "sites": 40, "priorities": "mix"}),
    (
        "s44 6000/25 mix, 30 % booked, 10 % locked",
        {
            "seed": 44,
            "requests": 6000,
            "sites": 25,
            "priorities": "mix",
            "bookings": 0.3,
            "locked": 0.1,
        },
    ),
    (
        "s45 4000/15, overlap, pooled",
        {"seed": 45, "requests": 4000, "sites": 15, "overlap": True, "staffing": "pooled"},
    ),
]


def with_floor(inst: Instance) -> Instance:
    data = inst.model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs"}
    return Instance.model_validate(data)


def lp_child_places(inst: Instance) -> tuple[int, int]:
    """(most child places under the floors, child places at the LP's score optimum), by LP."""
    c = compile_instance(inst)
    fcfs = first_come_first_served(c)
    assert fcfs is not None
    rule = group_floor(c, fcfs)
    A = c.n_arcs
    kids = rule.home[c.arc_req].sum(axis=1)
    f = build_formulation(c, rule)
    add_staffing_hull(f)
    lp = solve_lp(f, glop_parameters=PARAMS.glop_parameters)
    at_score = round(float(kids @ lp.values[:A]))
    f.obj[:A] = kids
    f.obj[A:] = 0
    f.offset = 0
    most = solve_lp(f, glop_parameters=PARAMS.glop_parameters)
    assert most.bound is not None
    return int(most.bound), at_score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--set", choices=["cities", "unseen", "tight", "districts"], default="cities")
    ap.add_argument("--only", type=int, default=None, help="run one variant (its index)")
    ap.add_argument("--no-lp", action="store_true", help="skip the LP child-place bounds")
    args = ap.parse_args()
    pool = {"cities": VARIANTS, "unseen": UNSEEN, "tight": TIGHT, "districts": DISTRICTS}[args.set]
    chosen = pool if args.only is None else [pool[args.only]]
    rows = []
    for name, kw in chosen:
        inst = with_floor(generate_xiamen(**kw))  # type: ignore[arg-type]
        load = os.getloadavg()[0]
        t = time.perf_counter()
        res = solve(inst, time_limit=args.time_limit, seed=0)
        wall = time.perf_counter() - t
        report = verify(inst, res.to_solution())
        placed = group_places(inst, [(a.request, a.session) for a in res.assignments])
        floor = group_places(inst, fcfs_assignment(inst) or [])
        kids, fcfs_kids = sum(placed.values()), sum(floor.values())
        row: dict[str, object] = {
            "variant": name,
            "arcs": compile_instance(inst).n_arcs,
            "load": round(load, 2),
            "accepted": report.accepted,
            "score": res.score,
            "bound": res.bound,
            "pct_of_bound": None if not res.bound else round(100 * res.score / res.bound, 2),
            "child_places": kids,
            "fcfs_child_places": fcfs_kids,
            "vs_fcfs_pct": round(100 * (kids / fcfs_kids - 1), 2),
            "below_fcfs": [g for g in placed if placed[g] < floor[g]],
            "wall_s": round(wall, 1),
        }
        if not args.no_lp:
            most, at_score = lp_child_places(inst)
            row["lp_most_child_places"] = most
            row["lp_most_vs_fcfs_pct"] = round(100 * (most / fcfs_kids - 1), 2)
            row["lp_score_optimum_child_places"] = at_score
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(
        "\n| variant | verified | score | % of bound | child places | vs FCFS "
        "| LP: most child places under the floors (vs FCFS) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        lp = (
            f"{r['lp_most_child_places']} ({r['lp_most_vs_fcfs_pct']:+} %)"
            if "lp_most_child_places" in r
            else "-"
        )
        print(
            f"| {r['variant']} | {r['accepted']} | {r['score']} | {r['pct_of_bound']} % | "
            f"{r['child_places']} | {r['vs_fcfs_pct']:+} % | {lp} |"
        )


if __name__ == "__main__":
    main()
