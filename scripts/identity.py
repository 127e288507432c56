"""Check that a refactoring changed no output: solutions and online decisions byte for byte.

Runs the command line of two versions of slotalloc side by side, the current
tree and a git commit (checked out into a temporary worktree), on the sample
instances and on a generated district and city, in ``--deterministic`` mode
with fixed seeds, and replays the sample event stream; every output file must
be byte-identical, except the wall-clock figures a solution's ``stats`` carry
(keys ending in ``_seconds``, which differ between two runs of the same code):
those lines are left out of the comparison. Exit status 0 when all are
identical, 1 otherwise.

Run: ``python scripts/identity.py BASE_COMMIT`` (from the repository root,
with slotalloc's dependencies installed).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
CLI = "import sys; from slotalloc.cli import main; sys.exit(main())"

# (name, generate args or None for a sample file, solve time limit in work units)
CASES = [
    ("sample-small", None, "5"),
    ("sample-rebalance", None, "5"),
    ("sample-tight", None, "5"),
    ("district", ["--seed", "3", "--requests", "3000", "--sites", "10"], "5"),
    (
        "district-bookings",
        [
            "--seed",
            "4",
            "--requests",
            "3000",
            "--sites",
            "10",
            "--bookings",
            "0.5",
            "--locked",
            "0.3",
            "--cut",
            "3",
        ],
        "5",
    ),
    ("city", ["--seed", "5", "--requests", "20000"], "5"),
]


def run(src: Path, args: list[str]) -> None:
    env = dict(os.environ, PYTHONPATH=str(src))
    out = subprocess.run(
        [sys.executable, "-c", CLI, *args], env=env, capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        sys.exit(f"{src}: slotalloc {' '.join(args)} failed: {out.stderr.strip()}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("base", help="the commit to compare with (e.g. the one before the change)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        old = t / "old"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(old), args.base],
            check=True,
        )
        try:
            return compare(t, old / "src", ROOT / "src")
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False
            )


def compare(t: Path, old_src: Path, new_src: Path) -> int:
    bad = 0
    for name, gen, limit in CASES:
        inst = DATA / f"{name}.json"
        if gen is not None:
            inst = t / f"{name}.json"
            run(new_src, ["generate", "xiamen", *gen, "-o", str(inst)])
            again = t / f"{name}.old.json"
            run(old_src, ["generate", "xiamen", *gen, "-o", str(again)])
            bad += report(f"generate {name}", inst, again)
        outs = []
        for tag, src in (("old", old_src), ("new", new_src)):
            out = t / f"{name}.{tag}.solution.json"
            solve = ["solve", str(inst), "-o", str(out), "--deterministic", "--seed", "0"]
            run(src, [*solve, "--time-limit", limit, "--quiet"])
            outs.append(out)
        bad += report(f"solve {name}", *outs)
    outs = []
    for tag, src in (("old", old_src), ("new", new_src)):
        out = t / f"decisions.{tag}.jsonl"
        run(src, ["replay", str(DATA / "sample-events.json"), str(DATA / "sample-events.jsonl"),
                  "-o", str(out)])  # fmt: skip
        outs.append(out)
    bad += report("replay sample-events", *outs)
    print("identical" if bad == 0 else f"{bad} output(s) differ")
    return 1 if bad else 0


_CLOCK = re.compile(rb'^\s*"[a-z_]*_seconds": [0-9.e+-]+,?$', re.MULTILINE)


def _bytes(path: Path) -> bytes:
    return _CLOCK.sub(b"", path.read_bytes())


def report(what: str, a: Path, b: Path) -> int:
    same = _bytes(a) == _bytes(b)
    print(f"{'same' if same else 'DIFFERENT'}  {what}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
