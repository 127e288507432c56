"""Rule 9 on small models: lazy rows against resolving the optimiser's answer.

For each generated instance (Xiamen generator, varied size, priorities and
seed), both rules of FORMAT §4 and rule 9 alone are solved twice, alternating:
``lazy`` (CP-SAT on the whole model with lazy justified-envy rows, the default
up to ``envy_lazy_max_arcs``) and ``resolve`` (the optimiser, then the
incumbent's envy resolved by swaps; forced by ``envy_lazy_max_arcs=0``). Every
answer goes through the verifier. The table gives score, bound, status, wall
seconds and the lazy loop's rounds.

Run: ``python benchmarks/quality/envy_lazy.py --time-limit 10``
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time

from slotalloc import solve
from slotalloc.compile import compile_instance
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import generate_xiamen
from slotalloc.solver import fair
from slotalloc.solver.params import PARAMS
from slotalloc.verify import verify


def with_rules(inst: Instance, rules: dict[str, str]) -> Instance:
    data = inst.model_dump(mode="json")
    data["policy"]["fairness"] = rules
    return Instance.model_validate(data)


CASES = [  # (seed, requests, sites, priorities)
    (1, 60, 1, "mix"),
    (2, 120, 2, "mix"),
    (3, 150, 2, "default"),
    (5, 300, 4, "mix"),
    (6, 600, 7, "mix"),
    (7, 600, 7, "default"),
    (8, 1000, 11, "mix"),
    (9, 1500, 16, "mix"),
]
RULES = {
    "rule 9": {"priority": "no_justified_envy"},
    "both": {"group_floor": "fcfs", "priority": "no_justified_envy"},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--time-limit", type=float, default=10.0)
    args = ap.parse_args()
    modes = {"lazy": PARAMS, "resolve": dataclasses.replace(PARAMS, envy_lazy_max_arcs=0)}
    print(f"load {os.getloadavg()[0]:.2f}")
    print("| instance | arcs | rules | mode | score | bound | % of bound | status ", end="")
    print("| wall s | rounds |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for seed, n, sites, prio in CASES:
        base = generate_xiamen(seed, n, sites, priorities=prio)
        arcs = compile_instance(base).n_arcs
        for rname, rules in RULES.items():
            inst = with_rules(base, rules)
            for mode, params in modes.items():
                fair.PARAMS = params  # read at each call: the mode under test
                t = time.perf_counter()
                res = solve(inst, time_limit=args.time_limit, seed=0)
                wall = time.perf_counter() - t
                rep = verify(inst, res.to_solution())
                assert rep.accepted, rep.verdict
                pct = "-" if not res.bound else f"{100 * res.score / res.bound:.2f}"
                rounds = res.stats.figures.get("envy_rounds", "-")
                print(
                    f"| s{seed} {n}/{sites} {prio} | {arcs} | {rname} | {mode} | {res.score} "
                    f"| {res.bound} | {pct} | {res.status.value} | {wall:.1f} | {rounds} |",
                    flush=True,
                )


if __name__ == "__main__":
    main()
