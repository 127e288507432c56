"""Rule 8 (``group_floor: "fcfs"``) on one city where caregivers were cut: one verified run.

Prints one JSON line: whether FCFS drops a booking (only then are the
bookings arranged alone, by one CP-SAT worker in a thread beside the LP,
``floor_bookings_share``), the start the city path took and its score, the
answer's score against its bound, its dropped bookings, the bookings
phase's figures, and the verifier's verdict. With ``--plain`` the plain
optimiser (no fairness rule) runs instead: its bookings phase is the same
worker beside its LP (``rebalance_share``, ``rebalance_wall_share``).

Old code beside new: run it with ``PYTHONPATH=/tmp/old/src`` (``git archive REV
src | tar -x -C /tmp/old``), then without, alternating, city by city.

``--deterministic`` makes the run reproducible (the limit in CP-SAT
deterministic units). ``--set floor_rins_share=0.2`` replaces one of the fair path's tuning
constants for the run (measuring it).

Run: ``python benchmarks/quality/floor_bookings.py g6 --time-limit 10``
(keys as ``both_rules_city.py``'s, s21 ... t505 and g5-g7, c1-c4, n1-n3, b1-b2 and x1-x4).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np
from both_rules_city import cities

import slotalloc.solver.fair as fair
from slotalloc import solve
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.verify import fcfs_assignment, verify

#: Cities with caregivers cut, first run in session 16 (never tuned on): more
#: bookings, locks, pooled staffing, overlap, tight rooms, the priority mix.
CUTS: dict[str, dict[str, object]] = {
    "c1": {"seed": 901, "requests": 20000, "bookings": 0.3, "cut": 20, "priorities": "mix"},
    "c2": {
        "seed": 902,
        "requests": 24000,
        "staffing": "pooled",
        "bookings": 0.4,
        "locked": 0.05,
        "cut": 40,
    },
    "c3": {
        "seed": 903,
        "requests": 18000,
        "overlap": True,
        "tight": True,
        "bookings": 0.2,
        "cut": 25,
    },
    "c4": {"seed": 904, "requests": 20000, "bookings": 0.4, "locked": 0.2, "cut": 10},
}


#: Cities first run in session 17 (never tuned on), to check a constant chosen
#: on the others: more requests, fewer sites, bookings from the optimiser's plan.
FRESH: dict[str, dict[str, object]] = {
    "n1": {
        "seed": 1701,
        "requests": 28000,
        "staffing": "pooled",
        "priorities": "mix",
        "bookings": 0.3,
        "cut": 30,
    },
    "n2": {
        "seed": 1702,
        "requests": 15000,
        "sites": 60,
        "overlap": True,
        "bookings": 0.3,
        "locked": 0.3,
        "cut": 12,
    },
    "n3": {
        "seed": 1703,
        "requests": 22000,
        "tight": True,
        "bookings": 0.5,
        "bookings_from": "plan",
        "cut": 20,
    },
}

#: Cities first run in session 18 (never tuned on): nearly every placement
#: booked, where the bookings' arrangement is hardest.
BOOKED: dict[str, dict[str, object]] = {
    "b1": {"seed": 1801, "requests": 20000, "bookings": 1.0, "locked": 0.1, "cut": 25},
    "b2": {
        "seed": 1802,
        "requests": 12000,
        "sites": 50,
        "staffing": "pooled",
        "overlap": True,
        "bookings": 0.8,
        "bookings_from": "plan",
        "cut": 40,
    },
}


#: Cities first run in session 20 (never tuned on), for the chains of moves
#: that re-seat dropped bookings: every placement or nearly booked, more cuts.
RESEAT: dict[str, dict[str, object]] = {
    "x1": {"seed": 2001, "requests": 15000, "bookings": 1.0, "cut": 40, "staffing": "pooled"},
    "x2": {
        "seed": 2002,
        "requests": 25000,
        "bookings": 0.9,
        "locked": 0.3,
        "cut": 30,
        "overlap": True,
    },
    "x3": {
        "seed": 2003,
        "requests": 10000,
        "sites": 40,
        "bookings": 1.0,
        "bookings_from": "plan",
        "cut": 20,
        "tight": True,
    },
    "x4": {"seed": 2004, "requests": 20000, "bookings": 1.0, "cut": 60, "priorities": "mix"},
}


def main() -> None:
    pool = {**cities(), **CUTS, **FRESH, **BOOKED, **RESEAT}
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("city", choices=sorted(pool))
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--plain", action="store_true", help="the plain optimiser instead of rule 8")
    ap.add_argument(
        "--deterministic",
        action="store_true",
        help="a deterministic run: the time limit is in CP-SAT deterministic units",
    )
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a tuning constant of the fair path (OptimizerParams field), for measuring it",
    )
    args = ap.parse_args()
    for item in args.set:
        name, value = item.split("=", 1)
        current = getattr(fair.PARAMS, name)
        kind = int if current is None else type(current)
        parsed = None if value == "None" else kind(value)
        fair.PARAMS = dataclasses.replace(fair.PARAMS, **{name: parsed})
    data = generate_xiamen(**pool[args.city]).model_dump(mode="json")  # type: ignore[arg-type]
    if not args.plain:
        data["policy"]["fairness"] = {"group_floor": "fcfs"}
    inst = Instance.model_validate(data)
    booked = {b.request for b in inst.bookings}
    fcfs = {r for r, _ in fcfs_assignment(inst) or []}
    load = os.getloadavg()[0]
    t = time.perf_counter()
    res = solve(inst, time_limit=args.time_limit, seed=0, deterministic=args.deterministic)
    wall = time.perf_counter() - t
    report = verify(inst, res.to_solution())
    placed = {a.request for a in res.assignments}
    fig = res.stats.figures
    row = {
        "city": args.city,
        "policy": "plain" if args.plain else "group_floor",
        "code": os.environ.get("PYTHONPATH", "new") or "new",
        "set": args.set,
        "deterministic": args.deterministic,
        "load": round(load, 2),
        "accepted": report.accepted,
        "fcfs_drops": len(booked - fcfs),
        "start": fig.get("start"),
        "start_score": fig.get("repaired_score"),
        **{k: v for k, v in fig.items() if "bookings" in k},
        "score": res.score,
        "bound": res.bound,
        "pct_of_bound": None
        if not res.bound or res.score is None
        else float(np.round(100 * res.score / res.bound, 3)),
        "drops": len(booked - placed),
        "reseat_seated": fig.get("reseat_seated"),
        "wall_s": round(wall, 1),
    }
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
