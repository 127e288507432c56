"""The durable allocator's state and its ledger: rows appended, committed, rebuilt on failure.

:class:`Journal` holds the in-memory state (the online Allocator and the
per-booking secrets) together with the end of the hash chain: the rows
appended since the last commit, the last committed head, and the count of
rows since the last snapshot. :meth:`Journal.commit` writes the pending rows
in one transaction (one fsync) and then the head file; after any failure with
operations applied, :meth:`Journal.abort` rolls back and rebuilds the state
from the ledger, which does not hold the failed rows.
"""

from __future__ import annotations

import logging
import sqlite3
from typing import NoReturn

from slotalloc.compile import Compiled
from slotalloc.models import Instance, Solution
from slotalloc.online import Allocator
from slotalloc.result import Result
from slotalloc.service.chain import row_hash
from slotalloc.service.errors import LedgerUnavailableError, LedgerWriteError, describe
from slotalloc.service.ownership import Ownership
from slotalloc.service.rebalance import RebalanceOutcome
from slotalloc.service.replay import Replay, snapshot_state
from slotalloc.service.store import Ledger

__all__ = ["Journal", "starting_allocator"]

# One logger for the ledger, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.ledger")

PendingRow = tuple[int, str, str, str, bytes, str]


def starting_allocator(
    start: Instance, plan: Solution | Result | None, compiled: Compiled
) -> Allocator:
    """The state before the first row: the instance's bookings, or the start plan.

    Raises
    ------
    InvalidStateError
        The bookings or the plan break a rule.
    """
    if plan is None:
        return Allocator(start, compiled=compiled)
    return Allocator.from_result(start, plan, compiled=compiled)


