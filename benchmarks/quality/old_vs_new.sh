#!/usr/bin/env bash
# Old code beside new, alternating, on the same instances and cores (quality tier).
# Usage: git worktree add /tmp/old REV && benchmarks/quality/old_vs_new.sh /tmp/old/src INSTANCE.json...
# Each run: slotalloc.solve(inst, time_limit=10, seed=0), verified; twice per side.
set -euo pipefail
old_src=$1; shift
py=${PYTHON:-.venv/bin/python}
run='
import sys, time
from slotalloc import load_instance, solve
from slotalloc.verify import verify
inst = load_instance(sys.argv[1])
t = time.perf_counter(); r = solve(inst, time_limit=10, seed=0); w = time.perf_counter() - t
rep = verify(inst, r.to_solution())
booked = {b.request for b in inst.bookings}; placed = {a.request for a in r.assignments}
pct = 100 * r.score / r.bound if r.bound else float("nan")
print(f"score {r.score} bound {r.bound} ({pct:.3f}%) drops {len(booked - placed)} wall {w:.1f} accepted {rep.accepted and rep.score == r.score}")
'
for inst in "$@"; do
  for _ in 1 2; do
    echo "old $inst: $(PYTHONPATH=$old_src $py -c "$run" "$inst" 2>/dev/null)"
    echo "new $inst: $($py -c "$run" "$inst" 2>/dev/null)"
  done
done
uptime
