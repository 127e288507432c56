"""Quality matrix (not CI): slotalloc against HiGHS over scenario variants and sizes.

Protocol
--------
**Instances.** Every cell is one generated instance,
``slotalloc.scenarios.xiamen.generate_xiamen_json(seed, requests, sites, **variant)``
(docs/generator.md, "Variants"), written once to ``--workdir`` as
``<instance name>.json`` and reused from there (``--regenerate`` rewrites it).
The seed is fixed per size, and is not seed 1, which older benchmarks were
tuned on:

======== ======== ===== ====
size     requests sites seed
======== ======== ===== ====
tiny          300     3   10   (smoke test of this script only)
small         600     5   11
district     4500    15   12
city        20000    91   13
======== ======== ===== ====

Variants (name: generator options; solve options):

* ``empty``: no bookings;
* ``fcfs20-l10``: 20 % of the first-come-first-served placements booked, 10 % of them locked;
* ``fcfs60-l50``: 60 % booked from FCFS, 50 % locked;
* ``plan60-l10``: 60 % of a previous batch plan's placements booked, 10 % locked;
* ``cut4``: 60 % booked from a plan, 30 % locked, one caregiver less at the 4 most
  booked sessions; ``cut10``: the same with 10 sessions;
* ``pooled``: pooled staffing, 20 % booked from FCFS, 10 % locked;
* ``overlap``: more overlapping classes and same-day requests, 20 % FCFS, 10 % locked;
* ``tight``: caregivers at about 60 %, 20 % FCFS, 10 % locked;
* ``priority``: the heavier priority mix, 20 % FCFS, 10 % locked;
* ``mgr0.8``, ``mgr0.9``: no bookings; solved with ``min_group_rate`` 0.8 / 0.9
  (docs/fairness.md), and HiGHS gets the same rule's rows.

**Runs.** In each cell, one after the other on the same instance file, each in
its own subprocess (``benchmarks/quality/quality.py --child``, so peak memory is that
child's ``ru_maxrss``):

1. slotalloc: ``slotalloc.solve(inst, time_limit=--limit, seed=0)`` (plus
   ``min_group_rate`` for the mgr cells), wall time including compilation;
2. HiGHS for ``--limit`` seconds (build included) on slotalloc's own model
   (``slotalloc.solver.build.build_formulation``, with the
   ``rule_group_fairness.group_fairness`` rows for mgr cells), 2 threads;
3. the reference: HiGHS on the same model for ``--reference-limit`` seconds
   (e.g. 120), run once per cell and cached in
   ``benchmarks/results/matrix-reference.json`` under the instance name (plus
   ``+min_group_rate=<r>`` for mgr cells), together with the instance file's
   sha256 and the limit. A cached entry is reused whenever its sha256 matches
   the instance file, also on runs without ``--reference-limit``; it is
   recomputed when the file changed or a longer limit is asked for.

Every solution goes through :func:`slotalloc.verify.verify`; a run's score
counts only when the verifier accepts it, the run found a solution and (mgr
cells) the solution meets the group-fairness rule. Recorded per run: score,
bound, wall, peak MB, accepted, and for booked variants the dropped bookings
(booked requests left unassigned) and moves (unlocked booked requests placed
elsewhere).

**Best known.** The best known bound of a cell is the minimum of every upper
bound reported for it (slotalloc, HiGHS at ``--limit``, the reference); the
best known score is the maximum of every counted score. "% of best bound" is
100 × score / best known bound, "% of own bound" is 100 × score / the run's
own bound; when a bound is negative (a booked instance whose bookings cannot
all be kept: each drop costs 100 000), the same figure is computed as
100 × (1 − (bound − score) / |bound|), so 100 still means proven optimal and
99.5 a gap of 0.5 % of the bound's size. "best" drops are those of the
solution with the best known score.

**Target.** PASS when slotalloc's score counts, is >= HiGHS's at ``--limit``
(when HiGHS has a counted score) and is >= 99.5 % of the best known bound (mgr
cells: >= 99 % of slotalloc's own bound); otherwise MISS.

**Output.** ``--out`` (markdown): the command line, the date, the machine's
load average (``os.getloadavg``) at start and end, the CPU count, then one row
per cell; ``--json``: the raw rows. The machine must be otherwise idle for the
times to mean anything.

Usage::

    # the whole matrix (about 2 x 10 s per cell plus generation), then the references
    python benchmarks/quality/matrix.py --reference-limit 120
    # only fill the reference cache
    python benchmarks/quality/matrix.py --only-reference --reference-limit 120
    # a smoke test
    python benchmarks/quality/matrix.py --sizes tiny --variants empty cut4 mgr0.8 --limit 2
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality  # benchmarks/quality/quality.py: its --child runner does every run

#: name -> (seed, requests, sites)
SIZES: dict[str, tuple[int, int, int]] = {
    "tiny": (10, 300, 3),
    "small": (11, 600, 5),
    "district": (12, 4500, 15),
    "city": (13, 20000, 91),
}
DEFAULT_SIZES = ("small", "district", "city")

_FCFS20 = {"bookings": 0.2, "locked": 0.1}
_PLAN60 = {"bookings": 0.6, "bookings_from": "plan", "locked": 0.3}


@dataclass(frozen=True)
class Cell:
    """A variant of the matrix: generator options and the solve option."""

    generator: dict[str, Any] = field(default_factory=dict)
    min_group_rate: float | None = None


VARIANTS: dict[str, Cell] = {
    "empty": Cell(),
    "fcfs20-l10": Cell(dict(_FCFS20)),
    "fcfs60-l50": Cell({"bookings": 0.6, "locked": 0.5}),
    "plan60-l10": Cell({"bookings": 0.6, "bookings_from": "plan", "locked": 0.1}),
    "cut4": Cell({**_PLAN60, "cut": 4}),
    "cut10": Cell({**_PLAN60, "cut": 10}),
    "pooled": Cell({"staffing": "pooled", **_FCFS20}),
    "overlap": Cell({"overlap": True, **_FCFS20}),
    "tight": Cell({"tight": True, **_FCFS20}),
    "priority": Cell({"priorities": "mix", **_FCFS20}),
    "mgr0.8": Cell(min_group_rate=0.8),
    "mgr0.9": Cell(min_group_rate=0.9),
}

REFERENCE_CACHE = Path("benchmarks/results/matrix-reference.json")
PASS_BEST = 99.5  # % of the best known bound
PASS_OWN_MGR = 99.0  # % of slotalloc's own bound, mgr cells


# ---------------------------------------------------------------- instances


def _instance_name(seed: int, requests: int, sites: int, options: dict[str, Any]) -> str:
    from slotalloc.scenarios.xiamen import WEEKEND, Variant

    suffix = Variant(**options).suffix
    return f"xiamen-weekend-{WEEKEND[0]}-seed{seed}-{requests}r-{sites}s{suffix}"


def _instance(size: str, cell: Cell, workdir: Path, regenerate: bool) -> tuple[Path, str]:
    """The cell's instance file (generated when missing) and its instance name."""
    from slotalloc.scenarios.xiamen import generate_xiamen_json

    seed, requests, sites = SIZES[size]
    name = _instance_name(seed, requests, sites, cell.generator)
    path = workdir / f"{name}.json"
    if regenerate or not path.exists():
        text = generate_xiamen_json(seed, requests, sites, **cell.generator)
        if json.loads(text)["name"] != name:
            raise RuntimeError(f"the generator named {path} differently than expected")
        tmp = path.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    return path, name


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------- runs and the cache


