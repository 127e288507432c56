"""Season benchmark (not CI): who is served week after week, under four policies.

Protocol
--------
**Season.** ``slotalloc.scenarios.season.generate_season(seed, weeks,
requests, sites)`` (docs/season.md): weekend 1 is the Xiamen weekend of the
generator, the following weekends the same households asking again (some skip
a weekend, some leave, as many join), a week older, sessions seven days later.
Default: seed 13, 20 000 requests, 91 sites, 8 weekends.

**Policies**, each run over the whole season, weekend by weekend:

1. ``fcfs``: ``slotalloc.solve(inst, method="fcfs")`` on each weekend as generated;
2. ``optimiser``: ``slotalloc.solve(inst, time_limit=T, seed=0)`` on each
   weekend as generated;
3. ``carry-over alone``: from weekend 2 on, each weekend's instance goes
   through ``carry_over`` as in 4, with no fairness rule; solved as in 2;
4. ``carry-over + fairness``: each weekend's instance gets
   ``policy.fairness = {"group_floor": "fcfs", "priority": "no_justified_envy"}``
   (FORMAT §4), then, from weekend 2 on,
   ``slotalloc.analysis.carryover.carry_over(previous, previous_solution, inst)``
   with this policy's own previous instance and solution (step 1, cap 9); it is
   solved as in 2.

Every solution goes through ``slotalloc.verify.verify`` on the instance it was
solved on (so the fourth policy's is checked against rules 8 and 9 as well);
its acceptance is reported per weekend, never assumed. A weekend whose solve
raises ends that policy's season (the error is reported).

**Figures**, per policy:

* children served per weekend (distinct children with at least one place) and
  child places by home age group (``slotalloc.verify.group_places``);
* households (``Child.household``; a household *asks* on a weekend when one of
  its children is in a request, and is *served* when one of those requests is
  assigned): the share of the households that asked on at least half the
  weekends (4 of 8) and were never served, and the histogram of weekends
  served over the households that asked at least once (0 .. weeks).

**Output.** A markdown report on stdout (the command line, date, CPU count
and load average at start and end, then the tables); ``--json PATH`` the raw
figures; ``--write`` both to ``benchmarks/results/season.md`` and
``season.json``. The machine must be otherwise idle for the times to mean
anything; the served figures do not depend on it for ``fcfs``.

Usage::

    # the full season (about 8 x (10 + 10) s of solving, plus verification)
    python benchmarks/quality/season.py --write
    # a small check
    python benchmarks/quality/season.py --requests 3000 --sites 12 --weeks 4 --time-limit 3
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shlex
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from slotalloc import solve
from slotalloc.analysis.carryover import carry_over
from slotalloc.models import Instance, Solution
from slotalloc.scenarios.season import generate_season
from slotalloc.verify import group_places, verify

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
FAIRNESS = {"group_floor": "fcfs", "priority": "no_justified_envy"}
POLICIES = ("fcfs", "optimiser", "carry-over alone", "carry-over + fairness")


def with_fairness(instance: Instance) -> Instance:
    """The instance with both FORMAT §4 fairness rules on."""
    doc = instance.model_dump(mode="json")
    doc["policy"]["fairness"] = dict(FAIRNESS)
    return Instance.model_validate(doc, strict=True)


def households_of(instance: Instance) -> dict[str, set[str]]:
    """Request id -> the households of its children (children without one are left out)."""
    kids = {c.id: c.household for c in instance.children}
    return {r.id: {h for c in r.children if (h := kids[c]) is not None} for r in instance.requests}


def week_figures(instance: Instance, solution: Solution) -> dict[str, Any]:
    """Children asking and served, child places by home group, households asking and served."""
    pairs = [(a.request, a.session) for a in solution.assignments]
    placed = {rid for rid, _ in pairs}
    of = households_of(instance)
    asked = set().union(*of.values()) if of else set()
    served = set().union(*(of[r] for r in placed)) if placed else set()
    return {
        "requests": len(instance.requests),
        "children_asking": len({c for r in instance.requests for c in r.children}),
        "children_served": len(
            {c for r in instance.requests if r.id in placed for c in r.children}
        ),
        "requests_placed": len(placed),
        "group_places": group_places(instance, pairs),
        "households_asked": sorted(asked),
        "households_served": sorted(served),
    }


def run_policy(policy: str, season: list[Instance], time_limit: float) -> list[dict[str, Any]]:
    """One policy over the season: per weekend, the figures and the verifier's verdict."""
    out: list[dict[str, Any]] = []
    previous: tuple[Instance, Solution] | None = None
    for week, generated in enumerate(season, 1):
        inst = generated
        row: dict[str, Any] = {"week": week}
        if policy.startswith("carry-over"):
            if policy == "carry-over + fairness":
                inst = with_fairness(inst)
            if previous is not None:
                carried = carry_over(previous[0], previous[1], inst)
                inst = carried.instance
                row["carry_over"] = carried.counts()
        t0 = time.perf_counter()
        try:
            if policy == "fcfs":
                res = solve(inst, method="fcfs")
            else:
                res = solve(inst, time_limit=time_limit, seed=0)
        except Exception as e:  # reported, and the policy's season stops here
            # One line that cannot break the markdown table it is shown in.
            row["error"] = " ".join(f"{type(e).__name__}: {e}".split()).replace("|", "/")
            out.append(row)
            break
        row["solve_seconds"] = round(time.perf_counter() - t0, 2)
        solution = res.to_solution()
        t1 = time.perf_counter()
        report = verify(inst, solution)
        row["verify_seconds"] = round(time.perf_counter() - t1, 2)
        row["status"] = res.status.value
        row["score"] = res.score
        row["bound"] = res.bound
        row["accepted"] = report.accepted
        row["violations"] = dict(Counter(v.rule for v in report.violations))
        row.update(week_figures(inst, solution))
        out.append(row)
        previous = (inst, solution)
    return out


