"""Many threads booking and cancelling at once on one allocator.

Every decision must be accounted for, the final state must be accepted by the
verifier, and replaying the successful operations serially, in the order the
lock serialised them (``.sequence``), must give the same decisions and the same
final state.
"""

from __future__ import annotations

import random
import sys
import threading
from typing import Any

from conftest import sample_instance
from slotalloc.exceptions import BookingError
from slotalloc.models import Child, Request
from slotalloc.online import Allocator
from slotalloc.verify import verify

THREADS = 8
OPS_PER_THREAD = 400


def _worker(
    alloc: Allocator, tid: int, sessions: list[str], births: list[str], log: list[Any]
) -> None:
    rnd = random.Random(tid)
    mine: list[str] = []
    for n in range(OPS_PER_THREAD):
        if mine and rnd.random() < 0.35:
            # cancel one of ours, or someone else's request id (a race on purpose)
            rid = rnd.choice(mine) if rnd.random() < 0.8 else f"t{rnd.randrange(THREADS)}-{n}"
            try:
                c = alloc.cancel(rid)
                log.append((c.sequence, "cancel", rid, [tuple(p) for p in c.promoted]))
            except BookingError:
                log.append((None, "cancel", rid, "error"))
        else:
            rid = f"t{tid}-{n}"
            # children shared across threads (overlaps, per-child cap) and new ones
            kids = [f"shared-{rnd.randrange(12)}"] if rnd.random() < 0.3 else [f"k{tid}-{n}"]
            if rnd.random() < 0.1:
                kids.append(f"k{tid}-{n}-sib")
            declared = [
                Child(
                    id=k,
                    birth_date=births[int(k.split("-")[1]) % len(births)]
                    if k.startswith("shared-")
                    else rnd.choice(births),
                )
                for k in kids
            ]
            prefs = rnd.sample(sessions, rnd.randint(1, 4))
            request = Request(id=rid, children=kids, preferences=prefs)
            try:
                d = alloc.book(request, declared)
                log.append((d.sequence, "book", (request, declared), d.session))
                mine.append(rid)
            except BookingError:
                log.append((None, "book", rid, "error"))


def test_threads_never_break_a_rule_nor_lose_a_decision() -> None:
    inst = sample_instance("sample-events")
    alloc = Allocator(inst)
    sessions = [s.id for s in inst.sessions]
    births = sorted({c.birth_date.isoformat() for c in inst.children})
    logs: list[list[Any]] = [[] for _ in range(THREADS)]
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        threads = [
            threading.Thread(target=_worker, args=(alloc, t, sessions, births, logs[t]))
            for t in range(THREADS)
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    finally:
        sys.setswitchinterval(old)

    entries = [e for log in logs for e in log]
    assert len(entries) == THREADS * OPS_PER_THREAD  # every call answered exactly once
    done = sorted((e for e in entries if e[0] is not None), key=lambda e: e[0])
    assert [e[0] for e in done] == list(range(len(done)))  # a total order, no gap
    assert any(e[1] == "cancel" and e[3] for e in done), "no promotion: a weak test"
    spans = [(min(s), max(s)) for log in logs if (s := [e[0] for e in log if e[0] is not None])]
    assert any(a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b), "no overlap"

    out, sol = alloc.export()
    report = verify(out, sol)
    assert report.accepted, report.verdict

    serial = Allocator(inst)
    for _, kind, payload, outcome in done:
        if kind == "book":
            request, declared = payload
            assert serial.book(request, declared).session == outcome
        else:
            assert [tuple(p) for p in serial.cancel(payload).promoted] == outcome
    assert serial.held() == alloc.held()
    assert serial.waitlist() == alloc.waitlist()
    assert serial.export() == (out, sol)
