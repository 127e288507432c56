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


_ONE_PLACE = {
    "format": "slotalloc.instance/1",
    "sessions": [
        {
            "id": "s",
            "site": "x",
            "start": "2025-04-19T08:00:00+08:00",
            "end": "2025-04-19T12:00:00+08:00",
            "capacity": 1,
            "caregivers": 3,
        }
    ],
    "children": [
        {"id": "a", "birth_date": "2023-01-01"},
        {"id": "b", "birth_date": "2023-01-01"},
    ],
    "requests": [{"id": "h", "children": ["a"], "preferences": ["s"]}],
    "bookings": [{"request": "h", "session": "s"}],
}


class _CancelAfterRelease:
    """The allocator's lock; right after its first release, another thread cancels ``h``."""

    def __init__(self, alloc: Allocator) -> None:
        self.alloc = alloc
        self.lock = alloc._lock
        self.fired = False
        self.out: Any = None

    def acquire(self, *args: Any) -> bool:
        return bool(self.lock.acquire(*args))

    def release(self) -> None:
        self.lock.release()
        if not self.fired:
            self.fired = True
            t = threading.Thread(target=lambda: setattr(self, "out", self.alloc.cancel("h")))
            t.start()
            t.join()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *args: Any) -> None:
        self.release()


def test_regression_book_decision_read_under_the_lock() -> None:
    # A cancellation between book's release and its reading of the place promoted
    # the request, and the book then reported a place it had not taken (review).
    from slotalloc.models import Instance

    alloc = Allocator(Instance.model_validate(_ONE_PLACE))
    switch = _CancelAfterRelease(alloc)
    alloc._lock = switch  # type: ignore[assignment]
    d = alloc.book(Request(id="r", children=["b"], preferences=["s"]))
    c = switch.out
    assert d.waitlisted and d.session is None
    assert [p.request for p in c.promoted] == ["r"] and c.sequence == d.sequence + 1


def test_regression_export_reads_places_under_the_lock() -> None:
    # export() read each request's place after releasing the lock: a cancellation
    # in between exported both the cancelled place and its promotion (review).
    from slotalloc.models import Instance

    alloc = Allocator(Instance.model_validate(_ONE_PLACE))
    assert alloc.book(Request(id="r", children=["b"], preferences=["s"])).waitlisted
    switch = _CancelAfterRelease(alloc)
    alloc._lock = switch  # type: ignore[assignment]
    inst, sol = alloc.export()
    assert switch.out is not None and [p.request for p in switch.out.promoted] == ["r"]
    assert [(a.request, a.session) for a in sol.assignments] == [("h", "s")]
    report = verify(inst, sol)
    assert report.accepted, report.violations
