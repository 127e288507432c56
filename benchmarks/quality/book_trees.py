"""CPU time per online book, several source trees side by side on one saved city stream.

Writes the state once (``--prepare``: a 30k-request city with ~2k bookings and
its late books, from ``online_speed.city_state``), then for each round runs
every tree in turn, each in its own process: best of 3 passes over the stream,
``time.process_time`` per book. Old trees come from ``git archive REV src | tar
-x -C DIR``, which leaves the repository as it is.

Run::

    python benchmarks/quality/book_trees.py --prepare /tmp/speed
    python benchmarks/quality/book_trees.py /tmp/speed old=/tmp/old/src new=src --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

RUN = r"""
import gc, json, sys, time
from slotalloc.io import load_instance
from slotalloc.models import Child, Request
from slotalloc.online import Allocator
d = sys.argv[1]
inst = load_instance(d + "/inst.json")
late = [(Request.model_validate(r), tuple(Child.model_validate(k) for k in ks))
        for r, ks in json.load(open(d + "/late.json"))]
best = None
for _ in range(3):
    alloc = Allocator(inst)
    book = alloc.book
    gc.disable()
    t = time.process_time()
    for r, ks in late:
        book(r, ks)
    dt = time.process_time() - t
    gc.enable()
    best = dt if best is None else min(best, dt)
print(f"{1e6 * best / len(late):.3f}")
"""


def prepare(folder: Path) -> None:
    sys.path.insert(0, str(Path(__file__).parent))
    from online_speed import city_state

    from slotalloc.io import dump_json

    folder.mkdir(parents=True, exist_ok=True)
    inst, late = city_state(7, 30000)
    (folder / "inst.json").write_text(dump_json(inst), encoding="utf-8")
    rows = [[r.model_dump(mode="json"), [k.model_dump(mode="json") for k in ks]] for r, ks in late]
    (folder / "late.json").write_text(json.dumps(rows), encoding="utf-8")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder")
    ap.add_argument("trees", nargs="*", help="NAME=SRC_DIR")
    ap.add_argument("--prepare", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if args.prepare:
        prepare(Path(args.folder))
        return
    for _ in range(args.rounds):
        for tree in args.trees:
            name, src = tree.split("=", 1)
            env = dict(os.environ, PYTHONPATH=os.path.abspath(src))
            out = subprocess.run([sys.executable, "-c", RUN, args.folder], env=env,
                                 capture_output=True, text=True, check=True)  # fmt: skip
            print(f"{name} {out.stdout.strip()} µs/book", flush=True)
    print(f"load {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
