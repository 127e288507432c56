"""Scale-out benchmark: ``solve_distributed`` on generated Xiamen weekends.

Each run is its own subprocess (so peak memory is that run's: the driver's
``ru_maxrss`` plus, for Ray, the largest worker's, read from ``ray::`` worker
processes' ``/proc`` status while the run goes). Every solution is checked by
``slotalloc.verify.verify``.

Examples
--------
python benchmarks/quality/scale_out.py --requests 250000 --sites 910 --workers 1 2 --time-limit 120
python benchmarks/quality/scale_out.py --requests 1000000 --sites 3640 --workers 2 --time-limit 600
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path


def _worker_peak_mb(stop: threading.Event, out: list[float]) -> None:
    """Largest resident set of any Ray worker seen while the run goes."""
    peak = 0.0
    while not stop.wait(0.5):
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
                if not cmd.startswith(b"ray::"):
                    continue
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        peak = max(peak, int(line.split()[1]) / 1024)
            except OSError:
                continue
    out.append(peak)


def one_run(args: argparse.Namespace) -> dict[str, object]:
    from slotalloc.distributed import solve_distributed
    from slotalloc.scenarios.xiamen import generate_xiamen
    from slotalloc.verify import verify

    t = time.perf_counter()
    inst = generate_xiamen(args.seed, args.requests, args.sites)
    gen = time.perf_counter() - t
    stop = threading.Event()
    peaks: list[float] = []
    watcher = threading.Thread(target=_worker_peak_mb, args=(stop, peaks), daemon=True)
    watcher.start()
    t = time.perf_counter()
    res = solve_distributed(
        inst,
        executor=args.executor,
        workers=args.workers[0],
        time_limit=args.time_limit,
        seed=0,
        part_requests=args.part_requests,
    )
    wall = time.perf_counter() - t
    stop.set()
    watcher.join()
    report = verify(inst, res.to_solution())
    stats = res.stats.to_json()
    return {
        "requests": args.requests,
        "sites": args.sites,
        "executor": args.executor,
        "workers": stats.get("workers"),
        "time_limit": args.time_limit,
        "generate_seconds": round(gen, 1),
        "wall_seconds": round(wall, 1),
        "score": res.score,
        "bound": res.bound,
        "pct_of_bound": None if not res.bound else round(100 * res.score / res.bound, 3),
        "verified": report.accepted,
        "driver_peak_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "worker_peak_mb": round(peaks[0]) if peaks else None,
        "stats": {k: v for k, v in stats.items() if k != "part_seconds"},
        "part_seconds_max": max(stats.get("part_seconds") or [0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=250_000)
    ap.add_argument("--sites", type=int, default=910)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--executor", default="ray", choices=["inprocess", "process", "ray"])
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--time-limit", type=float, default=120.0)
    ap.add_argument("--part-requests", type=int, default=25_000)
    ap.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None, help="append JSON lines here")
    args = ap.parse_args()
    if args.one:
        print(json.dumps(one_run(args)))
        return
    for w in args.workers:
        cmd = [sys.executable, __file__, "--one", "--workers", str(w)]
        for k in ("requests", "sites", "seed", "executor", "time_limit", "part_requests"):
            cmd += [f"--{k.replace('_', '-')}", str(getattr(args, k))]
        line = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip()
        row = line.splitlines()[-1]
        print(row, flush=True)
        if args.out is not None:
            with args.out.open("a", encoding="utf-8") as fh:
                fh.write(row + "\n")


if __name__ == "__main__":
    main()
