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
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import logging
import os
import queue
import shutil
import sqlite3
import struct
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from slotalloc.compile import Compiled, compile_instance
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    InvalidStateError,
    SlotallocError,
    UnknownRequestError,
)
from slotalloc.models import Booking, Child, Instance, Objective, Request, Solution
from slotalloc.online import Allocator, Cancellation, Decision, Placement, RequestStatus
from slotalloc.online.allocator import gc_paused
from slotalloc.result import Result
from slotalloc.rules import Rule

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

log = logging.getLogger(__name__)

#: Version of the tables written in ``meta``; version 1 files (no ``secret``
#: column, no head file) are read and upgraded when adopted with ``recover``.
SCHEMA_VERSION = 2
_READABLE_VERSIONS = ("1", "2")
_GENESIS_TAG = b"slotalloc.service.ledger/1\n"

Synchronous = Literal["FULL", "NORMAL", "OFF"]


class LedgerError(SlotallocError):
    """The ledger cannot be used as asked."""


class LedgerCorruptError(LedgerError):
    """The ledger fails an integrity check (empty, chain, gap, head, head file, checksum)."""


class LedgerMismatchError(LedgerError):
    """The ledger belongs to another starting instance or another schema version."""


class LedgerWriteError(LedgerError):
    """An operation could not be committed; it was not applied and nothing was confirmed."""


class LedgerUnavailableError(LedgerError):
    """A failed commit could not be recovered from; the process must restart."""


class RebalanceRejectedError(SlotallocError):
    """A rebalance result was refused (drops not allowed, state changed, invalid result)."""


class RebalanceBusyError(RebalanceRejectedError):
    """Another rebalance is running; only one runs at a time."""


class NotPermittedError(BookingError):
    """The caller may not do this (another booking's secret or an operator is needed)."""


class UnstorableEventError(BookingError):
    """The event cannot be written to the ledger (e.g. text that is not valid Unicode)."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the bytes that are hashed and stored."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def instance_digest(instance: Instance, start: Solution | Result | None = None) -> bytes:
    """The hash that starts the chain: binds a ledger to its starting instance.

    With ``start`` (a batch result the service starts from), its assignments are
    bound too: the same instance served from another plan is another ledger.
    """
    text = canonical_json(instance.model_dump(mode="json"))
    if start is not None:
        held = [[a.request, a.session] for a in start.assignments]
        text += "\n" + canonical_json({"start_assignments": held})
    return hashlib.sha256(_GENESIS_TAG + text.encode()).digest()


def secret_digest(secret: str) -> bytes:
    """The SHA-256 of a per-booking secret: what the ledger stores and compares."""
    return hashlib.sha256(secret.encode("utf-8", "surrogateescape")).digest()


def _row_hash(prev: bytes, seq: int, kind: str, body: str, result: str, secret: str = "") -> bytes:
    h = hashlib.sha256(prev)
    text = f"{seq}\x1f{kind}\x1f{body}\x1f{result}"
    if secret:  # rows without a secret hash as in schema version 1
        text += f"\x1f{secret}"
    h.update(text.encode())
    return h.digest()


def _fsync_dir(path: str) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _describe(err: BaseException) -> str:
    """An exception for a log line or a reply: SQLite and OS errors say what; others their type.

    Other exceptions' messages may quote the data being written, which must not
    reach a log.
    """
    if isinstance(err, sqlite3.Error | OSError | LedgerError):
        return f"{type(err).__name__}: {err}"
    return type(err).__name__


@dataclass(frozen=True)
class Row:
    """One ledger row: an accepted event and the decision it got."""

    seq: int
    kind: str
    body: str
    result: str
    hash: bytes
    secret: str = ""


# ---------------------------------------------------------------- the head file


class HeadFile:
    """The last committed (seq, hash), kept apart from the SQLite file and its WAL.

    Two 64-byte slots, written alternately in place (``pwrite`` then
    ``fdatasync``): magic, a generation number, the seq, the hash and a
    checksum. Reading takes the valid slot of the highest generation, so a torn
    write leaves the previous record readable.

    Parameters
    ----------
    path
        The file (created on the first write, mode 0600).
    fsync
        Whether each write is made durable (False only for benchmarks).
    """

    _REC = struct.Struct("<8sQq32s")
    _SLOT = 64
    _MAGIC = b"SLHEAD01"

    def __init__(self, path: str, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None
        self._gen = 0

    def exists(self) -> bool:
        """Whether the file exists."""
        return os.path.exists(self.path)

    def read(self) -> tuple[int, bytes] | None:
        """The recorded (seq, hash), or None when the file does not exist.

        Raises
        ------
        LedgerCorruptError
            The file exists but holds no valid record.
        """
        try:
            with open(self.path, "rb") as f:
                data = f.read(2 * self._SLOT)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise LedgerCorruptError(f"{self.path}: cannot read the head file: {e}") from e
        best: tuple[int, int, bytes] | None = None
        for i in range(2):
            chunk = data[i * self._SLOT : (i + 1) * self._SLOT]
            if len(chunk) < self._REC.size + 8:
                continue
            rec, check = chunk[: self._REC.size], chunk[self._REC.size : self._REC.size + 8]
            if hashlib.sha256(rec).digest()[:8] != check:
                continue
            magic, gen, seq, h = self._REC.unpack(rec)
            if magic == self._MAGIC and (best is None or gen > best[0]):
                best = (gen, seq, h)
        if best is None:
            raise LedgerCorruptError(f"{self.path}: the head file holds no valid record")
        self._gen = max(self._gen, best[0])
        return best[1], best[2]

    def write(self, seq: int, h: bytes) -> None:
        """Record (seq, hash) durably.

        Raises
        ------
        OSError
            The record could not be written or synced.
        """
        if self._fd is None:
            created = not os.path.exists(self.path)
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if created:
                _fsync_dir(self.path)
        gen = self._gen + 1
        rec = self._REC.pack(self._MAGIC, gen, seq, h)
        rec += hashlib.sha256(rec).digest()[:8]
        os.pwrite(self._fd, rec.ljust(self._SLOT, b"\0"), (gen % 2) * self._SLOT)
        if self.fsync:
            os.fdatasync(self._fd)
        self._gen = gen

    def close(self) -> None:
        """Close the file descriptor."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None


