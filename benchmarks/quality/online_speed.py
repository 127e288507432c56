"""Speed of the online engine on a city-scale state (one thread).

Measures, with ``time.perf_counter_ns`` around each call:

* ``book``: p50/p99 latency and bookings per second, filling a city (91 sites)
  that already holds ~2k bookings with tens of thousands of validated requests
  (placed while there is room, then waitlisted); bookings per second both in
  wall-clock time and in the process's CPU time (``time.process_time_ns``),
  which a shared machine's other jobs disturb less;
* ``cancel`` with promotion: p99 latency with >= 20k requests waitlisted;
* ``replay`` of 100k events (a seeded numpy stream: books declaring new
  children, cancellations, a few malformed lines), JSON reading and writing
  included, as the CLI does it.

Usage::

    python benchmarks/quality/online_speed.py [--requests 40000] [--events 100000] [--seed 7]

Prints a Markdown table (this script is a benchmark, not library code).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import tempfile
import time
from typing import Any

import numpy as np

from slotalloc.compile import compile_instance
from slotalloc.models import Booking, Child, Instance, Request
from slotalloc.online import Allocator, replay
from slotalloc.solve import solve

N_BOOKED = 2000


def _fields(inst: Instance) -> dict[str, Any]:
    return {name: getattr(inst, name) for name in Instance.model_fields}


def city_instance(seed: int, requests: int, sites: int = 91) -> Instance:
    """A Xiamen city (generator of slotalloc.scenarios.xiamen) or, without it, a scaled stand-in."""
    try:
        from slotalloc.scenarios.xiamen import generate_xiamen
    except ImportError:  # pragma: no cover - the generator is a colleague's module
        return _scaled_stand_in(seed, requests, sites)
    return generate_xiamen(seed, requests, sites)


def _scaled_stand_in(seed: int, requests: int, sites: int) -> Instance:
    rng = np.random.default_rng(seed)
    sessions = []
    for i in range(sites):
        for day in ("19", "20"):
            for part, (h0, h1) in (("am", ("08:30", "12:00")), ("pm", ("14:30", "17:30"))):
                sessions.append(
                    {
                        "id": f"S{i:03d}/{day}-{part}",
                        "site": f"S{i:03d}",
                        "start": f"2025-04-{day}T{h0}:00+08:00",
                        "end": f"2025-04-{day}T{h1}:00+08:00",
                        "capacity": int(rng.integers(12, 30)),
                        "caregivers": int(rng.integers(2, 6)),
                    }
                )
    ages = rng.integers(6, 36, size=requests)
    children = [
        {
            "id": f"c{i}",
            "birth_date": f"{2025 - (a + 4) // 12 - 0:04d}-{(12 - a % 12) % 12 + 1:02d}-01",
        }
        for i, a in enumerate(ages.tolist())
    ]
    reqs = []
    for i in range(requests):
        site = int(rng.integers(0, sites))
        near = [(site + k) % sites for k in range(3)]
        prefs = list(
            dict.fromkeys(
                sessions[4 * s + int(rng.integers(0, 4))]["id"]
                for s in near
                for _ in range(int(rng.integers(1, 3)))
            )
        )
        reqs.append({"id": f"r{i}", "children": [f"c{i}"], "preferences": prefs})
    return Instance.model_validate(
        {
            "policy": {"preset": "cn-2019", "max_sessions_per_child": 2},
            "sessions": sessions,
            "children": children,
            "requests": reqs,
        }
    )


Late = list[tuple[Request, tuple[Child, ...]]]


def city_state(seed: int, requests: int) -> tuple[Instance, Late]:
    """The starting instance (with ~2k bookings) and the late requests to book online.

    The bookings are the first ``N_BOOKED`` places of first-come-first-served
    (a subset of a valid assignment is valid); the late requests copy the
    instance's requests under new ids, with new children of the same birth
    dates, so that they compete for the same places.
    """
    base = city_instance(seed, requests)
    fcfs = solve(base, method="fcfs")
    fields = _fields(base)
    fields["bookings"] = tuple(
        Booking(request=a.request, session=a.session) for a in fcfs.assignments[:N_BOOKED]
    )
    inst = Instance.model_validate(fields)
    births = {c.id: c.birth_date for c in base.children}
    # Only requests some preference could take: FORMAT §3 refuses the others at once
    # (the compiler's arcs are the eligible preferences).
    ptr = compile_instance(base).req_arc_ptr.tolist()
    late = []
    for i, r in enumerate(base.requests):
        if ptr[i + 1] == ptr[i]:
            continue
        kids = tuple(Child(id=f"L{c}", birth_date=births[c]) for c in r.children)
        late.append(
            (
                Request(
                    id=f"L{r.id}",
                    children=[k.id for k in kids],
                    preferences=r.preferences,
                    priority=r.priority,
                ),
                kids,
            )
        )
    return inst, late


def _pct(ns: list[int], q: float) -> float:
    return float(np.percentile(np.asarray(ns, dtype=np.int64), q)) / 1000.0


def measure_book(inst: Instance, late: Late) -> tuple[Allocator, dict[str, float]]:
    alloc = Allocator(inst)
    book = alloc.book
    clock = time.perf_counter_ns
    times = []
    placed = 0
    gc.disable()
    try:
        for request, kids in late:
            t0 = clock()
            d = book(request, kids)
            times.append(clock() - t0)
            placed += not d.waitlisted
    finally:
        gc.enable()
    # Throughput without the per-call clock: fresh allocators, the same requests,
    # best of three passes (the machine is shared; the best pass is the least disturbed).
    # Each pass is timed by the wall clock and by this process's CPU time: on a
    # shared machine the CPU time leaves out the time the process waited for a core.
    rates = []
    cpu_rates = []
    cpu = time.process_time_ns
    for _ in range(3):
        fresh = Allocator(inst)
        book = fresh.book
        gc.disable()
        try:
            c_all = cpu()
            t_all = clock()
            for request, kids in late:
                book(request, kids)
            t_end = clock()
            c_end = cpu()
            rates.append(len(late) / ((t_end - t_all) / 1e9))
            cpu_rates.append(len(late) / ((c_end - c_all) / 1e9))
        finally:
            gc.enable()
    return alloc, {
        "books": len(late),
        "placed": placed,
        "waitlisted": len(alloc.waitlist()),
        "p50_us": _pct(times, 50),
        "p99_us": _pct(times, 99),
        "per_s": max(rates),
        "per_s_median": sorted(rates)[1],
        "cpu_per_s": max(cpu_rates),
        "cpu_per_s_median": sorted(cpu_rates)[1],
    }


def measure_cancel(alloc: Allocator, seed: int, n: int = 2000) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    held = list(alloc.held())
    picks = rng.choice(len(held), size=min(n, len(held)), replace=False).tolist()
    clock = time.perf_counter_ns
    times = []
    promoted = 0
    waiting = len(alloc.waitlist())
    gc.disable()
    try:
        for i in picks:
            t0 = clock()
            c = alloc.cancel(held[i])
            times.append(clock() - t0)
            promoted += len(c.promoted)
    finally:
        gc.enable()
    return {
        "cancels": len(picks),
        "waitlisted_before": waiting,
        "waitlisted_after": len(alloc.waitlist()),
        "promoted": promoted,
        "p50_us": _pct(times, 50),
        "p99_us": _pct(times, 99),
        "max_us": max(times) / 1000.0,
    }


def event_stream(inst: Instance, n_events: int, seed: int) -> list[str]:
    """Seeded events: ~80% books (new children declared), ~18% cancels, ~2% bad lines."""
    rng = np.random.default_rng(seed)
    reqs = inst.requests
    births = {c.id: c.birth_date.isoformat() for c in inst.children}
    lines: list[str] = []
    booked: list[str] = []
    kinds = rng.random(n_events)
    picks = rng.integers(0, len(reqs), size=n_events)
    for n in range(n_events):
        k = float(kinds[n])
        if k < 0.80 or not booked:
            r = reqs[int(picks[n])]
            rid = f"e{n}"
            kids = [f"k{n}-{j}" for j in range(len(r.children))]
            event = {
                "op": "book",
                "request": {"id": rid, "children": kids, "preferences": list(r.preferences)},
                "children": [
                    {"id": kid, "birth_date": births[c]}
                    for kid, c in zip(kids, r.children, strict=True)
                ],
            }
            if r.priority:
                event["request"]["priority"] = r.priority
            booked.append(rid)
            lines.append(json.dumps(event))
        elif k < 0.98:
            rid = booked[int(rng.integers(0, len(booked)))]
            lines.append(json.dumps({"op": "cancel", "request": rid}))
        elif k < 0.99:
            lines.append(
                '{"op": "book", "request": {"id": "bad", "children": [], "preferences": []}}'
            )
        else:
            lines.append('{"op": "cancel", "request": "nobody"}')
    return lines


def measure_replay(inst: Instance, n_events: int, seed: int) -> dict[str, float]:
    lines = event_stream(inst, n_events, seed)
    with tempfile.TemporaryDirectory() as tmp:
        events = os.path.join(tmp, "events.jsonl")
        out = os.path.join(tmp, "decisions.jsonl")
        with open(events, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        t0 = time.perf_counter()
        with open(events, encoding="utf-8") as f:
            text = f.read().splitlines()
        decisions = [json.dumps(d, ensure_ascii=False) for d in replay(inst, text)]
        with open(out, "w", encoding="utf-8") as f:
            f.write("".join(d + "\n" for d in decisions))
        wall = time.perf_counter() - t0
        counts = {"book": 0, "wait": 0, "cancel": 0, "error": 0}
        with open(out, encoding="utf-8") as f:
            for line in f:
                d = json.loads(line)
                if "error" in d:
                    counts["error"] += 1
                elif "cancelled" in d:
                    counts["cancel"] += 1
                elif d["waitlisted"]:
                    counts["wait"] += 1
                else:
                    counts["book"] += 1
    return {"events": n_events, "wall_s": wall, **counts}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=40000)
    p.add_argument("--events", type=int, default=100000)
    p.add_argument("--seed", type=int, default=7)
    args = p.parse_args(argv)
    t0 = time.perf_counter()
    inst, late = city_state(args.seed, args.requests)
    setup = time.perf_counter() - t0
    alloc, b = measure_book(inst, late)
    c = measure_cancel(alloc, args.seed)
    r = measure_replay(inst, args.events, args.seed)
    w = sys.stdout.write
    w(
        f"city: {len(inst.sessions)} sessions, {len(inst.bookings)} bookings held at start, "
        f"{len(late)} late requests (setup {setup:.1f} s)\n\n"
    )
    w("| measure | figure |\n|---|---|\n")
    w(f"| book p50 | {b['p50_us']:.2f} µs |\n| book p99 | {b['p99_us']:.2f} µs |\n")
    w(f"| bookings/s (one thread, wall clock, best of 3) | {b['per_s']:,.0f} |\n")
    w(f"| bookings/s (one thread, wall clock, median of 3) | {b['per_s_median']:,.0f} |\n")
    w(f"| bookings/s (one thread, CPU time, best of 3) | {b['cpu_per_s']:,.0f} |\n")
    w(f"| bookings/s (one thread, CPU time, median of 3) | {b['cpu_per_s_median']:,.0f} |\n")
    w(f"| books placed / waitlisted | {b['placed']} / {b['books'] - b['placed']} |\n")
    w(f"| cancel with promotion p50 | {c['p50_us']:.2f} µs |\n")
    w(f"| cancel with promotion p99 | {c['p99_us']:.2f} µs |\n")
    w(f"| cancel max | {c['max_us']:.1f} µs |\n")
    w(
        f"| cancels / promoted / waitlisted before | {c['cancels']} / {c['promoted']} / "
        f"{c['waitlisted_before']} |\n"
    )
    w(
        f"| replay {r['events']:,} events wall (read + decide + write JSON) "
        f"| {r['wall_s']:.2f} s |\n"
    )
    w(
        f"| replay decisions: placed / waitlisted / cancels / errors | {r['book']} / {r['wait']} / "
        f"{r['cancel']} / {r['error']} |\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
