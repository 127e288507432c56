"""Quality benchmark (not CI): four methods side by side on generated weekends.

Each method runs in its own subprocess (peak memory is that child's
``ru_maxrss``, from ``os.wait4``) on the same generated instance:

* ``fcfs``: first-come-first-served (FORMAT §2 baseline);
* ``cpsat-default``: the same model as slotalloc's, default CP-SAT parameters,
  no hint, no LNS, one ``solve`` with the time limit;
* ``highs``: the same model as a MIP for HiGHS (highspy, 2 threads);
* ``slotalloc``: ``slotalloc.solve`` with the time limit (wall, build included).

Every solution is checked with :func:`slotalloc.verify.verify`. "% of bound"
is score / best upper bound reported by any method on that instance.

Usage::

    python benchmarks/quality/quality.py [--sizes district city ten-city] [--reference-limit 150]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

SIZES = {
    # name: (seed, requests, sites, time limit in seconds)
    "district": (1, 3000, 12, 10.0),
    "city": (1, 25000, 91, 10.0),
    "ten-city": (1, 250000, 910, 120.0),
}
METHODS = ("fcfs", "cpsat-default", "highs", "slotalloc")


def _instance_path(size: str, workdir: Path) -> Path:
    from slotalloc.scenarios.xiamen import generate_xiamen_json

    seed, requests, sites, _ = SIZES[size]
    path = workdir / f"{size}-s{seed}.json"
    if not path.exists():
        path.write_text(generate_xiamen_json(seed, requests, sites), encoding="utf-8")
    return path


def _highs(f: Any, limit: float) -> tuple[list[int] | None, int | None]:
    """HiGHS on the formulation: chosen arcs (None when it found no solution), bound."""
    import highspy

    from slotalloc.solver.formulation import INF

    h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("time_limit", max(0.1, limit))
    h.setOptionValue("threads", 2)
    lp = highspy.HighsLp()
    lp.num_col_ = f.n_vars
    lp.col_cost_ = f.obj.astype(float)
    lp.col_lower_ = f.lb.astype(float)
    lp.col_upper_ = f.ub.astype(float)
    starts, idx, val, lo, hi = [np.zeros(1, np.int64)], [], [], [], []
    nnz = 0
    for b in f.blocks:
        starts.append(b.ptr[1:] + nnz)
        nnz += int(b.ptr[-1])
        idx.append(b.var)
        val.append(b.coef)
        lo.append(np.where(b.lo <= -INF, -highspy.kHighsInf, b.lo))
        hi.append(np.where(b.hi >= INF, highspy.kHighsInf, b.hi))
    lp.num_row_ = int(sum(x.shape[0] for x in lo))
    lp.row_lower_ = np.concatenate(lo).astype(float)
    lp.row_upper_ = np.concatenate(hi).astype(float)
    lp.a_matrix_.format_ = highspy.MatrixFormat.kRowwise
    lp.a_matrix_.start_ = np.concatenate(starts).astype(np.int32)
    lp.a_matrix_.index_ = np.concatenate(idx).astype(np.int32)
    lp.a_matrix_.value_ = np.concatenate(val).astype(float)
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.offset_ = float(f.offset)
    lp.integrality_ = [highspy.HighsVarType.kInteger] * f.n_vars
    h.passModel(lp)
    h.run()
    info = h.getInfo()
    bound = info.mip_dual_bound
    ub = int(np.floor(bound + 1e-6 * abs(bound) + 1e-6)) if np.isfinite(bound) else None
    if info.primal_solution_status == 0:
        return None, ub
    x = np.round(np.asarray(h.getSolution().col_value)[: f.n_arcs]).astype(np.int64)
    return np.flatnonzero(x).tolist(), ub


def _child(method: str, path: str, limit: float, rate: float | None = None) -> None:
    """Run one method; print one JSON line (score, bound, wall, verified).

    ``rate`` (``--child-rate``, used by ``benchmarks/quality/matrix.py``): the opt-in
    ``min_group_rate`` rule, given to ``solve`` (slotalloc) or added to the
    model as its rows (highs, cpsat-default). The line also says whether a
    solution was found, the booked requests dropped and moved, and (with
    ``rate``) whether the solution meets the rule.
    """
    from ortools.sat.python import cp_model

    from slotalloc import load_instance, solve
    from slotalloc.compile import compile_instance
    from slotalloc.models import Status
    from slotalloc.result import result_from_arcs
    from slotalloc.solve import hint_arcs
    from slotalloc.solver.build import build_formulation
    from slotalloc.solver.cpsat_model import to_cp_model
    from slotalloc.solver.rows.group_fairness import group_fairness
    from slotalloc.verify import verify

    inst = load_instance(path)
    found = True
    t0 = time.perf_counter()
    if method == "fcfs":
        res = solve(inst, method="fcfs")
    elif method == "slotalloc":
        res = solve(inst, time_limit=limit, seed=0, min_group_rate=rate)
    else:
        c = compile_instance(inst)
        f = build_formulation(c, None if rate is None else group_fairness(c, rate))
        left = max(0.1, limit - (time.perf_counter() - t0))
        if method == "highs":
            got, bound = _highs(f, left)
            found = got is not None
            arcs = got or []
        else:
            solver = cp_model.CpSolver()
            solver.parameters.max_time_in_seconds = left
            st = solver.solve(to_cp_model(f))
            ok = st in (cp_model.OPTIMAL, cp_model.FEASIBLE)
            sol = np.asarray(solver.response_proto.solution, dtype=np.int64) if ok else None
            arcs = np.flatnonzero(sol[: c.n_arcs]).tolist() if sol is not None else []
            found = ok
            b = solver.best_objective_bound
            # Without a solution CP-SAT may report a meaningless 0; trust its bound
            # only when it ended with a solution.
            bound = int(np.floor(b + 1e-6 * abs(b) + 1e-6)) if ok and np.isfinite(b) else None
        res = result_from_arcs(
            c,
            arcs,
            status=Status.FEASIBLE,
            bound=bound,
            stats={"solver": method},
            instance_name=inst.name,
        )
        if res.score is not None and bound is not None and bound < res.score:
            res = dataclasses.replace(res, bound=None)  # a bound below its own score: unusable
    wall = time.perf_counter() - t0
    rep = verify(inst, res.to_solution())
    placed = {a.request: a.session for a in res.assignments}
    dropped = sum(b.request not in placed for b in inst.bookings)
    moved = sum(
        not b.locked and placed.get(b.request, b.session) != b.session for b in inst.bookings
    )
    fair = None
    if rate is not None:
        c = compile_instance(inst)
        fair = group_fairness(c, rate).satisfied(hint_arcs(c, res))
    print(
        json.dumps(
            {
                "score": res.score,
                "bound": res.bound,
                "wall": wall,
                "accepted": rep.accepted,
                "status": str(res.status),
                "found": found,
                "placed": len(res.assignments),
                "bookings": len(inst.bookings),
                "dropped": dropped,
                "moved": moved,
                "fairness_ok": fair,
                "stats": {
                    k: v for k, v in res.stats.to_json().items() if isinstance(v, int | float | str)
                },
            }
        )
    )


def _run(method: str, path: Path, limit: float, rate: float | None = None) -> dict[str, Any]:
    """Run one method in a child process; its JSON line plus ``peak_mb`` and ``method``."""
    cmd = [sys.executable, __file__, "--child", method, str(path), str(limit)]
    if rate is not None:
        cmd += ["--child-rate", repr(rate)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    row: dict[str, Any] = json.loads(out.strip().splitlines()[-1]) if out.strip() else {}
    row["peak_mb"] = usage.ru_maxrss / 1024  # Linux: kilobytes
    row["method"] = method
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    ap.add_argument("--workdir", default="benchmarks/results/instances")
    ap.add_argument("--out", default="benchmarks/results/batch.md")
    ap.add_argument(
        "--reference-limit",
        type=float,
        default=0.0,
        help="also run HiGHS this long, for a reference upper bound (0: skip)",
    )
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--child-rate", type=float, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        _child(args.child[0], args.child[1], float(args.child[2]), args.child_rate)
        return 0
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    lines = []
    for size in args.sizes:
        seed, requests, sites, limit = SIZES[size]
        path = _instance_path(size, workdir)
        rows = [_run(m, path, limit) for m in args.methods]
        if args.reference_limit > 0:
            ref = _run("highs", path, args.reference_limit)
            ref["method"] = "highs (reference bound)"
            ref["limit"] = args.reference_limit
            rows.append(ref)
        bounds = [r["bound"] for r in rows if r.get("bound") is not None]
        best = min(bounds) if bounds else None
        for r in rows:
            pct = 100.0 * r["score"] / best if best and r.get("score") is not None else float("nan")
            lines.append(
                f"| {size} ({requests} req, {sites} sites, seed {seed}) | {r['method']} | "
                f"{r.get('score')} | {r.get('bound')} | {pct:.3f} | "
                f"{r.get('wall', float('nan')):.2f} | {r.get('limit', limit):g} | "
                f"{r['peak_mb']:.0f} | {r.get('accepted')} |"
            )
            print(lines[-1], flush=True)
    header = [
        "| instance | method | score | bound | % of best bound | wall s | limit s | peak MB "
        "| verified |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table = "\n".join(header + lines) + "\n"
    Path(args.out).with_suffix(".table.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