# ---------------------------------------------------------------- the file


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    result TEXT NOT NULL,
    hash BLOB NOT NULL,
    secret TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    state BLOB NOT NULL,
    checksum BLOB NOT NULL
);
"""


_INSERT_ROWS = "INSERT INTO events (seq, kind, body, result, hash, secret) VALUES "
_ROWS_PER_INSERT = 500  # 6 parameters a row, well under SQLite's 32 766


def _connect(path: str, synchronous: Synchronous) -> sqlite3.Connection:
    # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE).
    db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute(f"PRAGMA synchronous={synchronous}")
    db.execute("PRAGMA secure_delete=ON")  # pruned snapshots leave no data in free pages
    return db


def _acquire_writer_lock(db: str) -> Any:
    """Hold ``DB.lock`` exclusively while a DurableAllocator has the ledger open.

    Two writers (a second server, or an offline compaction under a running
    one) would each append rows from their own state and fork the chain. The
    lock is released when the file is closed, or when the process dies.

    Raises
    ------
    LedgerError
        Another DurableAllocator (in this process or another) has the ledger open.
    """
    import fcntl

    path = db + ".lock"
    _create_private(path)
    f = open(path, "rb")  # noqa: SIM115 (held open for the allocator's lifetime)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise LedgerError(
            f"{db}: the ledger is open in another process (or allocator); stop it first"
        ) from None
    return f


def _create_private(path: str) -> None:
    """Create an empty file readable by its owner only (the ledger holds children's data)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class _Checkpointer:
    """Checkpoints the WAL from its own thread and connection, off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit makes the WAL
    pass 1000 pages: that commit copies the pages into the database and fsyncs
    it, and every reply waiting on it waits too (measured at 32 clients: the
    p99 latency went from about 45 to over 50 ms, some rounds 100 ms). This
    thread runs a ``PASSIVE`` checkpoint (it never blocks the writer) once the
    WAL file is over ``threshold`` bytes, checking every ``interval`` seconds.
    Checkpoints only move committed frames: durability is the same.
    """

    def __init__(self, path: str, *, threshold: int = 4 << 20, interval: float = 0.5) -> None:
        self.path = path
        self.threshold = threshold
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ledger-checkpoint", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        db: sqlite3.Connection | None = None
        try:
            while not self._stop.wait(self.interval):
                try:
                    if os.path.getsize(self.path + "-wal") < self.threshold:
                        continue
                    if db is None:
                        db = sqlite3.connect(self.path, isolation_level=None)
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except (OSError, sqlite3.Error) as e:
                    log.warning("ledger %s: background checkpoint: %s", self.path, _describe(e))
        finally:
            if db is not None:
                db.close()

    def stop(self) -> None:
        """Stop the thread (waits for a checkpoint under way)."""
        self._stop.set()
        self._thread.join(30)


class Ledger:
    """The append-only SQLite ledger file and its head file.

    Parameters
    ----------
    path
        The database file (created when absent, with its head file ``PATH.head``).
    instance
        The starting instance; a new file records it, an existing file must
        have been created with an equal one.
    synchronous
        SQLite's ``synchronous`` setting in WAL mode (see the module notes);
        ``OFF`` also skips the head file's fsync.
    recover
        Record the problems found in :attr:`problems` instead of raising, for
        :class:`DurableAllocator` to salvage the valid part.
    background_checkpoint
        Checkpoint the WAL from a background thread instead of inside commits
        (see :class:`_Checkpointer`).

    Raises
    ------
    LedgerMismatchError
        The file was created for another instance or with another schema version.
    LedgerCorruptError
        The file is missing or empty while its head file records rows, is not a
        readable SQLite database, has no head file, or its head disagrees with
        the head file (unless ``recover``).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        instance: Instance,
        *,
        synchronous: Synchronous = "FULL",
        recover: bool = False,
        background_checkpoint: bool = False,
        start: Solution | Result | None = None,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"unknown synchronous setting {synchronous!r}")
        self.path = os.fspath(path)
        self._recover_mode = recover
        self.synchronous: Synchronous = synchronous
        self.genesis = instance_digest(instance, start)
        self.head_file = HeadFile(self.path + ".head", fsync=synchronous != "OFF")
        self.problems: list[str] = []
        #: True when the file is one transaction ahead of the head file (kept; rewrite it).
        self.head_file_stale = False
        self.recorded: tuple[int, bytes] | None = None
        self.base_seq = 0
        self.base_prev = self.genesis
        self._in_txn = False
        self._checkpointer: _Checkpointer | None = None
        self._background_checkpoint = background_checkpoint
        self._instance_json = canonical_json(instance.model_dump(mode="json"))
        try:
            self.recorded = self.head_file.read()
        except LedgerCorruptError as e:
            self._problem(str(e))
        size = os.path.getsize(self.path) if os.path.exists(self.path) else None
        fresh = not size
        if fresh and self.recorded is not None and self.recorded[0] < 0:
            # A crash while the ledger was being created: nothing was ever acknowledged.
            self.recorded = None
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.head_file.path)
        if fresh and self.head_file.exists():
            seq = "?" if self.recorded is None else str(self.recorded[0])
            what = "missing" if size is None else "empty"
            self._problem(
                f"{self.path}: the ledger file is {what} but its head file records row {seq}: "
                "every acknowledged event would be lost"
            )
        if self.problems and not recover:
            raise LedgerCorruptError(self._refusal())  # before anything is written
        if fresh:
            _create_private(self.path)
        try:
            self._db = self._open_db()
            self._db.executescript(_SCHEMA)
            self._init_meta(fresh)
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise LedgerCorruptError(f"{self.path}: not a usable SQLite ledger: {e}") from e
        except BaseException:
            self._close_quietly()
            raise

    def _open_db(self) -> sqlite3.Connection:
        db = _connect(self.path, self.synchronous)
        if self._background_checkpoint:
            db.execute("PRAGMA wal_autocheckpoint=0")
            if self._checkpointer is None:
                self._checkpointer = _Checkpointer(self.path)
        return db

    def _stop_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None

    def _problem(self, text: str) -> None:
        if not self.problems:
            log.debug("ledger problem: %s", text)
        self.problems.append(text)

    def _close_quietly(self) -> None:
        self._stop_checkpointer()
        self.head_file.close()
        with contextlib.suppress(Exception):
            self._db.close()

    def _meta(self) -> dict[str, str]:
        return dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _init_meta(self, fresh: bool) -> None:
        meta = self._meta()
        if not meta:
            if not fresh and self.recorded is not None:
                self._problem(
                    f"{self.path}: the ledger holds no rows but its head file records row "
                    f"{self.recorded[0]}"
                )
            if self.problems and not self._recover_mode:
                raise LedgerCorruptError(self._refusal())
            now = dt.datetime.now(dt.UTC).isoformat()
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                self._meta_rows((0, self.genesis), (-1, self.genesis), (-1, self.genesis), now),
            )
            self._db.execute("COMMIT")
            if not self.problems:
                self.head_file.write(-1, self.genesis)
                _fsync_dir(self.path)
            return
        version = meta.get("schema_version")
        if version not in _READABLE_VERSIONS:
            raise LedgerMismatchError(
                f"{self.path}: schema version {version!r}; this library reads "
                f"{', '.join(_READABLE_VERSIONS)}"
            )
        if meta.get("genesis") != self.genesis.hex():
            raise LedgerMismatchError(f"{self.path}: the ledger was created for another instance")
        if "head_seq" not in meta or "head_hash" not in meta:
            raise LedgerCorruptError(f"{self.path}: the head is missing from meta")
        self.base_seq = int(meta.get("base_seq", "0"))
        self.base_prev = bytes.fromhex(meta.get("base_prev_hash", self.genesis.hex()))
        head = (int(meta["head_seq"]), bytes.fromhex(meta["head_hash"]))
        prev = (
            int(meta.get("prev_head_seq", meta["head_seq"])),
            bytes.fromhex(meta.get("prev_head_hash", meta["head_hash"])),
        )
        got = self.recorded
        if got is None and head[0] < 0 and self.max_seq() == -1 and not self.problems:
            # Created, then a crash before its head file was written: nothing to lose.
            self.head_file.write(*head)
            got = head
        if got is None:
            if not self.problems:
                self._problem(
                    f"{self.path}: its head file {self.head_file.path} is missing, so the loss "
                    "of acknowledged events cannot be ruled out"
                )
        elif got == head:
            pass
        elif got == prev and prev[0] < head[0]:
            # The process died between the commit and the head file's update: that
            # transaction was never acknowledged, and it is whole. Keep it.
            log.warning(
                "ledger %s: rows %d-%d were committed but never acknowledged (the head file "
                "was not updated); kept",
                self.path,
                prev[0] + 1,
                head[0],
            )
            self.head_file_stale = True
        elif got[0] > head[0]:
            self._problem(
                f"{self.path}: the ledger ends at row {head[0]} but its head file records row "
                f"{got[0]}: acknowledged rows {head[0] + 1}-{got[0]} are missing "
                "(a deleted or damaged WAL file?)"
            )
        elif got[0] == head[0]:
            self._problem(
                f"{self.path}: row {head[0]} does not have the hash its head file records "
                "(altered ledger)"
            )
        else:
            self._problem(
                f"{self.path}: the ledger goes to row {head[0]} but its head file records row "
                f"{got[0]} (rows added that were never acknowledged, or an old head file)"
            )
        if self.problems and not self._recover_mode:
            raise LedgerCorruptError(self._refusal())
        if version == "1":
            self._upgrade()

    def _refusal(self) -> str:
        return f"{self.problems[0]}; refusing to start (--recover keeps the valid part)"

    def _meta_rows(
        self,
        base: tuple[int, bytes],
        head: tuple[int, bytes],
        prev: tuple[int, bytes],
        created: str,
    ) -> list[tuple[str, str]]:
        return [
            ("schema_version", str(SCHEMA_VERSION)),
            ("instance", self._instance_json),
            ("genesis", self.genesis.hex()),
            ("created_at", created),
            ("base_seq", str(base[0])),
            ("base_prev_hash", base[1].hex()),
            ("head_seq", str(head[0])),
            ("head_hash", head[1].hex()),
            ("prev_head_seq", str(prev[0])),
            ("prev_head_hash", prev[1].hex()),
        ]

    def _upgrade(self) -> None:
        """Version 1 -> 2: the ``secret`` column and the meta keys (rows hash the same)."""
        cols = {r[1] for r in self._db.execute("PRAGMA table_info(events)").fetchall()}
        self._db.execute("BEGIN IMMEDIATE")
        try:
            if "secret" not in cols:
                self._db.execute("ALTER TABLE events ADD COLUMN secret TEXT NOT NULL DEFAULT ''")
            self._db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    # ------------------------------------------------------------ reading

    def head(self) -> tuple[int, bytes]:
        """The last committed (seq, hash) as recorded in ``meta`` (-1 and genesis when empty)."""
        rows = dict(
            self._db.execute(
                "SELECT key, value FROM meta WHERE key IN ('head_seq', 'head_hash')"
            ).fetchall()
        )
        return int(rows["head_seq"]), bytes.fromhex(rows["head_hash"])

    def stored_instance(self) -> dict[str, Any]:
        """The starting instance recorded in the file, as JSON data."""
        (text,) = self._db.execute("SELECT value FROM meta WHERE key = 'instance'").fetchone()
        loaded: dict[str, Any] = json.loads(text)
        return loaded

    def rows(
        self,
        after: int | None = None,
        prev_hash: bytes | None = None,
        *,
        check_head: bool = True,
        until: int | None = None,
    ) -> Iterator[Row]:
        """The rows after seq ``after``, in order, checking gaps and the hash chain.

        Parameters
        ----------
        after
            Yield rows with a larger seq (default: every row, from the base).
        prev_hash
            The hash of row ``after`` (default: the chain's start).
        check_head
            Also check that the rows end exactly at the head recorded in ``meta``
            (never with ``until``).
        until
            Stop after this seq (rows after it are not read).

        Raises
        ------
        LedgerCorruptError
            At the first gap, hash mismatch, or unreadable page; also when the
            rows end before, or go past, the head recorded in ``meta``.
        """
        if after is None:
            after, prev_hash = self.base_seq - 1, self.base_prev
        prev = self.genesis if prev_hash is None else prev_hash
        expect = after + 1
        try:
            head_seq, head_hash = self.head()
            cur = self._db.execute(
                "SELECT seq, kind, body, result, hash, secret FROM events "
                "WHERE seq > ? AND seq <= ? ORDER BY seq",
                (after, (1 << 62) if until is None else until),
            )
            for seq, kind, body, result, stored, secret in cur:
                if seq != expect:
                    raise LedgerCorruptError(
                        f"{self.path}: row {expect} is missing (next row is {seq})"
                    )
                h = _row_hash(prev, seq, kind, body, result, secret)
                if h != stored:
                    raise LedgerCorruptError(
                        f"{self.path}: row {seq} fails the hash chain (edited or corrupt)"
                    )
                yield Row(seq, kind, body, result, h, secret)
                prev = h
                expect = seq + 1
        except sqlite3.DatabaseError as e:
            raise LedgerCorruptError(f"{self.path}: unreadable near row {expect}: {e}") from e
        if check_head and until is None and (expect - 1 != head_seq or prev != head_hash):
            raise LedgerCorruptError(
                f"{self.path}: rows end at {expect - 1} but the recorded head is {head_seq} "
                "(truncated or inconsistent tail)"
            )

    def row_hash(self, seq: int) -> bytes | None:
        """The stored hash of row ``seq``, or None when there is no such row."""
        got = self._db.execute("SELECT hash FROM events WHERE seq = ?", (seq,)).fetchone()
        return None if got is None else bytes(got[0])

    def latest_snapshot(self) -> tuple[int, bytes, dict[str, Any]] | None:
        """The newest snapshot whose checksum holds: (seq, hash, state), or None.

        A snapshot that fails its checksum is logged and skipped (an older one,
        or the rows from the start, rebuild the same state).

        Raises
        ------
        LedgerCorruptError
            The snapshot table is unreadable.
        """
        try:
            cur = self._db.execute(
                "SELECT seq, hash, state, checksum FROM snapshots ORDER BY seq DESC"
            )
            for seq, h, blob, checksum in cur:
                if hashlib.sha256(blob).digest() != checksum:
                    log.warning(
                        "%s: snapshot at row %d fails its checksum; skipped", self.path, seq
                    )
                    continue
                state = json.loads(zlib.decompress(blob))
                return int(seq), bytes(h), state
        except (sqlite3.DatabaseError, zlib.error, ValueError) as e:
            raise LedgerCorruptError(f"{self.path}: unreadable snapshot: {e}") from e
        return None

    def quick_check(self) -> None:
        """SQLite's page-level ``quick_check``.

        Raises
        ------
        LedgerCorruptError
            When SQLite finds the file damaged.
        """
        try:
            got = [r[0] for r in self._db.execute("PRAGMA quick_check").fetchall()]
        except sqlite3.DatabaseError as e:
            raise LedgerCorruptError(f"{self.path}: {e}") from e
        if got != ["ok"]:
            raise LedgerCorruptError(f"{self.path}: SQLite quick_check: {'; '.join(got[:3])}")

    # ------------------------------------------------------------ writing

    def append(
        self,
        rows: Sequence[tuple[int, str, str, str, bytes, str]],
        head: tuple[int, bytes],
        prev: tuple[int, bytes],
    ) -> None:
        """Insert rows and the new head in one transaction and commit it (one fsync).

        Parameters
        ----------
        rows
            (seq, kind, body, result, hash, secret) tuples, in order.
        head
            The (seq, hash) of the last row.
        prev
            The head before this transaction (what a head file one commit behind holds).

        Raises
        ------
        sqlite3.Error
            Nothing was committed (the transaction is rolled back).
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        self._in_txn = True
        try:
            # Few statements, many rows each: the sqlite3 module releases the GIL
            # around every step, and getting it back can wait a whole switch
            # interval behind the event loop (measured: executemany of 14 rows
            # took 3 ms under load; one multi-row INSERT one step).
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                chunk = rows[i : i + _ROWS_PER_INSERT]
                db.execute(
                    _INSERT_ROWS + ", ".join(["(?, ?, ?, ?, ?, ?)"] * len(chunk)),
                    [v for row in chunk for v in row],
                )
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?), (?, ?), (?, ?), (?, ?)",
                (
                    "head_seq",
                    str(head[0]),
                    "head_hash",
                    head[1].hex(),
                    "prev_head_seq",
                    str(prev[0]),
                    "prev_head_hash",
                    prev[1].hex(),
                ),
            )
            db.execute("COMMIT")
            self._in_txn = False
        except BaseException:
            self.rollback()
            raise

    def truncate_to(self, head: tuple[int, bytes]) -> None:
        """Take the rows after ``head`` back out (a commit whose head file failed).

        Raises
        ------
        sqlite3.Error
            The rows could not be removed.
        """
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        self._in_txn = True
        try:
            db.execute("DELETE FROM events WHERE seq > ?", (head[0],))
            db.execute("DELETE FROM snapshots WHERE seq > ?", (head[0],))
            db.executemany(
                "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)",
                [
                    ("head_seq", str(head[0])),
                    ("head_hash", head[1].hex()),
                    ("prev_head_seq", str(head[0])),
                    ("prev_head_hash", head[1].hex()),
                ],
            )
            db.execute("COMMIT")
            self._in_txn = False
        except BaseException:
            self.rollback()
            raise

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        self._in_txn = False
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def save_snapshot(self, seq: int, h: bytes, state: Mapping[str, Any], keep: int = 2) -> None:
        """Store a snapshot of the state after row ``seq`` and prune all but the ``keep`` newest.

        Raises
        ------
        sqlite3.Error
            Not stored (the rows alone still rebuild the state).
        """
        blob = zlib.compress(canonical_json(state).encode(), 1)
        self._db.execute("BEGIN IMMEDIATE")
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO snapshots (seq, hash, state, checksum) VALUES (?, ?, ?, ?)",
                (seq, h, blob, hashlib.sha256(blob).digest()),
            )
            self._db.execute(
                "DELETE FROM snapshots WHERE seq NOT IN "
                "(SELECT seq FROM snapshots ORDER BY seq DESC LIMIT ?)",
                (keep,),
            )
            self._db.execute("COMMIT")
        except BaseException:
            self.rollback()
            raise

    def max_seq(self) -> int | None:
        """The largest seq in the file (None when unreadable), whatever the head says."""
        try:
            got = self._db.execute("SELECT max(seq) FROM events").fetchone()
        except sqlite3.DatabaseError:
            return None
        return -1 if got[0] is None else int(got[0])

    def backup(self) -> str:
        """Copy the file, its WAL and its head file aside; returns the copy's path.

        Raises
        ------
        OSError
            A copy failed.
        """
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        dest = f"{self.path}.damaged-{stamp}"
        for suffix in ("", "-wal", ".head"):
            src = self.path + suffix
            if os.path.exists(src):
                _create_private(dest + suffix)
                shutil.copyfile(src, dest + suffix)
        return dest

    def rewrite(
        self,
        rows: Sequence[Row],
        *,
        base: tuple[int, bytes],
        head: tuple[int, bytes],
        prev: tuple[int, bytes],
    ) -> None:
        """Replace the file by a new one holding only ``rows`` (recovery, compaction).

        The new file is written beside the old one, synced, and renamed over it;
        the old WAL is removed first, then the head file records ``head``. A
        crash before the rename leaves the old file; after it, the new one
        (its ``prev`` head equals the old head, so a head file not yet
        rewritten is accepted).

        Raises
        ------
        sqlite3.Error, OSError
            Before the rename, nothing changed; after it, the new file holds
            the rows and the head file may lag one transaction (accepted).
        """
        tmp = self.path + ".rewrite"
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp + suffix)
        _create_private(tmp)
        try:
            self._write_new_file(tmp, rows, base, head, prev)
        except BaseException:
            for suffix in ("", "-wal", "-shm"):  # it may hold the data being erased
                with contextlib.suppress(OSError):
                    os.unlink(tmp + suffix)
            raise
        self._stop_checkpointer()  # its connection must not outlive the old file
        self._db.close()
        for suffix in ("-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.path + suffix)
        os.replace(tmp, self.path)
        _fsync_dir(self.path)
        self._db = self._open_db()
        self.base_seq, self.base_prev = base
        self.head_file.write(*head)

    def _write_new_file(
        self,
        tmp: str,
        rows: Sequence[Row],
        base: tuple[int, bytes],
        head: tuple[int, bytes],
        prev: tuple[int, bytes],
    ) -> None:
        new = _connect(tmp, "FULL")
        try:
            new.executescript(_SCHEMA)
            meta = self._meta_rows(base, head, prev, dt.datetime.now(dt.UTC).isoformat())
            new.execute("BEGIN IMMEDIATE")
            new.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", meta)
            new.executemany(
                "INSERT INTO events (seq, kind, body, result, hash, secret) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(r.seq, r.kind, r.body, r.result, r.hash, r.secret) for r in rows],
            )
            new.execute("COMMIT")
            new.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            new.close()
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def close(self) -> None:
        """Checkpoint the WAL and close the files."""
        self._stop_checkpointer()
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()
        self.head_file.close()


# ---------------------------------------------------------------- operations and outcomes


@dataclass(frozen=True)
class BookOp:
    """A book operation for :meth:`DurableAllocator.execute`.

    Attributes
    ----------
    request, children
        The FORMAT §3 book event.
    secret
        The per-booking secret to record (its SHA-256 is stored), or None.
    proof
        A secret of an earlier booking naming the same children, which a caller
        without ``privileged`` must present to book a child registered by a
        booking with a secret.
    privileged
        An operator (no ownership check).
    """

    request: Request
    children: Sequence[Child] = ()
    secret: str | None = None
    proof: str | None = None
    privileged: bool = True


@dataclass(frozen=True)
class CancelOp:
    """A cancel operation for :meth:`DurableAllocator.execute`.

    Attributes
    ----------
    request
        The request id.
    proof
        The booking's secret; needed unless ``privileged``.
    privileged
        An operator (may cancel any booking).
    """

    request: str
    proof: str | None = None
    privileged: bool = True


Op = BookOp | CancelOp


class DurableDecision(Decision):
    """A :class:`~slotalloc.online.Decision` with its ledger receipt.

    ``sequence`` is the ledger row holding the booking and ``hash`` that row's
    chain hash (hex), read when the row was made: a receipt the client can
    check against the ledger.
    """

    __slots__ = ("hash",)

    def __init__(
        self,
        request: str,
        session: str | None,
        sequence: int,
        hash_hex: str,
        reason: Rule | None = None,
    ) -> None:
        super().__init__(request, session, sequence, reason)
        self.hash = hash_hex


class DurableCancellation(Cancellation):
    """A :class:`~slotalloc.online.Cancellation` with its ledger receipt (``hash``, hex)."""

    __slots__ = ("hash",)

    def __init__(
        self,
        request: str,
        session: str | None,
        promoted: list[Placement],
        sequence: int,
        hash_hex: str,
    ) -> None:
        super().__init__(request, session, promoted, sequence)
        self.hash = hash_hex


@dataclass(frozen=True)
class RebalanceOutcome:
    """What a rebalance changed (request order of the current state).

    Attributes
    ----------
    moved
        (request, old session, new session).
    dropped
        (request, old session); dropped requests join the end of the waitlist.
    placed
        (request, new session): waitlisted requests the optimiser placed.
    promoted
        Placements made by the waitlist scan that follows.
    kept
        Requests left in their session.
    seq
        The ledger seq of the last row written, or None when nothing changed.
    stats
        The solver's figures.
    """

    moved: tuple[tuple[str, str, str], ...]
    dropped: tuple[tuple[str, str], ...]
    placed: tuple[tuple[str, str], ...]
    promoted: tuple[Placement, ...]
    kept: int
    seq: int | None
    stats: Mapping[str, Any] = field(default_factory=dict)


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


@dataclass(frozen=True)
class CompactionReport:
    """What :meth:`DurableAllocator.compact` erased.

    Attributes
    ----------
    old_first, old_head
        The first and last rows of the ledger before (seq).
    old_head_hash
        The old head's hash (hex): the new base row chains from it.
    base_seq, base_hash
        The new base row (seq, hash hex), now the ledger's only row.
    erased_children
        Children no live request names, whose data left the ledger.
    erased_requests
        Requests no longer live (cancelled) whose bodies left the ledger.
    """

    old_first: int
    old_head: int
    old_head_hash: str
    base_seq: int
    base_hash: str
    erased_children: int
    erased_requests: int


def _dump(model: Request | Child) -> dict[str, Any]:
    out: dict[str, Any] = model.model_dump(mode="json", exclude_none=True)
    return out


def _book_result(d: Decision) -> dict[str, Any]:
    return {"request": d.request, "session": d.session, "waitlisted": d.waitlisted}


def _cancel_result(c: Cancellation) -> dict[str, Any]:
    return {
        "request": c.request,
        "cancelled": True,
        "promoted": [{"request": p.request, "session": p.session} for p in c.promoted],
    }


def _storable(text: str) -> str:
    """The text itself, once it is known to encode to UTF-8 (what the file stores).

    Raises
    ------
    UnstorableEventError
        It holds a lone surrogate (or anything else UTF-8 cannot encode).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UnstorableEventError(
            "the event holds text that is not valid Unicode (a lone surrogate?) and cannot "
            "be stored"
        ) from None
    return text


@dataclass(frozen=True)
class _Prepared:
    body: str
    secret_hex: str
    secret: bytes | None
    proof: bytes | None


# ---------------------------------------------------------------- the durable allocator


class DurableAllocator:
    """The online Allocator with every accepted operation committed to a ledger first.

    Parameters
    ----------
    instance
        The starting instance (FORMAT §3): the world and the places held.
    db_path
        The ledger file; when it exists, the state is recovered from it (latest
        valid snapshot, then the rows after it, every decision re-checked,
        every row's hash checked).
    synchronous
        SQLite ``synchronous`` (``FULL`` by default; see the module notes).
    snapshot_every
        Take a snapshot after this many rows since the last one (0: only on
        :meth:`close` and :meth:`snapshot`).
    use_snapshots
        False replays every row from the starting instance (a full audit).
    full_check
        Also run SQLite's ``quick_check`` over the whole file on open.
    recover
        On a damaged ledger, keep the longest valid prefix instead of refusing
        (:attr:`recovery` says what was kept); the damaged files are copied aside.
    exclusive
        Hold ``DB.lock`` (``flock``) until :meth:`close`, refusing a second
        exclusive opener: what ``serve`` and :func:`compact` do, so that two
        writers never fork the chain.
    background_checkpoint
        Checkpoint the WAL from a background thread, never inside a commit
        (what ``serve`` does: it keeps checkpoints out of the reply latency).
    start
        A batch result of ``instance`` to start from, as
        :meth:`Allocator.from_result` does: its assignments are the places held
        (the instance's bookings are not), the other requests wait in file
        order, then one waitlist scan runs. The ledger is bound to it: reopen
        with the same instance and the same start.

    Raises
    ------
    InvalidStateError
        The instance's bookings break a rule.
    LedgerMismatchError
        The file belongs to another instance or schema version.
    LedgerCorruptError
        The file is empty, truncated or altered, its head file is missing or
        disagrees, or a replayed decision differs from the one stored (unless
        ``recover``).
    LedgerError
        ``exclusive`` and another exclusive opener holds the ledger.

    Notes
    -----
    Thread-safe: every public method runs under one re-entrant lock, held from
    applying an operation to its commit (see the module notes).
    """

    def __init__(
        self,
        instance: Instance,
        db_path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "FULL",
        snapshot_every: int = 100_000,
        use_snapshots: bool = True,
        full_check: bool = False,
        recover: bool = False,
        exclusive: bool = False,
        background_checkpoint: bool = False,
        start: Solution | Result | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._rebalancing = threading.Lock()
        self._start = instance
        self._start_plan = start
        # Compiled once for every Allocator of this same instance (recovery builds new ones).
        self._compiled: Compiled = compile_instance(instance)
        self._start_kids = {r.id: r.children for r in instance.requests}
        self._snapshot_every = snapshot_every
        self._broken: str | None = None
        self._txn_depth = 0
        self._pending: list[tuple[int, str, str, str, bytes, str]] = []
        self._secrets: dict[str, bytes] = {}
        self._owners: dict[str, list[bytes]] = {}
        self.recovery: RecoveryReport | None = None
        # The starting state first: bookings or a plan that break a rule are refused
        # before any file is created or locked (nothing written on bad input).
        self._initial: Allocator | None = self._fresh_allocator()
        self._lock_file = _acquire_writer_lock(os.fspath(db_path)) if exclusive else None
        try:
            self._ledger = Ledger(
                db_path,
                instance,
                synchronous=synchronous,
                recover=recover,
                background_checkpoint=background_checkpoint,
                start=start,
            )
        except BaseException:
            self._release_lock()
            raise
        try:
            t0 = time.perf_counter()
            with gc_paused():  # decoding and rebuilding make no cycles: skip the GC passes
                self._open(use_snapshots=use_snapshots, full_check=full_check, recover=recover)
            self.recovery_seconds = time.perf_counter() - t0
        except BaseException:
            self._ledger._close_quietly()
            self._release_lock()
            raise
        log.info(
            "ledger %s: recovered %d rows (%d replayed) in %.3f s",
            self._ledger.path,
            self._seq + 1,
            self.replayed_rows,
            self.recovery_seconds,
        )

    # ------------------------------------------------------------ recovery

    def _open(self, *, use_snapshots: bool, full_check: bool, recover: bool) -> None:
        led = self._ledger
        problems = list(led.problems)
        if not problems:
            try:
                if full_check:
                    led.quick_check()
                self._recover(use_snapshots=use_snapshots)
                if led.head_file_stale:
                    led.head_file.write(self._seq, self._hash)
                return
            except LedgerCorruptError as e:
                if not recover:
                    raise
                problems.append(str(e))
        self._salvage(problems)

    def _salvage(self, problems: list[str]) -> None:
        """``recover=True``: keep the longest valid prefix of the chain and say so."""
        led = self._ledger
        try:
            file_head: int | None = led.head()[0]
        except (sqlite3.DatabaseError, KeyError, TypeError, ValueError):
            file_head = None
        recorded = None if led.recorded is None else led.recorded[0]
        try:
            self._recover(use_snapshots=False, check_head=False)
            last = self._seq
            damaged = False
        except (LedgerCorruptError, sqlite3.DatabaseError):
            last = self._seq  # the last row whose replay completed
            damaged = True
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
            led.head_file.write(self._seq, self._hash)
        self._recover(use_snapshots=False)
        dropped = None if top is None else max(0, top - last)
        self.recovery = RecoveryReport(
            tuple(problems), self._seq, file_head, recorded, dropped, backup
        )
        log.warning("ledger %s: %s", led.path, self.recovery.summary())

    def _fresh_allocator(self) -> Allocator:
        """The state before the first row: the instance's bookings, or the start plan."""
        if self._start_plan is None:
            return Allocator(self._start, compiled=self._compiled)
        return Allocator.from_result(self._start, self._start_plan, compiled=self._compiled)

    def _recover(
        self, *, use_snapshots: bool = True, until: int | None = None, check_head: bool = True
    ) -> None:
        """Rebuild the state: every row hash checked, the rows after the snapshot replayed."""
        led = self._ledger
        initial, self._initial = self._initial, None
        self._alloc = initial if initial is not None else self._fresh_allocator()
        self.last_rebalance: RebalanceOutcome | None = None
        self._secrets = {}
        self._owners = {}
        self._pending = []
        self._seq, self._hash = led.base_seq - 1, led.base_prev
        self._committed = (self._seq, self._hash)
        self.replayed_rows = 0
        snap = led.latest_snapshot() if use_snapshots else None
        if snap is not None and "allocator" not in snap[2]:
            # An older snapshot layout: the rows alone rebuild the same state.
            log.warning(
                "%s: snapshot at row %d has an older layout; replaying every row",
                led.path,
                snap[0],
            )
            snap = None
        if snap is not None and snap[0] < led.base_seq:
            snap = None
        batch: list[Row] = []
        for row in led.rows(check_head=check_head, until=until):
            if snap is not None and row.seq <= snap[0]:
                # Before the snapshot: the chain is checked, the rows are not replayed.
                if row.seq == snap[0]:
                    if row.hash != snap[1]:
                        raise LedgerCorruptError(
                            f"{led.path}: snapshot at row {row.seq} does not match the rows"
                        )
                    self._load_snapshot(snap[2])
                self._seq, self._hash = row.seq, row.hash
                continue
            if row.kind in ("move", "drop", "place"):
                batch.append(row)
                continue
            if row.kind == "scan":
                self._replay_rebalance(batch, row)
                batch = []
            elif batch:
                raise LedgerCorruptError(f"row {row.seq}: a rebalance group is not closed")
            else:
                self._replay_row(row)
            self._seq, self._hash = row.seq, row.hash
            self.replayed_rows += 1
        if batch:
            raise LedgerCorruptError(f"row {batch[-1].seq}: a rebalance group is not closed")
        if snap is not None and self._seq < snap[0]:
            raise LedgerCorruptError(f"{led.path}: the rows end before the snapshot at {snap[0]}")
        self._committed = (self._seq, self._hash)
        self._since_snapshot = self.replayed_rows

    def _replay_row(self, row: Row) -> None:
        try:
            body = json.loads(row.body)
            if row.kind == "book":
                request = Request.model_validate(body["request"])
                children = [Child.model_validate(c) for c in body.get("children", ())]
                got: dict[str, Any] = _book_result(self._alloc.book(request, children))
                if row.secret:
                    self._note_secret(request, bytes.fromhex(row.secret))
            elif row.kind == "cancel":
                got = _cancel_result(self._alloc.cancel(body["request"]))
                self._secrets.pop(body["request"], None)
            elif row.kind == "base":
                if row.seq != self._ledger.base_seq:
                    raise LedgerCorruptError(f"row {row.seq}: a base row after the first row")
                self._load_snapshot(body)
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

    def _note_secret(self, request: Request, digest: bytes) -> None:
        self._secrets[request.id] = digest
        owners = self._owners
        for c in request.children:
            got = owners.get(c)
            if got is None:
                owners[c] = [digest]
            elif digest not in got:
                got.append(digest)

    def _snapshot_state(self) -> dict[str, Any]:
        # A cancel drops its request's secret: every secret held is a live request's.
        return {
            "seq": self._seq,
            "allocator": self._alloc.state(),
            "auth": {
                "secrets": {r: d.hex() for r, d in self._secrets.items()},
                "owners": {c: [d.hex() for d in ds] for c, ds in self._owners.items()},
            },
        }

    def _load_snapshot(self, state: Mapping[str, Any]) -> None:
        try:
            self._alloc = Allocator.restore(
                self._start, state["allocator"], compiled=self._compiled
            )
            auth = state.get("auth", {})
            self._secrets = {r: bytes.fromhex(d) for r, d in auth.get("secrets", {}).items()}
            self._owners = {
                c: [bytes.fromhex(d) for d in ds] for c, ds in auth.get("owners", {}).items()
            }
        except (InvalidStateError, KeyError, TypeError, ValueError, AttributeError) as e:
            raise LedgerCorruptError(
                f"{self._ledger.path}: bad snapshot ({type(e).__name__})"
            ) from e

    # ------------------------------------------------------------ the lock held

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise LedgerUnavailableError(
                f"the allocator is unusable after a failed commit ({self._broken}); restart"
            )

    def _append_row(self, kind: str, body: str, result: str, secret: str = "") -> tuple[int, bytes]:
        seq = self._seq + 1
        h = _row_hash(self._hash, seq, kind, body, result, secret)
        self._pending.append((seq, kind, body, result, h, secret))
        self._seq, self._hash = seq, h
        self._since_snapshot += 1
        return seq, h

    def _commit_pending(self) -> None:
        """Commit the pending rows (one transaction, one fsync), then the head file."""
        if not self._pending:
            return
        led = self._ledger
        prev = self._committed
        head = (self._seq, self._hash)
        led.append(self._pending, head, prev)
        self._pending = []
        try:
            led.head_file.write(*head)
        except BaseException as err:
            # Committed but not recorded apart: take the rows back out, so that the
            # caller's "not committed, nothing changed" is true.
            try:
                led.truncate_to(prev)
                led.head_file.write(*prev)
            except BaseException as e:
                self._broken = (
                    f"head file not written ({_describe(err)}) and the commit could not be "
                    f"taken back ({_describe(e)})"
                )
                log.critical("ledger %s: %s", led.path, self._broken)
                raise LedgerUnavailableError(self._broken) from err
            raise
        self._committed = head

    def _abort(self, err: BaseException) -> None:
        """After any failure with operations applied: roll back, rebuild, raise."""
        led = self._ledger
        self._pending = []
        led.rollback()
        if isinstance(err, LedgerUnavailableError):
            raise err
        log.error(
            "ledger %s: not committed (%s); rebuilding from the ledger", led.path, _describe(err)
        )
        try:
            self._recover()
        except Exception as e:  # the process must restart; say why
            self._broken = f"{_describe(err)}; recovery failed: {_describe(e)}"
            log.critical("ledger %s: recovery failed: %s", led.path, _describe(e))
            raise LedgerUnavailableError(self._broken) from err
        if not isinstance(err, Exception):
            raise err  # KeyboardInterrupt and the like, once the state is whole again
        raise LedgerWriteError(f"not committed, nothing changed: {_describe(err)}") from err

    def _maybe_snapshot(self) -> None:
        if (
            self._snapshot_every
            and self._txn_depth == 0
            and self._since_snapshot >= self._snapshot_every
        ):
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        try:
            self._ledger.save_snapshot(self._seq, self._hash, self._snapshot_state())
        except (sqlite3.Error, ValueError) as e:
            # A snapshot is only a shortcut: the rows alone rebuild the state.
            log.warning("ledger %s: snapshot failed: %s", self._ledger.path, _describe(e))
            return
        self._since_snapshot = 0

    def _prepare(self, op: Op) -> _Prepared:
        """Serialise and check an operation without the lock (nothing changes).

        Raises
        ------
        UnstorableEventError
            The event cannot be written.
        """
        if isinstance(op, BookOp):
            body: dict[str, Any] = {"request": _dump(op.request)}
            if op.children:
                body["children"] = [_dump(c) for c in op.children]
        else:
            body = {"request": op.request}
        try:
            text = canonical_json(body)
        except ValueError:  # NaN or the like, from a model built without validation
            raise UnstorableEventError("the event cannot be written as JSON") from None
        secret = secret_digest(op.secret) if isinstance(op, BookOp) and op.secret else None
        proof = secret_digest(op.proof) if op.proof else None
        return _Prepared(_storable(text), secret.hex() if secret else "", secret, proof)

    def _apply(
        self, op: Op, prep: _Prepared
    ) -> DurableDecision | DurableCancellation | BookingError:
        """Apply one operation and append its row; a refusal is returned, having changed nothing."""
        alloc = self._alloc
        if isinstance(op, BookOp):
            request = op.request
            if not op.privileged:
                refusal = self._ownership_refusal(request, prep.proof)
                if refusal is not None:
                    return refusal
            try:
                d = alloc.book(request, op.children)
            except BookingError as e:
                return e
            # Applied: from here any exception is handled by _abort (rebuild).
            seq, h = self._append_row(
                "book", prep.body, canonical_json(_book_result(d)), prep.secret_hex
            )
            if prep.secret is not None:
                self._note_secret(request, prep.secret)
            return DurableDecision(d.request, d.session, seq, h.hex(), d.reason)
        rid = op.request
        if not op.privileged:
            stored = self._secrets.get(rid)
            if stored is None or prep.proof is None or not hmac.compare_digest(stored, prep.proof):
                try:
                    st = alloc.status(rid)
                except BookingError as e:
                    return e
                if st.cancelled:
                    # GET /bookings tells any token as much: no secret is needed to learn it.
                    return AlreadyCancelledError(f"request {rid} is already cancelled")
                if st.session is None and not st.waitlisted:
                    return UnknownRequestError(f"unknown request {rid}")
                return NotPermittedError(
                    "cancelling this booking needs its secret (X-Booking-Secret) or an operator"
                )
        try:
            c = alloc.cancel(rid)
        except BookingError as e:
            return e
        seq, h = self._append_row("cancel", prep.body, canonical_json(_cancel_result(c)))
        self._secrets.pop(rid, None)
        return DurableCancellation(c.request, c.session, c.promoted, seq, h.hex())

    def _ownership_refusal(self, request: Request, proof: bytes | None) -> NotPermittedError | None:
        owners = self._owners
        for c in request.children:
            got = owners.get(c)
            if not got:
                continue
            ok = False
            if proof is not None:
                for d in got:
                    ok |= hmac.compare_digest(d, proof)
            if not ok:
                return NotPermittedError(
                    f"child {c!r} was registered by another booking: present that booking's "
                    "secret (X-Booking-Secret) or ask an operator"
                )
        return None

    # ------------------------------------------------------------ public operations

    def execute(
        self, ops: Sequence[Op]
    ) -> list[DurableDecision | DurableCancellation | BookingError]:
        """Apply operations in order and commit them together (one transaction, one fsync).

        Parameters
        ----------
        ops
            Book and cancel operations.

        Returns
        -------
        list
            Per operation, its outcome, or the :class:`BookingError` that refused
            it (a refusal changes nothing and does not affect the others).
            Outside :meth:`transaction`, every outcome returned is committed.

        Raises
        ------
        LedgerWriteError
            The commit failed; none of the operations happened.
        LedgerUnavailableError
            A previous failure left the allocator unusable, or this one did.
        """
        prepared: list[_Prepared | BookingError] = []
        for op in ops:
            try:
                prepared.append(self._prepare(op))
            except BookingError as e:
                prepared.append(e)
        out: list[DurableDecision | DurableCancellation | BookingError] = []
        with self._lock:
            self._check_usable()
            try:
                for op, prep in zip(ops, prepared, strict=True):
                    out.append(prep if isinstance(prep, BookingError) else self._apply(op, prep))
                if self._txn_depth == 0:
                    self._commit_pending()
            except BaseException as e:
                self._abort(e)
            self._maybe_snapshot()
        return out

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Group several operations into one commit (one fsync).

        The decisions returned inside the block are not durable until it exits
        without an exception: a caller must not confirm them before that. If
        the commit fails (or the block raises), every operation of the block is
        undone by rebuilding from the ledger.

        Raises
        ------
        LedgerWriteError
            The commit failed; none of the block's operations happened.
        """
        with self._lock:
            self._check_usable()
            self._txn_depth += 1
            ok = False
            try:
                yield
                ok = True
            finally:
                self._txn_depth -= 1
                if self._txn_depth == 0:
                    if ok:
                        try:
                            self._commit_pending()
                        except BaseException as e:
                            self._abort(e)
                        self._maybe_snapshot()
                    elif self._pending and self._broken is None:
                        # The block's own exception propagates; its operations are undone.
                        self._pending = []
                        try:
                            self._recover()
                        except Exception as e:
                            self._broken = f"transaction undone; recovery failed: {_describe(e)}"
                            raise LedgerUnavailableError(self._broken) from e

    def book(
        self,
        request: Request,
        children: Sequence[Child] = (),
        *,
        secret: str | None = None,
        proof: str | None = None,
        privileged: bool = True,
    ) -> DurableDecision:
        """Book a request (FORMAT §3) and commit it to the ledger.

        Parameters
        ----------
        request
            A validated request with an id never used before.
        children
            Children not known yet.
        secret
            A per-booking secret to record (see :class:`BookOp`).
        proof, privileged
            See :class:`BookOp`.

        Returns
        -------
        DurableDecision
            Its ``sequence`` is the ledger row's seq, ``hash`` that row's hash.

        Raises
        ------
        BookingError
            Refused (used id, unknown child or session, child conflict,
            :class:`UnstorableEventError`, :class:`NotPermittedError`); nothing
            changed and nothing was logged.
        LedgerWriteError
            The commit failed; nothing changed.
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        (out,) = self.execute([BookOp(request, tuple(children), secret, proof, privileged)])
        if isinstance(out, BookingError):
            raise out
        assert isinstance(out, DurableDecision)
        return out

    def cancel(
        self, request_id: str, *, proof: str | None = None, privileged: bool = True
    ) -> DurableCancellation:
        """Cancel a request (FORMAT §3) and commit it to the ledger.

        Parameters
        ----------
        request_id
            A request holding a place or waitlisted.
        proof, privileged
            See :class:`CancelOp`.

        Returns
        -------
        DurableCancellation
            With the promotions; ``sequence`` is the ledger row's seq.

        Raises
        ------
        UnknownRequestError
            Nothing to cancel; nothing changed and nothing was logged.
        NotPermittedError
            Not privileged and without the booking's secret.
        LedgerWriteError
            The commit failed; nothing changed.
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        (out,) = self.execute([CancelOp(request_id, proof, privileged)])
        if isinstance(out, BookingError):
            raise out
        assert isinstance(out, DurableCancellation)
        return out

    def status(self, request_id: str) -> RequestStatus:
        """Where a request stands (held, waitlisted, cancelled, or holding nothing).

        Raises
        ------
        UnknownRequestError
            The id was never used.
        """
        with self._lock:
            return self._alloc.status(request_id)

    def held(self) -> dict[str, str]:
        """Request id -> session id of every place held."""
        with self._lock:  # recovery may replace the Allocator
            return self._alloc.held()

    def waitlist(self) -> list[str]:
        """The waitlisted request ids, head first."""
        with self._lock:
            return self._alloc.waitlist()

    @property
    def session_ids(self) -> list[str]:
        """The ids of the sessions, in instance order."""
        return [s.id for s in self._start.sessions]

    @property
    def failure(self) -> str | None:
        """Why the allocator refuses operations (a commit it could not recover from), or None."""
        return self._broken

    @property
    def head(self) -> tuple[int, str]:
        """The last committed ledger (seq, hash hex); seq -1 for an empty ledger (no lock taken)."""
        seq, h = self._committed
        return seq, h.hex()

    def session_occupancy(self, session_id: str) -> dict[str, Any]:
        """Places taken and caregivers needed in one session, by age group.

        Returns
        -------
        dict
            :meth:`slotalloc.online.SessionOccupancy.to_json`: ``session``,
            ``capacity``, ``taken``, ``caregivers_available``,
            ``caregivers_needed`` (an exact fraction as a float when pooled),
            ``staffing``, ``requests`` (the holders, in request order) and
            ``groups``: per age group ``group``, ``taken``, ``cap``, ``ratio``
            and ``caregivers_needed``.

        Raises
        ------
        UnknownSessionError
            No such session.
        """
        with self._lock:
            occ = self._alloc.occupancy(session_id)
        return occ.to_json()

    def session_occupancies(self, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """:meth:`session_occupancy` of several sessions (all when None), the state read once.

        Raises
        ------
        UnknownSessionError
            A session id that does not exist.
        """
        with self._lock:
            occ = self._alloc.occupancies(ids)
        return [o.to_json() for o in occ]

    def requests_of(
        self, *, child: str | None = None, household: str | None = None
    ) -> list[RequestStatus]:
        """The live requests of a child or of a household (:meth:`Allocator.requests_of`).

        Raises
        ------
        ValueError
            Unless exactly one of ``child`` and ``household`` is given.
        """
        with self._lock:
            return self._alloc.requests_of(child=child, household=household)

    def export(self) -> tuple[Instance, Solution]:
        """The FORMAT §3 state export, requests in the order they were first accepted.

        Only the children some exported request names are included (a
        cancelled request's children leave it). The state is copied under the
        lock (a list copy, no models); the models are built outside it, so
        bookings go on meanwhile. The same whether the state was built live,
        from a snapshot or by a full replay.

        Raises
        ------
        pydantic.ValidationError
            Never for a state this engine built (it would mean a bug).
        """
        with self._lock:
            alloc = self._alloc
            copy = alloc._export_copy()
        return alloc._export_from(copy, only_used_children=True)

    # ------------------------------------------------------------ erasure

    def compact(self) -> CompactionReport:
        """Rewrite the ledger as one ``base`` row holding the current state, minus erased data.

        What leaves the file: every row so far (book bodies with children's
        birth dates and households, cancels, rebalances), every snapshot, the
        cancelled requests' bodies and the children no live request names. What
        stays: the live requests and the children they name, the ids ever used
        (so none is reused), the per-booking secret digests of live requests,
        and the starting instance (``meta``). The base row's hash chains from
        the old head, and before the file is replaced the redacted state is
        restored and checked to hold exactly the same places and waitlist.

        Returns
        -------
        CompactionReport
            What was erased, and the old and new heads.

        Raises
        ------
        LedgerWriteError
            The new file could not be written; nothing changed.
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        RuntimeError
            Called inside :meth:`transaction`.
        """
        with self._lock:
            self._check_usable()
            if self._txn_depth or self._pending:
                raise RuntimeError("compact() inside a transaction")
            led = self._ledger
            state = self._snapshot_state()
            alloc_state = state["allocator"]
            used: set[str] = set()
            for rid, _status, _sid, src in alloc_state["requests"]:
                used.update(src["children"] if src is not None else self._start_kids[rid])
            kept = [c for c in alloc_state["children"] if c["id"] in used]
            erased_children = len(alloc_state["children"]) - len(kept)
            alloc_state["children"] = kept
            owners = state["auth"]["owners"]
            state["auth"]["owners"] = {c: v for c, v in owners.items() if c in used}
            erased_requests = len(alloc_state["used"])
            state.pop("seq")
            try:
                probe = Allocator.restore(self._start, alloc_state, compiled=self._compiled)
            except InvalidStateError as e:
                raise LedgerWriteError(f"compaction refused: {e}") from e
            if probe.held() != self._alloc.held() or probe.waitlist() != self._alloc.waitlist():
                raise LedgerWriteError("compaction refused: the redacted state differs")
            body = _storable(canonical_json(state))
            result = canonical_json(
                {
                    "compacted_from": {"first": led.base_seq, "head": self._seq},
                    "erased_children": erased_children,
                }
            )
            old = (self._seq, self._hash)
            old_first = led.base_seq
            seq = self._seq + 1
            h = _row_hash(self._hash, seq, "base", body, result)
            try:
                led.rewrite(
                    [Row(seq, "base", body, result, h)],
                    base=(seq, self._hash),
                    head=(seq, h),
                    prev=old,
                )
            except BaseException as e:
                self._abort(e)
            report = CompactionReport(
                old_first=old_first,
                old_head=old[0],
                old_head_hash=old[1].hex(),
                base_seq=seq,
                base_hash=h.hex(),
                erased_children=erased_children,
                erased_requests=erased_requests,
            )
            self._recover()
            log.info(
                "ledger %s: compacted rows up to %d into base row %d; %d children erased",
                led.path,
                old[0],
                seq,
                erased_children,
            )
            return report

    # ------------------------------------------------------------ rebalancing

    def _solver_instance(
        self, state: Instance, sol: Solution, waiting: set[str], allow_drops: bool
    ) -> Instance:
        """The live requests (held and waitlisted) with the places held as unlocked bookings."""
        inst = self._start
        held = {a.request for a in sol.assignments}
        requests = [r for r in state.requests if r.id in held or r.id in waiting]
        bookings = [Booking(request=a.request, session=a.session) for a in sol.assignments]
        objective = inst.objective
        if not allow_drops:
            # Make a drop cost more than any placement or move can gain, so an
            # optimiser never prefers one; the result is still checked below.
            obj = objective
            kids = sum(len(r.children) for r in requests)
            gain = kids * (obj.serve + 9 * obj.priority + 10 * obj.rank) + len(requests) * obj.move
            objective = Objective(
                serve=obj.serve,
                priority=obj.priority,
                rank=obj.rank,
                move=obj.move,
                drop=max(obj.drop, gain + 1),
            )
        return Instance.model_validate(
            {
                "format": inst.format,
                "name": inst.name,
                "policy": inst.policy,
                "objective": objective,
                "sites": inst.sites,
                "sessions": inst.sessions,
                "children": state.children,
                "requests": tuple(requests),
                "bookings": tuple(bookings),
            }
        )

    def rebalance(
        self,
        *,
        allow_drops: bool = False,
        method: str = "fcfs",
        time_limit: float | None = None,
        seed: int = 0,
    ) -> RebalanceOutcome:
        """Run the batch optimiser on the current state and apply its result.

        The solver runs outside the lock on a copy of the state; its result is
        applied only if no operation was committed meanwhile. The changes are
        logged as explicit ``move``/``drop``/``place`` rows plus a closing
        ``scan`` row, in one transaction; then one full waitlist scan runs
        (dropped requests join the end of the waitlist before it). Only one
        rebalance runs at a time.

        Parameters
        ----------
        allow_drops
            Unless true, a result that drops a held place is refused (and the
            solver is steered away from drops by a prohibitive drop weight).
        method, time_limit, seed
            Passed to :func:`slotalloc.solve`.

        Returns
        -------
        RebalanceOutcome
            What changed.

        Raises
        ------
        RebalanceBusyError
            Another rebalance is running.
        RebalanceRejectedError
            Drops without ``allow_drops``, an infeasible or invalid result, or
            the state changed while solving; nothing changed.
        ValueError
            An unknown method.
        LedgerWriteError
            The commit failed; nothing changed.
        """
        if not self._rebalancing.acquire(blocking=False):
            raise RebalanceBusyError("a rebalance is already running; retry when it is done")
        try:
            return self._rebalance(allow_drops, method, time_limit, seed)
        finally:
            self._rebalancing.release()

    def _rebalance(
        self, allow_drops: bool, method: str, time_limit: float | None, seed: int
    ) -> RebalanceOutcome:
        from slotalloc.solve import solve  # the batch path is not needed by plain bookings

        with self._lock:
            self._check_usable()
            seq0 = self._committed[0]
            alloc = self._alloc
            copy = alloc._export_copy()
            waiting = set(alloc.waitlist())
        state, sol = alloc._export_from(copy)
        problem = self._solver_instance(state, sol, waiting, allow_drops)
        before = {b.request: b.session for b in problem.bookings}
        res = solve(problem, method=method, time_limit=time_limit, seed=seed, deterministic=True)  # type: ignore[arg-type]
        if res.status.value == "infeasible":
            raise RebalanceRejectedError("the solver found the current state infeasible")
        after = {a.request: a.session for a in res.assignments}
        moved, dropped, placed = [], [], []
        kept = 0
        for r in problem.requests:
            b, a = before.get(r.id), after.get(r.id)
            if b is not None and a is not None:
                if a == b:
                    kept += 1
                else:
                    moved.append((r.id, b, a))
            elif b is not None:
                dropped.append((r.id, b))
            elif a is not None:
                placed.append((r.id, a))
        if dropped and not allow_drops:
            raise RebalanceRejectedError(
                f"the result drops {len(dropped)} held place(s) (first: {dropped[0][0]}); "
                "pass allow_drops to accept drops"
            )
        stats = dict(res.stats)
        with self._lock:
            self._check_usable()
            if self._committed[0] != seq0 or self._pending:
                raise RebalanceRejectedError("the state changed while solving; retry")
            if not (moved or dropped or placed):
                out = RebalanceOutcome((), (), (), (), kept, None, stats)
                self.last_rebalance = out
                return out
            rows = [("move", {"request": r, "from": b, "to": a}) for r, b, a in moved]
            rows += [("drop", {"request": r, "from": b}) for r, b in dropped]
            rows += [("place", {"request": r, "to": a}) for r, a in placed]
            texts = [(kind, _storable(canonical_json(body))) for kind, body in rows]
            try:
                promoted = self._apply_rebalance(rows)
            except (InvalidStateError, BookingError) as e:
                raise RebalanceRejectedError(f"the solver's result is invalid: {e}") from e
            try:
                for kind, text in texts:
                    self._append_row(kind, text, "{}")
                scan = {
                    "promoted": [{"request": p.request, "session": p.session} for p in promoted]
                }
                seq, _h = self._append_row("scan", "{}", canonical_json(scan))
                if self._txn_depth == 0:
                    self._commit_pending()
            except BaseException as e:
                self._abort(e)
            self._maybe_snapshot()
        log.info(
            "rebalance: %d moved, %d dropped, %d placed, %d promoted; ledger row %d",
            len(moved),
            len(dropped),
            len(placed),
            len(promoted),
            seq,
        )
        out = RebalanceOutcome(
            tuple(moved), tuple(dropped), tuple(placed), tuple(promoted), kept, seq, stats
        )
        self.last_rebalance = out
        return out

    def _apply_rebalance(self, rows: Sequence[tuple[str, Mapping[str, Any]]]) -> list[Placement]:
        """Apply explicit move/drop/place entries at once, then one full waitlist scan.

        Raises
        ------
        InvalidStateError
            An entry does not fit the state (not holding its ``from``, not
            waitlisted) or the places it leaves break a rule; nothing changed.
        BookingError
            An unknown request or session; nothing changed.
        """
        moves: list[tuple[str, str]] = []
        drops: list[str] = []
        places: list[tuple[str, str]] = []
        alloc = self._alloc
        for kind, body in rows:
            rid = body["request"]
            if kind in ("move", "drop"):
                # The row says where the place was: check it, so a replay cannot drift.
                if alloc.status(rid).session != body["from"]:
                    raise InvalidStateError(f"{kind} {rid}: it does not hold {body['from']!r}")
                if kind == "move":
                    moves.append((rid, body["to"]))
                else:
                    drops.append(rid)
            elif kind == "place":
                places.append((rid, body["to"]))
            else:
                raise InvalidStateError(f"unknown rebalance entry {kind!r}")
        return alloc.apply(moves, drops, places)

    def _replay_rebalance(self, batch: Sequence[Row], scan: Row) -> None:
        try:
            rows = [(r.kind, json.loads(r.body)) for r in batch]
            promoted = self._apply_rebalance(rows)
        except (InvalidStateError, BookingError, KeyError, ValueError) as e:
            raise LedgerCorruptError(
                f"row {scan.seq}: stored rebalance refused on replay ({type(e).__name__})"
            ) from e
        got = {"promoted": [{"request": p.request, "session": p.session} for p in promoted]}
        if canonical_json(got) != scan.result:
            raise LedgerCorruptError(f"row {scan.seq}: replayed scan differs from the ledger")
        # The last rebalance as the rows record it (the solver's stats are not stored).
        moved = tuple((b["request"], b["from"], b["to"]) for k, b in rows if k == "move")
        dropped = tuple((b["request"], b["from"]) for k, b in rows if k == "drop")
        placed = tuple((b["request"], b["to"]) for k, b in rows if k == "place")
        changed = {b["request"] for _k, b in rows} | {p.request for p in promoted}
        kept = sum(1 for rid in self._alloc.held() if rid not in changed)
        self.last_rebalance = RebalanceOutcome(
            moved, dropped, placed, tuple(promoted), kept, scan.seq
        )

    # ------------------------------------------------------------ lifecycle

    def snapshot(self) -> int:
        """Store a snapshot of the current state now; returns its seq.

        Raises
        ------
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        with self._lock:
            self._check_usable()
            if not self._pending:
                self._take_snapshot()
            return self._committed[0]

    def close(self, *, snapshot: bool = True) -> None:
        """Snapshot (when rows were added since the last one) and close the file."""
        with self._lock:
            if snapshot and self._broken is None and self._since_snapshot > 0 and not self._pending:
                self._take_snapshot()
            try:
                self._ledger.close()
            finally:
                self._release_lock()

    def _release_lock(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None

    def __enter__(self) -> DurableAllocator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def compact(instance: Instance, db_path: str | os.PathLike[str]) -> CompactionReport:
    """Compact a ledger offline (the service stopped): see :meth:`DurableAllocator.compact`.

    Parameters
    ----------
    instance
        The starting instance of the ledger.
    db_path
        The ledger file.

    Returns
    -------
    CompactionReport
        What was erased.

    Raises
    ------
    LedgerError
        The ledger is damaged, belongs to another instance or is open in a
        running service, or the rewrite failed.
    """
    with DurableAllocator(instance, db_path, snapshot_every=0, exclusive=True) as da:
        return da.compact()


# ---------------------------------------------------------------- group commit


_STOP = object()


class GroupCommitter:
    """The single writer thread: operations that arrive together share one commit.

    Callers :meth:`submit` operations from any thread and wait on the returned
    future, which is resolved only after the operation's commit (or with the
    error that refused it). The thread takes the first operation waiting, then
    every other one queued, waiting up to ``window`` seconds for more when the
    previous batch was not a lone operation (so an idle service adds no delay),
    and hands the batch to :meth:`DurableAllocator.execute`: one transaction,
    one fsync of the WAL and one of the head file for the whole batch.

    Parameters
    ----------
    allocator
        The durable allocator (its lock still serialises everything else).
    window
        The longest wait for more operations, in seconds.
    max_batch
        The most operations in one commit.
    """

    def __init__(
        self, allocator: DurableAllocator, *, window: float = 0.002, max_batch: int = 256
    ) -> None:
        self.allocator = allocator
        self.window = window
        self.max_batch = max_batch
        self._q: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ledger-writer", daemon=True)
        self._thread.start()
        #: Batches committed and operations in them (for tests and benchmarks).
        self.batches = 0
        self.operations = 0

    def submit(self, op: Op) -> concurrent.futures.Future[Any]:
        """Queue one operation; the future gives its outcome after its commit.

        Raises
        ------
        RuntimeError
            The committer is closed.
        """
        if self._closed:
            raise RuntimeError("the group committer is closed")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._q.put((op, fut, None))
        return fut

    def submit_async(self, op: Op) -> asyncio.Future[Any]:
        """Queue one operation from a running event loop; await the outcome after its commit.

        The outcomes of one batch reach each loop in a single cross-thread call
        (one wake-up per batch rather than one per operation).

        Raises
        ------
        RuntimeError
            The committer is closed, or no event loop is running.
        """
        if self._closed:
            raise RuntimeError("the group committer is closed")
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[Any] = loop.create_future()
        self._q.put((op, fut, loop))
        return fut

    def close(self, timeout: float = 30.0) -> None:
        """Finish the queued operations and stop the thread."""
        if not self._closed:
            self._closed = True
            self._q.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        q = self._q
        lone = True
        while True:
            item = q.get()
            if item is _STOP:
                return
            batch = [item]
            stop = False
            deadline = None
            while len(batch) < self.max_batch:
                try:
                    item = q.get_nowait()
                except queue.Empty:
                    if lone or self.window <= 0:
                        break
                    if deadline is None:
                        deadline = time.monotonic() + self.window
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    try:
                        item = q.get(timeout=left)
                    except queue.Empty:
                        break
                if item is _STOP:
                    stop = True
                    break
                batch.append(item)
            lone = len(batch) == 1
            self._commit(batch)
            if stop:
                return

    def _commit(self, batch: list[tuple[Op, Any, asyncio.AbstractEventLoop | None]]) -> None:
        # A concurrent future cancelled before it ran is skipped (its op never happens).
        live = [
            (op, fut, loop)
            for op, fut, loop in batch
            if loop is not None or fut.set_running_or_notify_cancel()
        ]
        if not live:
            return
        failure: BaseException | None = None
        try:
            outs: list[Any] = list(self.allocator.execute([op for op, _f, _l in live]))
        except BaseException as e:  # the whole batch failed: nothing of it happened
            failure = e
            outs = [e] * len(live)
        else:
            self.batches += 1
            self.operations += len(live)
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[Any, Any]]] = {}
        for (_op, fut, loop), out in zip(live, outs, strict=True):
            if loop is None:
                if isinstance(out, BaseException):
                    fut.set_exception(out)
                else:
                    fut.set_result(out)
            else:
                by_loop.setdefault(loop, []).append((fut, out))
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody awaits
                loop.call_soon_threadsafe(_resolve_all, items)
        if failure is not None and not isinstance(failure, Exception):
            raise failure


def _resolve_all(items: list[tuple[asyncio.Future[Any], Any]]) -> None:
    """In the event loop: give each awaiting handler its outcome (one call per batch)."""
    for fut, out in items:
        if fut.cancelled():
            continue
        if isinstance(out, BaseException):
            fut.set_exception(out)
        else:
            fut.set_result(out)
