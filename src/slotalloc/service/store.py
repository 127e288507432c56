"""The ledger file: SQLite in WAL mode, one row per accepted event, snapshots, and its head file.

:class:`Ledger` reads and writes the file; it knows nothing of bookings. The
rows are chained by :func:`slotalloc.service.chain.row_hash` and the last
committed one is recorded apart in the head file
(:class:`slotalloc.service.files.HeadFile`); see :mod:`slotalloc.service.ledger`
for what is checked on open and what each ``synchronous`` setting survives.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import shutil
import sqlite3
import zlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from slotalloc.models import Instance, Solution
from slotalloc.result import Result
from slotalloc.service.chain import Row, canonical_json, instance_digest, row_hash
from slotalloc.service.errors import LedgerCorruptError, LedgerMismatchError
from slotalloc.service.files import Checkpointer, HeadFile, create_private, fsync_dir

__all__ = ["SCHEMA_VERSION", "Ledger", "Synchronous"]

# One logger for the ledger, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.ledger")

#: Version of the tables written in ``meta``; version 1 files (no ``secret``
#: column, no head file) are read and upgraded when adopted with ``recover``.
SCHEMA_VERSION = 2
_READABLE_VERSIONS = ("1", "2")

Synchronous = Literal["FULL", "NORMAL", "OFF"]


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
        SQLite's ``synchronous`` setting in WAL mode (see :mod:`slotalloc.service.ledger`);
        ``OFF`` also skips the head file's fsync.
    recover
        Record the problems found in :attr:`problems` instead of raising, for
        :class:`~slotalloc.service.durable.DurableAllocator` to salvage the valid part.
    background_checkpoint
        Checkpoint the WAL from a background thread instead of inside commits
        (see :class:`Checkpointer`).

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
        self._checkpointer: Checkpointer | None = None
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
            create_private(self.path)
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
                self._checkpointer = Checkpointer(self.path)
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
            self._create_meta(fresh)
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
        self._check_head_file(head, prev)
        if self.problems and not self._recover_mode:
            raise LedgerCorruptError(self._refusal())
        if version == "1":
            self._upgrade()

    def _create_meta(self, fresh: bool) -> None:
        """A new ledger: its ``meta`` rows, then a head file recording no row yet."""
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
            fsync_dir(self.path)

    def _check_head_file(self, head: tuple[int, bytes], prev: tuple[int, bytes]) -> None:
        """Compare the file's head (and the one before it) with the head file's record."""
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
                h = row_hash(prev, seq, kind, body, result, secret)
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
                create_private(dest + suffix)
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
        create_private(tmp)
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
        fsync_dir(self.path)
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
