"""FORMAT §4 on a city: child places by age group and justified envy, per policy.

Policies: first-come-first-served (file order), the optimiser by default,
``--min-group-rate 0.8``, ``group_floor: "fcfs"``, and both rules (group floor
and no justified envy). Every solution is verified (the fairness rules from
the verifier's own FCFS); the table gives child places by home group, the
total against FCFS, the score against the solver's own bound, and the
justified-envy pairs counted by the verifier.

Run: ``python benchmarks/quality/fairness_city.py --seed 21 --requests 20000 --time-limit 10``
"""

from __future__ import annotations

import argparse
import json
import os
import time

from slotalloc import solve
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.verify import fcfs_assignment, group_places, justified_envy, verify


def with_rules(inst: Instance, rules: dict[str, str] | None) -> Instance:
    data = inst.model_dump(mode="json")
    if rules:
        data["policy"]["fairness"] = rules
    return Instance.model_validate(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--sites", type=int, default=91)
    ap.add_argument("--priorities", default="mix", choices=["default", "mix"])
    ap.add_argument("--time-limit", type=float, default=10.0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    base = generate_xiamen(args.seed, args.requests, args.sites, priorities=args.priorities)
    policies: list[tuple[str, dict[str, str] | None, dict[str, object]]] = [
        ("FCFS (file order)", None, {"method": "fcfs"}),
        ("optimiser, default", None, {}),
        ("--min-group-rate 0.8", None, {"min_group_rate": 0.8}),
        ('group_floor "fcfs"', {"group_floor": "fcfs"}, {}),
        ("both rules", {"group_floor": "fcfs", "priority": "no_justified_envy"}, {}),
    ]
    fcfs_kids = None
    rows = []
    print(f"load {os.getloadavg()[0]:.2f}; {len(base.requests)} requests, {args.sites} sites")
    for name, rules, kw in policies:
        inst = with_rules(base, rules)
        t = time.perf_counter()
        res = solve(inst, time_limit=args.time_limit, seed=0, **kw)  # type: ignore[arg-type]
        wall = time.perf_counter() - t
        report = verify(inst, res.to_solution())
        pairs = [(a.request, a.session) for a in res.assignments]
        places = group_places(inst, pairs)
        kids = sum(places.values())
        fcfs_kids = kids if fcfs_kids is None else fcfs_kids
        floor = group_places(inst, fcfs_assignment(inst, priority_order=False) or [])
        row = {
            "policy": name,
            "accepted": report.accepted,
            "child_places": kids,
            "vs_fcfs_pct": round(100 * (kids / fcfs_kids - 1), 2),
            **places,
            "below_fcfs": [g for g in places if places[g] < floor[g]],
            "score": res.score,
            "bound": res.bound,
            "pct_of_bound": None if not res.bound else round(100 * res.score / res.bound, 2),
            "envy_pairs": len(justified_envy(inst, pairs)),
            "wall_s": round(wall, 1),
        }
        rows.append(row)
        print(json.dumps(row), flush=True)
    groups = [g.name for g in base.policy.groups]
    print("\n| policy | verified | child places | vs FCFS | " + " | ".join(groups)
          + " | % of own bound | justified-envy pairs |")  # fmt: skip
    print("|---|---|---|---|" + "---|" * len(groups) + "---|---|")
    for r in rows:
        cells = " | ".join(str(r[g]) for g in groups)
        pct = "-" if r["pct_of_bound"] is None else f"{r['pct_of_bound']}%"
        print(f"| {r['policy']} | {r['accepted']} | {r['child_places']} | {r['vs_fcfs_pct']:+}% | "
              f"{cells} | {pct} | {r['envy_pairs']} |")  # fmt: skip
    if args.json:
        with open(args.json, "w", encoding="utf-8") as fh:
            json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
