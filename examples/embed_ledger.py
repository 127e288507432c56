"""Embedding the online Allocator with a durable ledger, without the HTTP server.

A booking backend that already has its own web framework (or a queue worker)
keeps one :class:`slotalloc.service.ledger.DurableAllocator` per process and calls it
from its handlers: every accepted book or cancel is committed to the SQLite
ledger before the call returns, so a reply sent after it survives a crash.

This script books the sample event stream, "crashes" half way (the process
state is thrown away without a clean shutdown), recovers from the ledger, goes
on, and checks the final state with the verifier. It writes only to a
temporary directory. Run: ``python examples/embed_ledger.py``.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

from slotalloc.exceptions import BookingError
from slotalloc.io import iter_events, load_instance, parse_event
from slotalloc.models import BookEvent
from slotalloc.service.ledger import DurableAllocator
from slotalloc.verify import verify

log = logging.getLogger("embed_ledger")

DATA = Path(__file__).resolve().parent.parent / "tests" / "data"


def handle(alloc: DurableAllocator, line: str) -> str:
    """What a backend's request handler does with one FORMAT §3 event line."""
    try:
        event = parse_event(line)
    except ValueError as e:
        return f"400 {e}"
    try:
        if isinstance(event, BookEvent):
            d = alloc.book(event.request, event.children or ())
            where = "waitlisted" if d.waitlisted else f"placed in {d.session}"
            return f"201 {d.request} {where} (ledger row {d.sequence})"
        c = alloc.cancel(event.request)
        promoted = ", ".join(f"{p.request}->{p.session}" for p in c.promoted) or "nobody"
        return f"200 {c.request} cancelled, promoted {promoted} (ledger row {c.sequence})"
    except BookingError as e:  # refused: nothing changed, nothing logged
        return f"409/422 {e}"


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    instance = load_instance(DATA / "sample-events.json")
    lines = list(iter_events(DATA / "sample-events.jsonl"))
    half = len(lines) // 2
    with tempfile.TemporaryDirectory(prefix="embed-ledger-") as tmp:
        db = Path(tmp) / "bookings.db"

        alloc = DurableAllocator(instance, db, snapshot_every=100)
        for line in lines[:half]:
            reply = handle(alloc, line)
        log.info("first half: last reply %r; ledger head %s", reply, alloc.head[0])
        before_crash = alloc.export()
        # A crash: no close(), no final snapshot; only what was committed survives.
        del alloc

        alloc = DurableAllocator(instance, db, snapshot_every=100)
        log.info(
            "recovered in %.3f s from a snapshot plus %d ledger rows",
            alloc.recovery_seconds,
            alloc.replayed_rows,
        )
        assert alloc.export() == before_crash, "recovery must give back the same state"
        for line in lines[half:]:
            reply = handle(alloc, line)
        log.info("second half: last reply %r", reply)

        status = alloc.status(alloc.waitlist()[0]) if alloc.waitlist() else None
        log.info("head of the waitlist: %s", status)
        first_session = alloc.session_ids[0]
        occ = alloc.session_occupancy(first_session)
        log.info(
            "%s: %d of %d places, %s of %d caregivers needed",
            first_session,
            occ["taken"],
            occ["capacity"],
            occ["caregivers_needed"],
            occ["caregivers_available"],
        )
        inst, sol = alloc.export()
        report = verify(inst, sol)
        log.info("verifier: %s (%d places held)", report.verdict, len(sol.assignments))
        assert report.accepted
        alloc.close()  # a clean shutdown snapshots the state: the next start replays nothing


if __name__ == "__main__":
    main()
