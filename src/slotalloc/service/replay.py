"""Rebuilding the durable allocator's state from its ledger, and salvaging a damaged one.

:class:`Replay` checks every row's hash from the base of the chain, loads the
newest snapshot that matches the chain at its row, and re-applies the rows
after it, comparing each recomputed decision with the one stored.
:func:`open_state` does that on open; with ``recover`` it falls back to
:func:`salvage`, which keeps the longest valid prefix of the chain (the
damaged files copied aside first) and says what was kept in a
:class:`RecoveryReport`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slotalloc.compile import Compiled
from slotalloc.exceptions import BookingError, InvalidStateError, SlotallocError
from slotalloc.models import Child, Instance, Request
from slotalloc.online import Allocator
from slotalloc.service.chain import Row, canonical_json
from slotalloc.service.errors import LedgerCorruptError
from slotalloc.service.ops import book_result, cancel_result, placements_json
from slotalloc.service.ownership import Ownership
from slotalloc.service.rebalance import REBALANCE_ENTRIES, RebalanceOutcome, apply_entries
from slotalloc.service.store import Ledger

__all__ = ["RecoveryReport", "Replay", "open_state", "salvage", "snapshot_state"]

# One logger for the ledger, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.ledger")


@dataclass(frozen=True)
class RecoveryReport:
    """What ``recover=True`` kept of a damaged ledger.

    Attributes
    ----------
    problems
        What was wrong, one line each.
    kept_last
        The last row kept (rows from the base up to it); -1 when none.
    file_head
        The head the file itself recorded, or None when unreadable.
    head_file
        The head the head file recorded, or None when missing or unreadable.
    dropped
        Rows of the file after ``kept_last`` that were dropped (None: unknown).
    backup
        Where the damaged files were copied first (``PATH.damaged-TIME`` plus
        ``-wal`` and ``.head`` when they existed).
    """

    problems: tuple[str, ...]
    kept_last: int
    file_head: int | None
    head_file: int | None
    dropped: int | None
    backup: str

    def summary(self) -> str:
        """One line for the log."""
        lost = ""
        if self.head_file is not None and self.head_file > self.kept_last:
            lost = f"; {self.head_file - self.kept_last} acknowledged row(s) lost"
        return (
            f"recovered: kept rows up to {self.kept_last}; dropped {self.dropped} row(s) "
            f"after it{lost}; file head {self.file_head}, head file {self.head_file}; "
            f"damaged copy {self.backup}; problem: {self.problems[0]}"
        )


def snapshot_state(seq: int, alloc: Allocator, ownership: Ownership) -> dict[str, Any]:
    """What a snapshot (and a compacted ledger's base row) stores of the state."""
    # A cancel drops its request's secret: every secret held is a live request's.
    return {"seq": seq, "allocator": alloc.state(), "auth": ownership.to_json()}


class Replay:
    """The state a ledger's rows rebuild, from the state before its first row.

    Parameters
    ----------
    ledger
        The file read.
    alloc
        The state before the first row (the instance's bookings, or the start plan).
    start, compiled
        The starting instance and its compiled form, to restore snapshots with.

    Attributes
    ----------
    alloc, ownership
        The state rebuilt so far.
    seq, hash
        The last row whose replay completed (the chain's start before any).
    replayed
        Rows re-applied (not those covered by the snapshot).
    last_rebalance
        The last rebalance as the rows record it (the solver's stats are not stored).
    """

    def __init__(
        self, ledger: Ledger, alloc: Allocator, start: Instance, compiled: Compiled
    ) -> None:
        self.ledger = ledger
        self.alloc = alloc
        self.ownership = Ownership()
        self.seq, self.hash = ledger.base_seq - 1, ledger.base_prev
        self.replayed = 0
        self.last_rebalance: RebalanceOutcome | None = None
        self._start = start
        self._compiled = compiled

    def run(self, *, use_snapshots: bool = True, check_head: bool = True) -> Replay:
        """Check and replay every row (from the newest usable snapshot on); returns self.

        Raises
        ------
        LedgerCorruptError
            A gap, a hash that fails the chain, a snapshot that does not match
            the rows, a stored event refused or decided differently on replay,
            an unclosed rebalance group, or (``check_head``) rows that do not
            end at the recorded head. :attr:`seq` is then the last row whose
            replay completed.
        """
        snap = self._usable_snapshot() if use_snapshots else None
        batch: list[Row] = []
        for row in self.ledger.rows(check_head=check_head):
            if snap is not None and row.seq <= snap[0]:
                # Before the snapshot: the chain is checked, the rows are not replayed.
                if row.seq == snap[0]:
                    if row.hash != snap[1]:
                        raise LedgerCorruptError(
                            f"{self.ledger.path}: snapshot at row {row.seq} does not match the rows"
                        )
                    self.load(snap[2])
                self.seq, self.hash = row.seq, row.hash
                continue
            if row.kind in REBALANCE_ENTRIES:
                batch.append(row)
                continue
            if row.kind == "scan":
                self._rebalance(batch, row)
                batch = []
            elif batch:
                raise LedgerCorruptError(f"row {row.seq}: a rebalance group is not closed")
            else:
                self._row(row)
            self.seq, self.hash = row.seq, row.hash
            self.replayed += 1
        if batch:
            raise LedgerCorruptError(f"row {batch[-1].seq}: a rebalance group is not closed")
        if snap is not None and self.seq < snap[0]:
            raise LedgerCorruptError(
                f"{self.ledger.path}: the rows end before the snapshot at {snap[0]}"
            )
        return self

    def _usable_snapshot(self) -> tuple[int, bytes, dict[str, Any]] | None:
        led = self.ledger
        snap = led.latest_snapshot()
        if snap is not None and "allocator" not in snap[2]:
            # An older snapshot layout: the rows alone rebuild the same state.
            log.warning(
                "%s: snapshot at row %d has an older layout; replaying every row",
                led.path,
                snap[0],
            )
            return None
        if snap is not None and snap[0] < led.base_seq:
            return None
        return snap

    def load(self, state: Mapping[str, Any]) -> None:
        """Take the state of a snapshot or a base row (:func:`snapshot_state`).

        Raises
        ------
        LedgerCorruptError
            The state does not restore.
        """
        try:
            self.alloc = Allocator.restore(self._start, state["allocator"], compiled=self._compiled)
            self.ownership = Ownership.from_json(state.get("auth", {}))
        except (InvalidStateError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise LedgerCorruptError(
                f"{self.ledger.path}: bad snapshot ({type(e).__name__})"
            ) from e

    def _row(self, row: Row) -> None:
        try:
            body = json.loads(row.body)
            if row.kind == "book":
                request = Request.model_validate(body["request"])
                children = [Child.model_validate(c) for c in body.get("children", ())]
                got: dict[str, Any] = book_result(self.alloc.book(request, children))
                if row.secret:
                    self.ownership.note(request, bytes.fromhex(row.secret))
            elif row.kind == "cancel":
                got = cancel_result(self.alloc.cancel(body["request"]))
                self.ownership.forget(body["request"])
            elif row.kind == "base":
                if row.seq != self.ledger.base_seq:
                    raise LedgerCorruptError(f"row {row.seq}: a base row after the first row")
                self.load(body)
                return
            else:
                raise LedgerCorruptError(f"row {row.seq}: unknown kind {row.kind!r}")
        except LedgerCorruptError:
            raise
        except (SlotallocError, ValueError, KeyError, TypeError) as e:
            # The type only: the message of a refused event may quote its data.
            raise LedgerCorruptError(
                f"row {row.seq}: the stored event is refused on replay ({type(e).__name__})"
            ) from e
        if canonical_json(got) != row.result:
            raise LedgerCorruptError(
                f"row {row.seq}: the replayed decision differs from the one stored"
            )

    def _rebalance(self, batch: Sequence[Row], scan: Row) -> None:
        try:
            rows = [(r.kind, json.loads(r.body)) for r in batch]
            promoted = apply_entries(self.alloc, rows)
        except (InvalidStateError, BookingError, KeyError, ValueError) as e:
            raise LedgerCorruptError(
                f"row {scan.seq}: stored rebalance refused on replay ({type(e).__name__})"
            ) from e
        if canonical_json({"promoted": placements_json(promoted)}) != scan.result:
            raise LedgerCorruptError(f"row {scan.seq}: replayed scan differs from the ledger")
        self.last_rebalance = RebalanceOutcome.recorded(rows, promoted, self.alloc.held(), scan.seq)


def open_state(
    ledger: Ledger,
    fresh: Callable[[], Replay],
    *,
    use_snapshots: bool,
    full_check: bool,
    recover: bool,
) -> tuple[Replay, RecoveryReport | None]:
    """The state of a ledger just opened, checked whole.

    Parameters
    ----------
    ledger
        The file, opened.
    fresh
        A new :class:`Replay` from the state before the first row.
    use_snapshots, full_check, recover
        As :class:`~slotalloc.service.durable.DurableAllocator` takes them.

    Returns
    -------
    tuple
        The replay, and what ``recover`` kept when it had to (else None).

    Raises
    ------
    LedgerCorruptError
        The ledger fails a check and ``recover`` is false.
    """
    problems = list(ledger.problems)
    if not problems:
        try:
            if full_check:
                ledger.quick_check()
            rep = fresh().run(use_snapshots=use_snapshots)
            if ledger.head_file_stale:
                ledger.head_file.write(rep.seq, rep.hash)
            return rep, None
        except LedgerCorruptError as e:
            if not recover:
                raise
            problems.append(str(e))
    return salvage(ledger, fresh, problems)


def salvage(
    led: Ledger, fresh: Callable[[], Replay], problems: list[str]
) -> tuple[Replay, RecoveryReport]:
    """``recover=True``: keep the longest valid prefix of the chain and say so.

    Raises
    ------
    OSError, sqlite3.Error
        The damaged files could not be copied aside or the file rewritten.
    LedgerCorruptError
        Even the rewritten ledger does not replay.
    """
    try:
        file_head: int | None = led.head()[0]
    except (sqlite3.DatabaseError, KeyError, TypeError, ValueError):
        file_head = None
    recorded = None if led.recorded is None else led.recorded[0]
    rep = fresh()
    try:
        rep.run(use_snapshots=False, check_head=False)
        damaged = False
    except (LedgerCorruptError, sqlite3.DatabaseError):
        damaged = True
    last = rep.seq  # the last row whose replay completed
    top = led.max_seq()
    needs_rewrite = damaged or top is None or top != last or file_head != last
    backup = led.backup()
    if needs_rewrite:
        kept = list(led.rows(check_head=False, until=last))
        if kept:
            base = (led.base_seq, led.base_prev)
            head = (last, kept[-1].hash)
        else:  # nothing valid (a compacted ledger without its base row too): start over
            base, head = (0, led.genesis), (-1, led.genesis)
        led.rewrite(kept, base=base, head=head, prev=head)
    else:
        led.head_file.write(rep.seq, rep.hash)
    rep = fresh().run(use_snapshots=False)
    dropped = None if top is None else max(0, top - last)
    report = RecoveryReport(tuple(problems), rep.seq, file_head, recorded, dropped, backup)
    log.warning("ledger %s: %s", led.path, report.summary())
    return rep, report
