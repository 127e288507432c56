"""Both fairness rules (FORMAT §4 rules 8 and 9) on one city: one verified run.

Prints one JSON line: the score against the bound, the verifier's verdict,
the justified-envy pairs, child places against FCFS in priority order and the
groups served below it (rule 8's reference under both rules), and the strategy.
With ``--compare``, the plain optimiser and rule 8 alone are run too (the same
budget), and their child places printed beside: what both rules cost.
Old code beside new: run it with ``PYTHONPATH=/tmp/old/src`` (``git archive REV
src | tar -x -C /tmp/old``), then without, alternating, city by city.

Run: ``python benchmarks/quality/both_rules_city.py s21 --time-limit 10``
(keys: ``floor_city.py``'s cities by their first word, s21 ... t505, and g5-g7).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from floor_city import TIGHT, UNSEEN, VARIANTS

from slotalloc import solve
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.verify import fcfs_assignment, group_places, justified_envy, verify

#: Cities first run for both rules (session 15), never tuned on.
EXTRA: dict[str, dict[str, object]] = {
    "g5": {
        "seed": 705,
        "requests": 9000,
        "sites": 40,
        "staffing": "pooled",
        "overlap": True,
        "cut": 8,
        "bookings": 0.2,
        "bookings_from": "plan",
    },
    "g6": {
        "seed": 706,
        "requests": 22000,
        "tight": True,
        "priorities": "mix",
        "bookings": 0.3,
        "locked": 0.1,
        "cut": 15,
    },
    "g7": {
        "seed": 707,
        "requests": 26000,
        "staffing": "pooled",
        "overlap": True,
        "priorities": "mix",
    },
}


def cities() -> dict[str, dict[str, object]]:
    out = {f"s{args['seed']}": args for _, args in VARIANTS}
    out.update({name.split(",")[0]: args for name, args in UNSEEN + TIGHT})
    out.update(EXTRA)
    return out


def main() -> None:
    pool = cities()
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("city", choices=sorted(pool))
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--compare", action="store_true", help="also the plain optimiser and rule 8")
    args = ap.parse_args()
    base = generate_xiamen(**pool[args.city])  # type: ignore[arg-type]
    data = base.model_dump(mode="json")
    data["policy"]["fairness"] = {"group_floor": "fcfs", "priority": "no_justified_envy"}
    inst = Instance.model_validate(data)
    load = os.getloadavg()[0]
    t = time.perf_counter()
    res = solve(inst, time_limit=args.time_limit, seed=0)
    wall = time.perf_counter() - t
    sol = res.to_solution()
    pairs = [(a.request, a.session) for a in sol.assignments]
    report = verify(inst, sol)
    floor = group_places(inst, fcfs_assignment(inst, priority_order=True))
    places = group_places(inst, pairs)
    row = {
        "city": args.city,
        "score": res.score,
        "bound": res.bound,
        "pct_of_bound": round(100 * res.score / res.bound, 2) if res.bound else None,
        "accepted": report.accepted and report.score == res.score,
        "envy_pairs": len(justified_envy(inst, pairs)),
        "child_places": sum(places.values()),
        "fcfs_priority_order": sum(floor.values()),
        "below_fcfs": [g for g in floor if places.get(g, 0) < floor[g]],
        "strategy": res.stats.figures.get("strategy"),
        "wall_s": round(wall, 1),
        "load": round(load, 2),
    }
    if args.compare:
        for name, rules in [("plain", None), ("rule8", {"group_floor": "fcfs"})]:
            d = base.model_dump(mode="json")
            d["policy"]["fairness"] = rules
            other = Instance.model_validate(d)
            r = solve(other, time_limit=args.time_limit, seed=0)
            rep = verify(other, r.to_solution())
            got = group_places(other, [(a.request, a.session) for a in r.assignments])
            row[f"{name}_accepted"] = rep.accepted and rep.score == r.score
            row[f"{name}_child_places"] = sum(got.values())
            row[f"{name}_score"] = r.score
    print(json.dumps(row))


if __name__ == "__main__":
    main()
