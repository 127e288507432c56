"""A durable, append-only ledger of online booking events, and an Allocator on top of it.

:class:`Ledger` is the file: SQLite in WAL mode, one row per accepted event,
each row chained to the one before it by a SHA-256 hash, periodic snapshots of
the whole state, and a small *head file* beside it (``DB.head``) recording the
last committed row and its hash. :class:`DurableAllocator` is what a booking
backend embeds: the online :class:`~slotalloc.online.Allocator` whose every
accepted operation is committed to the ledger before it returns.
:class:`GroupCommitter` is its single writer thread, which gives operations
that arrive together one transaction and one fsync.

Durability
----------
``PRAGMA synchronous=FULL`` by default: in WAL mode SQLite then fsyncs the WAL
at every commit, and the head file is fsynced after it, so a reply given after
a commit survives a power loss, not only a process crash. ``NORMAL`` (fsync
only at checkpoints) would survive a SIGKILL but could lose the last commits
on power loss, i.e. lose bookings the family was told are confirmed. ``OFF``
(no fsync at all, head file included) exists for benchmarks only.

Validate, apply, log, commit
----------------------------
An operation is first checked completely without touching the state: the
event is serialised to its canonical JSON and encoded to UTF-8 (a string the
file could not hold, e.g. a lone surrogate, is refused here as
:class:`UnstorableEventError`), and the caller's right to it is checked. Then,
under one lock, it is applied to the in-memory Allocator (which refuses a used
id, an unknown child or session, a child conflict, without any change), its
row is appended to the pending rows, and the pending rows are committed in one
SQLite transaction, then the head file is written. Only then does the call
return. If anything fails after an operation was applied, whatever the
exception, the transaction is rolled back (a commit whose head file could not
be written is taken back out of the file) and the in-memory state is rebuilt
from the ledger, which does not hold the failed rows: the state is exactly the
committed one again and :class:`LedgerWriteError` is raised. If even that
fails the allocator refuses every further operation
(:class:`LedgerUnavailableError`) and the process must restart.

Refused operations are not logged: a :class:`~slotalloc.exceptions.BookingError`
changes nothing, so the state and every accepted decision replay exactly
without it, and logging refusals would cost an fsync per bad request.

Integrity at start
------------------
Row ``n`` stores ``hash_n = sha256(hash_{n-1} || seq, kind, body, result[, secret])``,
the chain starting from a hash of the starting instance (a ledger opened with
another instance is refused). On open: the head file must record the head in
the file (or the head just before the last transaction, when the process died
between the commit and the head file's update: that transaction was never
acknowledged and is kept); every row, from the first, is checked against the
chain with no gap, up to the recorded head; the newest snapshot whose checksum
holds must match the chain at its row, and the rows after it are re-applied,
each recomputed decision compared with the one stored. An empty, missing,
truncated or altered ledger, or a missing head file, raises
:class:`LedgerCorruptError` with one line saying what is wrong, unless the
allocator is opened with ``recover=True``: then the damaged files are copied
aside, the longest valid prefix of the chain is kept, and
:attr:`DurableAllocator.recovery` says what was kept and what was lost.

Per-booking secrets
-------------------
A book row may carry the SHA-256 of a per-booking secret (the ``secret``
column, inside the hash). It lets the holder of the secret cancel that booking,
and book again children first registered by it, without operator rights. The
secret itself is never stored.

Erasure
-------
:meth:`DurableAllocator.compact` rewrites the ledger as one ``base`` row
holding the current state, from which cancelled requests and the children no
live request names are gone; the base row's hash chains from the old head, so
the rewritten file continues the chain of receipts. Rows, snapshots and free
pages of the old file go with it (``secure_delete`` is on for pruned snapshots).

Modules
-------
This module gathers the public names; the code lives in:

* :mod:`~slotalloc.service.durable`: :class:`DurableAllocator`, what a backend calls;
* :mod:`~slotalloc.service.journal`: its state and the commit protocol (append,
  commit, roll back and rebuild);
* :mod:`~slotalloc.service.ops`: book and cancel operations, receipts, row JSON;
* :mod:`~slotalloc.service.ownership`: per-booking secrets;
* :mod:`~slotalloc.service.replay`: rebuilding the state on open, ``recover``;
* :mod:`~slotalloc.service.rebalance`: the batch optimiser on the live state;
* :mod:`~slotalloc.service.compaction`: erasure;
* :mod:`~slotalloc.service.commit`: :class:`GroupCommitter`;
* :mod:`~slotalloc.service.store`: :class:`Ledger`, the SQLite file;
* :mod:`~slotalloc.service.files`: the head file, the writer lock, fsyncs;
* :mod:`~slotalloc.service.chain`: canonical JSON and the hash chain;
* :mod:`~slotalloc.service.errors`: the errors.
"""

from __future__ import annotations

from slotalloc.online import RequestStatus
from slotalloc.service.chain import secret_digest
from slotalloc.service.commit import GroupCommitter
from slotalloc.service.compaction import CompactionReport
from slotalloc.service.durable import DurableAllocator, compact
from slotalloc.service.errors import (
    LedgerCorruptError,
    LedgerError,
    LedgerMismatchError,
    LedgerUnavailableError,
    LedgerWriteError,
    NotPermittedError,
    RebalanceBusyError,
    RebalanceRejectedError,
    UnstorableEventError,
)
from slotalloc.service.files import HeadFile
from slotalloc.service.ops import BookOp, CancelOp, DurableCancellation, DurableDecision
from slotalloc.service.rebalance import RebalanceOutcome
from slotalloc.service.replay import RecoveryReport
from slotalloc.service.store import SCHEMA_VERSION, Ledger

__all__ = [
    "SCHEMA_VERSION",
    "BookOp",
    "CancelOp",
    "CompactionReport",
    "DurableAllocator",
    "DurableCancellation",
    "DurableDecision",
    "GroupCommitter",
    "HeadFile",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerMismatchError",
    "LedgerUnavailableError",
    "LedgerWriteError",
    "NotPermittedError",
    "RebalanceBusyError",
    "RebalanceOutcome",
    "RebalanceRejectedError",
    "RecoveryReport",
    "RequestStatus",
    "UnstorableEventError",
    "compact",
    "secret_digest",
]