class Journal:
    """The state a ledger holds, and the rows not committed yet.

    Not thread-safe: the :class:`~slotalloc.service.durable.DurableAllocator`
    holds its lock around every call.

    Parameters
    ----------
    ledger
        The file, opened.
    start, plan, compiled
        The starting instance, the batch plan started from (or None), and the
        instance compiled once for every Allocator rebuilt from them.
    initial
        The starting state, already built: the first replay starts from it.
    snapshot_every
        Take a snapshot after this many rows since the last one (0: never by count).

    Attributes
    ----------
    alloc, ownership
        The state (the online Allocator, the per-booking secrets).
    seq, hash
        The last row appended, committed or not.
    committed
        The last committed (seq, hash).
    pending
        Rows appended since the last commit.
    depth
        Open :meth:`DurableAllocator.transaction` blocks (rows are committed at 0).
    broken
        Why every further operation is refused, or None.
    """

    def __init__(
        self,
        ledger: Ledger,
        *,
        start: Instance,
        plan: Solution | Result | None,
        compiled: Compiled,
        initial: Allocator,
        snapshot_every: int,
    ) -> None:
        self.ledger = ledger
        self.snapshot_every = snapshot_every
        self.broken: str | None = None
        self.depth = 0
        self._start, self._plan, self._compiled = start, plan, compiled
        self._initial: Allocator | None = initial
        self.alloc = initial
        self.ownership = Ownership()
        self.last_rebalance: RebalanceOutcome | None = None
        self.pending: list[PendingRow] = []
        self.seq, self.hash = ledger.base_seq - 1, ledger.base_prev
        self.committed = (self.seq, self.hash)
        self.replayed = 0
        self.since_snapshot = 0

    # ------------------------------------------------------------ rebuilding

    def new_replay(self) -> Replay:
        """A replay of the ledger from the starting state (the one built first, then new ones)."""
        initial, self._initial = self._initial, None
        if initial is None:
            initial = starting_allocator(self._start, self._plan, self._compiled)
        return Replay(self.ledger, initial, self._start, self._compiled)

    def adopt(self, rep: Replay, *, complete: bool) -> None:
        """Take a replay's state; after an incomplete one the committed head is the base."""
        self.alloc = rep.alloc
        self.ownership = rep.ownership
        self.last_rebalance = rep.last_rebalance
        self.pending = []
        self.seq, self.hash = rep.seq, rep.hash
        self.replayed = rep.replayed
        if complete:
            self.committed = (rep.seq, rep.hash)
            self.since_snapshot = rep.replayed
        else:
            self.committed = (self.ledger.base_seq - 1, self.ledger.base_prev)

    def recover(self) -> None:
        """Rebuild the state from the committed rows.

        Raises
        ------
        LedgerCorruptError
            The ledger does not replay; the state is what was rebuilt before
            the failure (reads go on from it, operations must be refused).
        """
        rep = self.new_replay()
        try:
            rep.run()
        except BaseException:
            self.adopt(rep, complete=False)
            raise
        self.adopt(rep, complete=True)

    # ------------------------------------------------------------ writing

    def check_usable(self) -> None:
        """Refuse operations once a failure could not be recovered from.

        Raises
        ------
        LedgerUnavailableError
            :attr:`broken` is set.
        """
        if self.broken is not None:
            raise LedgerUnavailableError(
                f"the allocator is unusable after a failed commit ({self.broken}); restart"
            )

    def append(self, kind: str, body: str, result: str, secret: str = "") -> tuple[int, bytes]:
        """Chain a row after the last one and keep it pending; returns its (seq, hash)."""
        seq = self.seq + 1
        h = row_hash(self.hash, seq, kind, body, result, secret)
        self.pending.append((seq, kind, body, result, h, secret))
        self.seq, self.hash = seq, h
        self.since_snapshot += 1
        return seq, h

    def commit(self) -> None:
        """Commit the pending rows (one transaction, one fsync), then the head file.

        Raises
        ------
        sqlite3.Error, OSError
            Nothing was committed (a commit whose head file could not be
            written is taken back out of the file).
        LedgerUnavailableError
            The head file was not written and the commit could not be taken back.
        """
        if not self.pending:
            return
        led = self.ledger
        prev = self.committed
        head = (self.seq, self.hash)
        led.append(self.pending, head, prev)
        self.pending = []
        try:
            led.head_file.write(*head)
        except BaseException as err:
            # Committed but not recorded apart: take the rows back out, so that the
            # caller's "not committed, nothing changed" is true.
            try:
                led.truncate_to(prev)
                led.head_file.write(*prev)
            except BaseException as e:
                self.broken = (
                    f"head file not written ({describe(err)}) and the commit could not be "
                    f"taken back ({describe(e)})"
                )
                log.critical("ledger %s: %s", led.path, self.broken)
                raise LedgerUnavailableError(self.broken) from err
            raise
        self.committed = head

    def abort(self, err: BaseException) -> NoReturn:
        """After any failure with operations applied: roll back, rebuild, raise.

        Raises
        ------
        LedgerWriteError
            The state is the committed one again; nothing of it happened.
        LedgerUnavailableError
            The state could not be rebuilt (or ``err`` is one).
        BaseException
            ``err`` itself when it is not an :class:`Exception`, once the state
            is whole again.
        """
        led = self.ledger
        self.pending = []
        led.rollback()
        if isinstance(err, LedgerUnavailableError):
            raise err
        log.error(
            "ledger %s: not committed (%s); rebuilding from the ledger", led.path, describe(err)
        )
        try:
            self.recover()
        except Exception as e:  # the process must restart; say why
            self.broken = f"{describe(err)}; recovery failed: {describe(e)}"
            log.critical("ledger %s: recovery failed: %s", led.path, describe(e))
            raise LedgerUnavailableError(self.broken) from err
        if not isinstance(err, Exception):
            raise err  # KeyboardInterrupt and the like, once the state is whole again
        raise LedgerWriteError(f"not committed, nothing changed: {describe(err)}") from err

    def end_transaction(self, ok: bool) -> None:
        """Close one transaction block: the outermost commits, or undoes a failed block.

        Raises
        ------
        LedgerWriteError, LedgerUnavailableError
            As :meth:`abort`.
        """
        self.depth -= 1
        if self.depth:
            return
        if ok:
            try:
                self.commit()
            except BaseException as e:
                self.abort(e)
            self.maybe_snapshot()
        elif self.pending and self.broken is None:
            # The block's own exception propagates; its operations are undone.
            self.pending = []
            try:
                self.recover()
            except Exception as e:
                self.broken = f"transaction undone; recovery failed: {describe(e)}"
                raise LedgerUnavailableError(self.broken) from e

    # ------------------------------------------------------------ snapshots

    def maybe_snapshot(self) -> None:
        """Take a snapshot when enough rows were committed since the last one."""
        if self.snapshot_every and self.depth == 0 and self.since_snapshot >= self.snapshot_every:
            self.take_snapshot()

    def take_snapshot(self) -> None:
        """Store a snapshot of the state now (a failure is logged: the rows suffice)."""
        try:
            state = snapshot_state(self.seq, self.alloc, self.ownership)
            self.ledger.save_snapshot(self.seq, self.hash, state)
        except (sqlite3.Error, ValueError) as e:
            # A snapshot is only a shortcut: the rows alone rebuild the state.
            log.warning("ledger %s: snapshot failed: %s", self.ledger.path, describe(e))
            return
        self.since_snapshot = 0
