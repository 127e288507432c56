"""The waitlist index streams of the online engine stay exact under long random runs.

The (session, group) streams are deques of sequence numbers that may keep stale
numbers (of requests that left the waitlist) in their interior, popped at the
head and rebuilt when more than half stale; the child streams are exact lists.
This checks, after every operation of a long seeded run on a small city (long
streams, many promotions and cancellations of waitlisted requests), that:

* every stream is ascending and its head is waitlisted;
* the stale count of a (session, group) stream is exactly its numbers that are
  no longer waitlisted, and is at most half of the stream;
* the waitlisted numbers of each stream are exactly the waitlisted requests
  indexed there (an eligible preference with a child of that group; a child).

It also checks that a state restored from a snapshot taken mid-run decides the
rest of the run identically, and that the eligibility rows the engine computes
per birth date (vectorised) are ``group_of``'s answers.
"""

from __future__ import annotations

import datetime as dt
import random
from typing import Any

from slotalloc.compile import group_of
from slotalloc.models import Child, Instance, Request
from slotalloc.online import Allocator
from slotalloc.scenarios.xiamen import generate_xiamen


def _check_index(alloc: Allocator) -> None:
    wl = alloc._waitlist
    wait = wl.by_seq
    G = alloc._G
    want_sg: dict[int, list[int]] = {}
    want_c: dict[int, list[int]] = {}
    for seq, rec in wait.items():
        assert rec.seq == seq
        if not rec.arcs:
            continue
        for s, groups, _rank in rec.arcs:
            for g, _k in groups:
                want_sg.setdefault(s * G + g, []).append(seq)
        for ci in rec.kids:
            want_c.setdefault(ci, []).append(seq)
    for k, q in enumerate(wl.by_slot):
        seqs = list(q)
        assert seqs == sorted(seqs)
        stale = sum(1 for x in seqs if x not in wait)
        assert wl.stale[k] == stale
        assert 2 * stale <= len(seqs)
        if seqs:
            assert seqs[0] in wait
        assert [x for x in seqs if x in wait] == want_sg.get(k, [])
    assert {ci: list(v) for ci, v in wl.by_child.items()} == want_c


def _late(inst: Instance, n: int, rng: random.Random) -> list[tuple[Request, tuple[Child, ...]]]:
    births = {c.id: c.birth_date for c in inst.children}
    out = []
    for i in range(n):
        r = rng.choice(inst.requests)
        kids = tuple(Child(id=f"x{i}-{j}", birth_date=births[c]) for j, c in enumerate(r.children))
        prefs = list(r.preferences)
        rng.shuffle(prefs)
        out.append((Request(id=f"x{i}", children=[k.id for k in kids], preferences=prefs), kids))
    return out


def _run(alloc: Allocator, ops: list[tuple[str, Any]], check: bool) -> list[Any]:
    out: list[Any] = []
    for op, arg in ops:
        if op == "book":
            try:
                d = alloc.book(*arg)
                out.append((d.request, d.session))
            except Exception as e:  # a request no preference could take: refused
                out.append(type(e).__name__)
        else:
            try:
                c = alloc.cancel(arg)
                out.append((c.request, c.session, list(c.promoted)))
            except Exception as e:  # an id cancelled twice: refused, changes nothing
                out.append(type(e).__name__)
        if check:
            _check_index(alloc)
    return out


def test_index_streams_stay_exact_through_a_long_random_run() -> None:
    rng = random.Random(11)
    inst = generate_xiamen(3, 600, sites=6)
    late = _late(inst, 3000, rng)
    ops: list[tuple[str, Any]] = []
    booked: list[str] = []
    for req, kids in late:
        ops.append(("book", (req, kids)))
        booked.append(req.id)
        # Cancellations of random earlier requests, held or waitlisted (some twice).
        while rng.random() < 0.45:
            ops.append(("cancel", rng.choice(booked)))
    alloc = Allocator(inst)
    half = len(ops) // 2
    first = _run(alloc, ops[:half], check=True)
    snapshot = alloc.state()
    rest = _run(alloc, ops[half:], check=True)
    assert any(len(x) == 3 and x[2] for x in rest if isinstance(x, tuple))  # promotions ran
    restored = Allocator.restore(inst, snapshot)
    _check_index(restored)
    assert _run(restored, ops[half:], check=False) == rest
    fresh = Allocator(inst)
    assert _run(fresh, ops, check=False) == first + rest


def test_eligibility_rows_are_group_of() -> None:
    inst = generate_xiamen(5, 300, sites=8)
    alloc = Allocator(inst)
    c = alloc._compiled
    rng = random.Random(5)
    day0 = dt.date(2018, 1, 1)
    dates = [day0 + dt.timedelta(days=rng.randrange(3400)) for _ in range(300)]
    dates += [dt.date(2024, 2, 29), dt.date(2025, 4, 19), dt.date(2025, 4, 20), dt.date(2030, 1, 1)]
    rows = alloc._eligibility(dates)
    assert len(rows) == len(dates)
    flat = [g for row in rows for g in row]
    assert min(flat) == -1 and len(set(flat)) > 2  # ineligible and several groups
    for d, row in zip(dates, rows, strict=True):
        assert row == [group_of(c, d, s) for s in alloc._class_rep]
    # every session, through its class, for the starting children
    for ch in inst.children[:40]:
        ci = alloc._cidx[ch.id]
        for s in range(c.n_sessions):
            assert alloc._group(ci, s) == group_of(c, ch.birth_date, s)
    assert alloc._eligibility([]) == []