def summary(rows: list[dict[str, Any]], weeks: int) -> dict[str, Any]:
    """Season figures of one policy: households never served, weekends served per household."""
    asked: Counter[str] = Counter()
    served: Counter[str] = Counter()
    for row in rows:
        asked.update(row.get("households_asked", ()))
        served.update(row.get("households_served", ()))
    often = (weeks + 1) // 2
    regular = [h for h, n in asked.items() if n >= often]
    never = [h for h in regular if served[h] == 0]
    histogram = [0] * (weeks + 1)
    for h in asked:
        histogram[served[h]] += 1
    complete = len(rows) == weeks and all("error" not in r for r in rows)
    return {
        "complete": complete,
        "weeks_accepted": sum(bool(r.get("accepted")) for r in rows),
        "children_served": [r.get("children_served") for r in rows],
        "households": len(asked),
        "asked_at_least": often,
        "households_regular": len(regular),
        "regular_never_served": len(never),
        "regular_never_served_share": round(len(never) / len(regular), 4) if regular else None,
        "weekends_served_histogram": histogram,
    }


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def markdown(doc: dict[str, Any]) -> str:
    """The report as markdown."""
    a = doc["args"]
    weeks = a["weeks"]
    lines = [
        "# Season benchmark: who is served week after week",
        "",
        f"Command: `{doc['command']}`  ",
        f"Date: {doc['date']}; CPUs: {doc['cpus']}; load average at start "
        f"{doc['load_start']}, at end {doc['load_end']}.  ",
        f"Season: `generate_season(seed={a['seed']}, weeks={weeks}, requests={a['requests']}, "
        f"sites={a['sites']})`, generated in {doc['generate_seconds']} s; requests per weekend "
        + ", ".join(str(n) for n in doc["requests_per_week"])
        + f". Optimiser time limit {a['time_limit']} s per weekend.",
        "",
        "## Children served per weekend",
        "",
        "| policy | " + " | ".join(f"w{k}" for k in range(1, weeks + 1)) + " | total | accepted |",
        "|---|" + "---:|" * weeks + "---:|---|",
    ]
    for name in POLICIES:
        s = doc["policies"][name]["summary"]
        cells = [str(n) if n is not None else "-" for n in s["children_served"]]
        cells += ["-"] * (weeks - len(cells))
        total = sum(n for n in s["children_served"] if n is not None)
        stopped = "" if s["complete"] else " (stopped at an error)"
        lines.append(
            f"| {name} | "
            + " | ".join(cells)
            + f" | {total} | {s['weeks_accepted']}/{weeks}{stopped} |"
        )
    if any(doc["policies"][n]["summary"]["weeks_accepted"] < weeks for n in POLICIES):
        lines += [
            "",
            "A weekend whose solution the verifier did not accept is shown with its figures "
            "but is not a result of that policy (see the last table for the rules broken).",
        ]
    lines += [
        "",
        "## Households",
        "",
        f"Households that asked on at least {(weeks + 1) // 2} of the {weeks} weekends and "
        "were never served, and the number of households by "
        "weekends served (over every household that asked at least once).",
        "",
        "| policy | households | asked >= half | never served | share | "
        + " | ".join(str(k) for k in range(weeks + 1))
        + " |",
        "|---|---:|---:|---:|---:|" + "---:|" * (weeks + 1),
    ]
    for name in POLICIES:
        s = doc["policies"][name]["summary"]
        lines.append(
            f"| {name} | {s['households']} | {s['households_regular']} | "
            f"{s['regular_never_served']} | {_pct(s['regular_never_served_share'])} | "
            + " | ".join(str(n) for n in s["weekends_served_histogram"])
            + " |"
        )
    groups = list(doc["groups"])
    lines += [
        "",
        "## Child places by home age group (FORMAT §4 `P_g`)",
        "",
        "| policy | group | " + " | ".join(f"w{k}" for k in range(1, weeks + 1)) + " |",
        "|---|---|" + "---:|" * weeks,
    ]
    for name in POLICIES:
        rows = doc["policies"][name]["weeks"]
        for g in groups:
            cells = [str(r["group_places"][g]) if "group_places" in r else "-" for r in rows]
            cells += ["-"] * (weeks - len(cells))
            lines.append(f"| {name} | {g} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Verification and solves",
        "",
        "| policy | week | status | score | bound | accepted | violations | solve s | verify s "
        "| carried over (raised / capped) |",
        "|---|---:|---|---:|---:|---|---|---:|---:|---|",
    ]
    for name in POLICIES:
        for r in doc["policies"][name]["weeks"]:
            if "error" in r:
                lines.append(f"| {name} | {r['week']} | error: {r['error']} | | | | | | | |")
                continue
            viol = ", ".join(f"{n} x {rule}" for rule, n in r["violations"].items()) or "-"
            co = r.get("carry_over")
            carried = "-" if co is None else f"{co['requests_raised']} / {co['requests_capped']}"
            bound = "-" if r["bound"] is None else r["bound"]
            lines.append(
                f"| {name} | {r['week']} | {r['status']} | {r['score']} | {bound} | "
                f"{'yes' if r['accepted'] else 'no'} | {viol} | {r['solve_seconds']} | "
                f"{r['verify_seconds']} | {carried} |"
            )
    return "\n".join(lines) + "\n"


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--requests", type=int, default=20000)
    ap.add_argument("--sites", type=int, default=91)
    ap.add_argument("--weeks", type=int, default=8)
    ap.add_argument("--time-limit", type=float, default=10.0, help="optimiser seconds per weekend")
    ap.add_argument("--json", default=None, help="write the raw figures here")
    ap.add_argument(
        "--write", action="store_true", help="write benchmarks/results/season.md and season.json"
    )
    args = ap.parse_args(argv)
    load_start = _load()
    t0 = time.perf_counter()
    season = generate_season(args.seed, args.weeks, args.requests, args.sites)
    generate_seconds = round(time.perf_counter() - t0, 1)
    policies: dict[str, Any] = {}
    for name in POLICIES:
        print(f"{name} ...", file=sys.stderr, flush=True)
        rows = run_policy(name, season, args.time_limit)
        summ = summary(rows, args.weeks)
        for r in rows:  # the ids have served their purpose; the files keep the counts
            for key in ("households_asked", "households_served"):
                if key in r:
                    r[key] = len(r[key])
        policies[name] = {"weeks": rows, "summary": summ}
    doc = {
        "command": "python benchmarks/quality/season.py "
        + " ".join(shlex.quote(x) for x in (argv if argv is not None else sys.argv[1:])),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "load_start": load_start,
        "load_end": _load(),
        "args": vars(args),
        "generate_seconds": generate_seconds,
        "requests_per_week": [len(w.requests) for w in season],
        "groups": [g.name for g in season[0].policy.groups],
        "policies": policies,
    }
    text = markdown(doc)
    print(text, end="")
    raw = json.dumps(doc, indent=1, ensure_ascii=False) + "\n"
    if args.json:
        Path(args.json).write_text(raw, encoding="utf-8")
    if args.write:
        (RESULTS / "season.md").write_text(text, encoding="utf-8")
        (RESULTS / "season.json").write_text(raw, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