def _run(method: str, path: Path, limit: float, rate: float | None) -> dict[str, Any]:
    row = quality._run(method, path, limit, rate)
    row["limit"] = limit
    return row


def _load_cache(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _save_cache(path: Path, cache: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _reference(
    cache: dict[str, Any],
    key: str,
    path: Path,
    digest: str,
    limit: float,
    rate: float | None,
    cache_path: Path,
) -> dict[str, Any] | None:
    """The cached reference run of a cell, run first when needed and ``limit`` > 0."""
    entry: dict[str, Any] | None = cache.get(key)
    fresh = entry is not None and entry.get("sha256") == digest
    if fresh and entry is not None and (limit <= 0 or float(entry["limit"]) >= limit):
        return entry
    if limit <= 0:
        return None
    row = _run("highs", path, limit, rate)
    row["sha256"] = digest
    row["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    cache[key] = row
    _save_cache(cache_path, cache)
    return row


# ---------------------------------------------------------------- scoring a cell


def _counts(row: dict[str, Any] | None, rate: float | None) -> bool:
    """Whether a run's score counts: verified, a solution found, the rule met (mgr)."""
    if not row or row.get("score") is None:
        return False
    ok = bool(row.get("accepted")) and row.get("found", True) is not False
    return ok and (rate is None or row.get("fairness_ok") is True)


def _pct(score: int | None, bound: int | None) -> float | None:
    """``100 * (1 - (bound - score) / |bound|)``: ``100 * score / bound`` when bound > 0."""
    if score is None or bound is None:
        return None
    if bound == 0:
        return 100.0 if score == 0 else None
    return 100.0 * (1.0 - (bound - score) / abs(bound))


def _summarise(
    size: str,
    variant: str,
    name: str,
    cell: Cell,
    slot: dict[str, Any],
    highs: dict[str, Any],
    ref: dict[str, Any] | None,
) -> dict[str, Any]:
    rate = cell.min_group_rate
    runs = {"slotalloc": slot, "highs": highs, "reference": ref}
    present = {k: r for k, r in runs.items() if r is not None}
    bounds = {k: r["bound"] for k, r in present.items() if r.get("bound") is not None}
    counted = {k: r for k, r in present.items() if _counts(r, rate)}
    best_bound = min(bounds.values()) if bounds else None
    best_run = max(counted, key=lambda k: counted[k]["score"]) if counted else None
    best_score = counted[best_run]["score"] if best_run else None
    s_score = slot["score"] if "slotalloc" in counted else None
    h_score = highs["score"] if "highs" in counted else None
    pct_best = _pct(s_score, best_bound)
    pct_own = _pct(s_score, slot.get("bound"))
    ok = s_score is not None and (h_score is None or s_score >= h_score)
    if rate is None:
        ok = ok and pct_best is not None and pct_best >= PASS_BEST
    else:
        ok = ok and pct_own is not None and pct_own >= PASS_OWN_MGR
    seed, requests, sites = SIZES[size]
    return {
        "size": size,
        "variant": variant,
        "instance": name,
        "seed": seed,
        "requests": requests,
        "sites": sites,
        "generator": cell.generator,
        "min_group_rate": rate,
        "bookings": slot.get("bookings"),
        "slotalloc": slot,
        "highs": highs,
        "reference": ref,
        "best_bound": best_bound,
        "best_bound_from": min(bounds, key=lambda k: bounds[k]) if bounds else None,
        "best_score": best_score,
        "best_score_from": best_run,
        "best_dropped": counted[best_run].get("dropped") if best_run else None,
        "slotalloc_pct_best": pct_best,
        "slotalloc_pct_own": pct_own,
        "highs_pct_best": _pct(h_score, best_bound),
        "bound_below_score": (
            best_bound is not None and best_score is not None and best_bound < best_score
        ),
        "target": "PASS" if ok else "MISS",
    }


# ---------------------------------------------------------------- the table


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _score(row: dict[str, Any] | None, rate: float | None) -> str:
    if not row:
        return "-"
    if not row.get("found", True):
        return "no solution"
    text = str(row.get("score"))
    return text if _counts(row, rate) else f"{text} (not verified)"


def _drops(row: dict[str, Any] | None) -> str:
    return "-" if not row or row.get("dropped") is None else str(row["dropped"])


HEADER = (
    "| size | variant | bookings | slotalloc score | % best bound | % own bound | wall s "
    "| peak MB | HiGHS score | HiGHS % best bound | HiGHS peak MB | best bound (from) "
    "| best score (from) | drops slotalloc / HiGHS / best | moves slotalloc / HiGHS | target |"
)


def _line(r: dict[str, Any]) -> str:
    s, h, rate = r["slotalloc"], r["highs"], r["min_group_rate"]
    booked = r["bookings"] or 0
    drops = f"{_drops(s)} / {_drops(h)} / {_drops({'dropped': r['best_dropped']})}"
    moves = f"{s.get('moved', '-')} / {h.get('moved', '-')}"
    warn = " (bound < score!)" if r["bound_below_score"] else ""
    source = r["best_bound_from"]
    if source == "reference" and r["reference"]:
        source = f"reference {float(r['reference']['limit']):g} s"
    return (
        f"| {r['size']} | {r['variant']} | {booked} | {_score(s, rate)} "
        f"| {_f(r['slotalloc_pct_best'])} | {_f(r['slotalloc_pct_own'])} "
        f"| {_f(s.get('wall'), 2)} | {_f(s.get('peak_mb'), 0)} | {_score(h, rate)} "
        f"| {_f(r['highs_pct_best'])} | {_f(h.get('peak_mb'), 0)} "
        f"| {r['best_bound']} ({source}){warn} "
        f"| {r['best_score']} ({r['best_score_from']}) "
        f"| {drops if booked else '-'} | {moves if booked else '-'} | {r['target']} |"
    )


def _git_commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def _markdown(rows: list[dict[str, Any]], argv: list[str], load_start: str, args: Any) -> str:
    import numpy

    passed = sum(r["target"] == "PASS" for r in rows)
    head = [
        "# Quality matrix: slotalloc vs HiGHS over generator variants",
        "",
        f"- Command: `{shlex.join(['python', 'benchmarks/quality/matrix.py', *argv])}`",
        f"- Date: {dt.datetime.now(dt.UTC).isoformat(timespec='seconds')}",
        f"- Machine: {os.cpu_count()} CPUs ({platform.machine()}), load average (1, 5, 15 min) "
        f"{load_start} at start, {_load()} at end; Python {platform.python_version()}, "
        f"numpy {numpy.__version__}; commit {_git_commit()}",
        f"- Limits: slotalloc and HiGHS {args.limit:g} s each per cell; reference HiGHS: "
        + (
            f"{args.reference_limit:g} s"
            if args.reference_limit > 0
            else "cached runs only (no --reference-limit)"
        )
        + f", cached in {args.reference_cache}",
        "- Protocol: the docstring of benchmarks/quality/matrix.py. Target: PASS when slotalloc >= "
        f"HiGHS {args.limit:g} s and >= {PASS_BEST} % of the best known bound (mgr cells: "
        f">= {PASS_OWN_MGR} % of its own bound).",
        f"- Result: {passed} of {len(rows)} cells PASS.",
        "",
        HEADER,
        "|" + "---|" * HEADER.count(" | ") + "---|",
    ]
    return "\n".join(head + [_line(r) for r in rows]) + "\n"


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    """Run the matrix; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--sizes", nargs="+", default=list(DEFAULT_SIZES), choices=list(SIZES))
    ap.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    ap.add_argument("--limit", type=float, default=10.0, help="seconds per run (default 10)")
    ap.add_argument(
        "--reference-limit",
        type=float,
        default=0.0,
        help="seconds of the cached HiGHS reference run per cell (0: cached entries only)",
    )
    ap.add_argument("--only-reference", action="store_true", help="only fill the reference cache")
    ap.add_argument("--workdir", default="benchmarks/results/instances")
    ap.add_argument("--out", default="benchmarks/results/matrix.md")
    ap.add_argument("--json", default=None, help="also write the raw rows to this file")
    ap.add_argument("--reference-cache", default=str(REFERENCE_CACHE), help=argparse.SUPPRESS)
    ap.add_argument("--regenerate", action="store_true", help="rewrite the instance files")
    args = ap.parse_args(argv)
    if args.only_reference and args.reference_limit <= 0:
        ap.error("--only-reference needs --reference-limit > 0")
    if args.limit <= 0:
        ap.error("--limit must be > 0")

    load_start = _load()
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    cache_path = Path(args.reference_cache)
    cache = _load_cache(cache_path)
    rows: list[dict[str, Any]] = []
    for size in args.sizes:
        for variant in args.variants:
            cell = VARIANTS[variant]
            rate = cell.min_group_rate
            path, name = _instance(size, cell, workdir, args.regenerate)
            digest = _sha256(path)
            key = name if rate is None else f"{name}+min_group_rate={rate:g}"
            if args.only_reference:
                ref = _reference(cache, key, path, digest, args.reference_limit, rate, cache_path)
                print(f"{size} {variant}: reference bound {ref and ref.get('bound')}", flush=True)
                continue
            slot = _run("slotalloc", path, args.limit, rate)
            highs = _run("highs", path, args.limit, rate)
            ref = _reference(cache, key, path, digest, args.reference_limit, rate, cache_path)
            row = _summarise(size, variant, name, cell, slot, highs, ref)
            row["sha256"] = digest
            rows.append(row)
            print(_line(row), flush=True)
    if args.only_reference:
        return 0
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(_markdown(rows, argv, load_start, args), encoding="utf-8")
    print(f"wrote {out}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
