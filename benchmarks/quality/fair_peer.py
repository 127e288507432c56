"""Rule 8 (``group_floor: "fcfs"``) against the peer: slotalloc beside HiGHS on the same model.

For each generated instance (Xiamen generator; sizes, seeds and priorities
varied, none tuned on), rule 8 is switched on and solved, alternating, by
``slotalloc.solve`` and by HiGHS (highspy, 2 threads) on slotalloc's exact
formulation with the floor rows (``build_formulation(c, group_floor(c, F))``,
F the solver's FCFS; the verifier checks the floors from its own FCFS). Both
get the same wall budget; every answer goes through the verifier. Rule 9 has
no linear model, so HiGHS is not run under it.

Run: ``python benchmarks/quality/fair_peer.py --time-limit 10``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from fairness_city import with_rules

from quality import _highs
from slotalloc import solve
from slotalloc.compile import compile_instance
from slotalloc.models import Status
from slotalloc.result import result_from_arcs
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver.build import build_formulation
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.rows.group_fairness import group_floor
from slotalloc.verify import verify

CASES = [  # (seed, requests, sites, priorities)
    (41, 2000, 10, "mix"),
    (42, 5000, 20, "default"),
    (43, 8000, 40, "mix"),
    (21, 20000, 91, "mix"),
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    print(f"load {os.getloadavg()[0]:.2f}")
    print("| instance | arcs | method | score | bound | % of own bound | verified | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for seed, n, sites, prio in CASES:
        inst = with_rules(generate_xiamen(seed, n, sites, priorities=prio), {"group_floor": "fcfs"})
        for method in ("slotalloc", "highs"):
            t0 = time.perf_counter()
            if method == "slotalloc":
                res = solve(inst, time_limit=args.time_limit, seed=0)
            else:
                c = compile_instance(inst)
                start = first_come_first_served(c)
                assert start is not None
                f = build_formulation(c, group_floor(c, start))
                left = max(0.1, args.time_limit - (time.perf_counter() - t0))
                got, bound = _highs(f, left)
                if got is None:
                    print(f"| s{seed} {n}/{sites} {prio} | {c.n_arcs} | highs | no solution |")
                    continue
                res = result_from_arcs(
                    c,
                    got,
                    status=Status.FEASIBLE,
                    bound=bound,
                    stats={"solver": "highs"},
                    instance_name=inst.name,
                )
                if res.score is not None and bound is not None and bound < res.score:
                    res = dataclasses.replace(res, bound=None)  # unusable: below its own score
            wall = time.perf_counter() - t0
            rep = verify(inst, res.to_solution())
            arcs = compile_instance(inst).n_arcs
            pct = "-" if not res.bound else f"{100 * (res.score or 0) / res.bound:.2f}"
            print(
                f"| s{seed} {n}/{sites} {prio} | {arcs} | {method} | {res.score} | {res.bound} "
                f"| {pct} | {rep.accepted} | {wall:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
