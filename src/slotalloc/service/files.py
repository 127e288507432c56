"""The files beside the SQLite ledger: its head file, its lock, and how they are made durable.

:class:`HeadFile` records the last committed (seq, hash) apart from the
database and its WAL, so that losing acknowledged rows (a deleted WAL, an old
copy) is detected on open. ``DB.lock`` keeps a second writer out.
:class:`Checkpointer` moves WAL checkpoints off the commit path.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import sqlite3
import struct
import threading
from typing import Any

from slotalloc.service.errors import LedgerCorruptError, LedgerError, describe

__all__ = [
    "Checkpointer",
    "HeadFile",
    "acquire_writer_lock",
    "create_private",
    "fsync_dir",
]

# One logger for the ledger, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.ledger")


def fsync_dir(path: str) -> None:
    """Make a file's creation or rename durable: fsync its directory (best effort)."""
    with contextlib.suppress(OSError):
        fd = os.open(os.path.dirname(os.path.abspath(path)) or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def acquire_writer_lock(db: str) -> Any:
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
    create_private(path)
    f = open(path, "rb")  # noqa: SIM115 (held open for the allocator's lifetime)
    try:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise LedgerError(
            f"{db}: the ledger is open in another process (or allocator); stop it first"
        ) from None
    return f


def create_private(path: str) -> None:
    """Create an empty file readable by its owner only (the ledger holds children's data)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))


class Checkpointer:
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
                    log.warning("ledger %s: background checkpoint: %s", self.path, describe(e))
        finally:
            if db is not None:
                db.close()

    def stop(self) -> None:
        """Stop the thread (waits for a checkpoint under way)."""
        self._stop.set()
        self._thread.join(30)


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
                fsync_dir(self.path)
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
