"""A durable, append-only ledger of online booking events, and an Allocator on top of it.

:class:`Ledger` is the file: SQLite in WAL mode, one row per accepted event,
each row chained to the one before it by a SHA-256 hash, with periodic
snapshots of the whole state. :class:`DurableAllocator` is what a booking
backend embeds: the online :class:`~slotalloc.online.Allocator` whose every
accepted operation is committed to the ledger before it returns.

Durability
----------
``PRAGMA synchronous=FULL`` by default: in WAL mode SQLite then fsyncs the WAL
at every commit, so a reply given after ``commit()`` returned survives a power
loss, not only a process crash. ``NORMAL`` (fsync only at checkpoints) would
survive a process crash (SIGKILL) but could lose the last commits on power loss,
i.e. lose bookings the family was told are confirmed; the cost of FULL is one
fsync per operation, which :meth:`DurableAllocator.transaction` amortises when
a caller can group operations (bulk imports, a group-committing front end).

Ordering and atomicity
----------------------
Every operation runs under one lock: validate and apply to the in-memory
Allocator, insert the row, commit, and only then return. The sequence number is
the row's ``seq``, taken in that critical section, so the ledger order is the
order in which operations were applied and replaying the ledger from the
starting instance reproduces the state and every decision exactly; replays
check each recomputed decision against the one stored.

Apply-then-log and a failed commit
----------------------------------
The Allocator has no undo, and its checks (duplicate id, unknown child or
session) are only decided by applying. So an event is applied first, then
logged. If the insert or the commit fails, the SQLite transaction is rolled
back and the in-memory state is rebuilt from the ledger (snapshot plus tail),
which does not hold the failed event: the state is exactly the committed one
again and :class:`LedgerWriteError` is raised (nothing was confirmed). If even
that rebuild fails the allocator refuses every further operation
(:class:`LedgerUnavailableError`) and the process should restart, which
recovers from the ledger in the same way. Rebuilding instead of undoing keeps
one recovery path for a crash and for a failed commit.

Snapshots and rebalances
------------------------
A snapshot is :meth:`Allocator.state() <slotalloc.online.Allocator.state>`
(plain JSON: requests with status and source, declared children, waitlist
order, used ids), zlib-compressed; recovery hands it to
:meth:`Allocator.restore <slotalloc.online.Allocator.restore>`, which checks
the places and the waitlist invariant without re-validating the sources. A
rebalance is :meth:`Allocator.apply <slotalloc.online.Allocator.apply>`: all
of its moves, drops and placements or none, then one full waitlist scan. So
the Allocator is the only index of the state; this module adds the file.

Refused operations are not logged
---------------------------------
A :class:`~slotalloc.exceptions.BookingError` changes nothing, so the state and
every accepted decision replay exactly without it; logging refusals would cost
an fsync per bad request (a cheap way to slow the service down) and the
refusal is returned to the caller synchronously anyway.

Integrity
---------
Row ``n`` stores ``hash_n = sha256(hash_{n-1} || seq, kind, body, result)``,
the chain starting from a hash of the starting instance, so a ledger opened
with another instance is refused; the ``meta`` table holds the schema version
and the head (last seq and hash), updated in the same transaction as the rows.
On open, the snapshot's checksum, the chain from the snapshot to the head, the
absence of gaps and the head itself are checked (the full chain on request):
an edited, missing or truncated tail is reported as
:class:`LedgerCorruptError`, never silently accepted. What cannot be seen from
inside the file is the loss of whole trailing transactions together with their
head update (a WAL file deleted after a commit); the ``seq`` and ``hash``
returned with each decision are the external receipt that detects it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NoReturn

from slotalloc.compile import Compiled, compile_instance
from slotalloc.exceptions import BookingError, InvalidStateError, SlotallocError
from slotalloc.models import Booking, Child, Instance, Objective, Request, Solution
from slotalloc.online import Allocator, Cancellation, Decision, Placement, RequestStatus
from slotalloc.online.allocator import gc_paused

__all__ = [
    "SCHEMA_VERSION",
    "DurableAllocator",
    "Ledger",
    "LedgerCorruptError",
    "LedgerError",
    "LedgerMismatchError",
    "LedgerUnavailableError",
    "LedgerWriteError",
    "RebalanceOutcome",
    "RebalanceRejectedError",
    "RequestStatus",
]

log = logging.getLogger(__name__)

#: Version of the tables; written in ``meta`` and checked on open.
SCHEMA_VERSION = 1
_GENESIS_TAG = b"slotalloc.ledger/1\n"

Synchronous = Literal["FULL", "NORMAL", "OFF"]


class LedgerError(SlotallocError):
    """The ledger cannot be used as asked."""


class LedgerCorruptError(LedgerError):
    """The ledger file fails an integrity check (chain, gap, head, checksum, SQLite)."""


class LedgerMismatchError(LedgerError):
    """The ledger belongs to another starting instance or another schema version."""


class LedgerWriteError(LedgerError):
    """An operation could not be committed; it was not applied and nothing was confirmed."""


class LedgerUnavailableError(LedgerError):
    """A failed commit could not be recovered from; the process must restart."""


class RebalanceRejectedError(SlotallocError):
    """A rebalance result was refused (drops not allowed, state changed, invalid result)."""


def canonical_json(value: Any) -> str:
    """Compact JSON with sorted keys: the bytes that are hashed and stored."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def instance_digest(instance: Instance) -> bytes:
    """The hash that starts the chain: binds a ledger to its starting instance."""
    text = canonical_json(instance.model_dump(mode="json"))
    return hashlib.sha256(_GENESIS_TAG + text.encode()).digest()


def _row_hash(prev: bytes, seq: int, kind: str, body: str, result: str) -> bytes:
    h = hashlib.sha256(prev)
    h.update(f"{seq}\x1f{kind}\x1f{body}\x1f{result}".encode())
    return h.digest()


@dataclass(frozen=True)
class Row:
    """One ledger row: an accepted event and the decision it got."""

    seq: int
    kind: str
    body: str
    result: str
    hash: bytes


_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,
    body TEXT NOT NULL,
    result TEXT NOT NULL,
    hash BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS snapshots (
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    state BLOB NOT NULL,
    checksum BLOB NOT NULL
);
"""


class Ledger:
    """The append-only SQLite ledger file.

    Parameters
    ----------
    path
        The database file (created when absent).
    instance
        The starting instance; a new file records it, an existing file must
        have been created with an equal one.
    synchronous
        SQLite's ``synchronous`` setting in WAL mode (see the module notes).

    Raises
    ------
    LedgerMismatchError
        The file was created for another instance or with another schema version.
    LedgerCorruptError
        The file is not a readable SQLite database, or its head is inconsistent.
    """

    def __init__(
        self, path: str | os.PathLike[str], instance: Instance, *, synchronous: Synchronous = "FULL"
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "OFF"):
            raise ValueError(f"unknown synchronous setting {synchronous!r}")
        self.path = os.fspath(path)
        self.genesis = instance_digest(instance)
        try:
            # Autocommit mode: transactions are opened explicitly (BEGIN IMMEDIATE).
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous}")
            self._db.executescript(_SCHEMA)
            self._init_meta(instance)
        except sqlite3.DatabaseError as e:
            self._close_quietly()
            raise LedgerCorruptError(f"{self.path}: not a usable SQLite ledger: {e}") from e
        self._in_txn = False

    def _close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self._db.close()

    def _init_meta(self, instance: Instance) -> None:
        meta = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        if not meta:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.executemany(
                "INSERT INTO meta (key, value) VALUES (?, ?)",
                [
                    ("schema_version", str(SCHEMA_VERSION)),
                    ("instance", canonical_json(instance.model_dump(mode="json"))),
                    ("genesis", self.genesis.hex()),
                    ("head_seq", "-1"),
                    ("head_hash", self.genesis.hex()),
                    ("created_at", dt.datetime.now(dt.UTC).isoformat()),
                ],
            )
            self._db.execute("COMMIT")
            return
        version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise LedgerMismatchError(
                f"{self.path}: schema version {version!r}; this library reads {SCHEMA_VERSION}"
            )
        if meta.get("genesis") != self.genesis.hex():
            raise LedgerMismatchError(f"{self.path}: the ledger was created for another instance")
        if "head_seq" not in meta or "head_hash" not in meta:
            raise LedgerCorruptError(f"{self.path}: the head is missing from meta")

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

    def rows(self, after: int = -1, prev_hash: bytes | None = None) -> Iterator[Row]:
        """The rows after seq ``after``, in order, checking gaps and the hash chain.

        Parameters
        ----------
        after
            Yield rows with a larger seq.
        prev_hash
            The hash of row ``after`` (the genesis hash when ``after`` is -1).

        Raises
        ------
        LedgerCorruptError
            At the first gap, hash mismatch, or unreadable page; also when the
            rows end before, or go past, the head recorded in ``meta``.
        """
        prev = self.genesis if prev_hash is None else prev_hash
        expect = after + 1
        head_seq, head_hash = self.head()
        try:
            cur = self._db.execute(
                "SELECT seq, kind, body, result, hash FROM events WHERE seq > ? ORDER BY seq",
                (after,),
            )
            for seq, kind, body, result, stored in cur:
                if seq != expect:
                    raise LedgerCorruptError(
                        f"{self.path}: row {expect} is missing (next row is {seq})"
                    )
                h = _row_hash(prev, seq, kind, body, result)
                if h != stored:
                    raise LedgerCorruptError(
                        f"{self.path}: row {seq} fails the hash chain (edited or corrupt)"
                    )
                yield Row(seq, kind, body, result, h)
                prev = h
                expect = seq + 1
        except sqlite3.DatabaseError as e:
            raise LedgerCorruptError(f"{self.path}: unreadable near row {expect}: {e}") from e
        if expect - 1 != head_seq or prev != head_hash:
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

    def begin(self) -> None:
        """Open a write transaction (a no-op when one is open)."""
        if not self._in_txn:
            self._db.execute("BEGIN IMMEDIATE")
            self._in_txn = True

    def insert(self, seq: int, prev: bytes, kind: str, body: str, result: str) -> bytes:
        """Insert row ``seq`` (inside a transaction) and return its hash."""
        h = _row_hash(prev, seq, kind, body, result)
        self._db.execute(
            "INSERT INTO events (seq, kind, body, result, hash) VALUES (?, ?, ?, ?, ?)",
            (seq, kind, body, result, h),
        )
        return h

    def commit(self, head_seq: int, head_hash: bytes) -> None:
        """Record the head and commit the open transaction."""
        self._db.executemany(
            "UPDATE meta SET value = ? WHERE key = ?",
            [(str(head_seq), "head_seq"), (head_hash.hex(), "head_hash")],
        )
        self._db.execute("COMMIT")
        self._in_txn = False

    def rollback(self) -> None:
        """Roll back the open transaction, if any."""
        self._in_txn = False
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def save_snapshot(self, seq: int, h: bytes, state: Mapping[str, Any], keep: int = 2) -> None:
        """Store a snapshot of the state after row ``seq`` and prune all but the ``keep`` newest."""
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

    def close(self) -> None:
        """Checkpoint the WAL and close the file."""
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self._db.close()


# ---------------------------------------------------------------- the durable allocator


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


class DurableAllocator:
    """The online Allocator with every accepted operation committed to a ledger first.

    Parameters
    ----------
    instance
        The starting instance (FORMAT §3): the world and the places held.
    db_path
        The ledger file; when it exists, the state is recovered from it (latest
        valid snapshot, then the rows after it, every decision re-checked).
    synchronous
        SQLite ``synchronous`` (``FULL`` by default; see the module notes).
    snapshot_every
        Take a snapshot after this many rows since the last one (0: only on
        :meth:`close` and :meth:`snapshot`).
    use_snapshots
        False replays every row from the starting instance (a full audit).
    full_check
        Also run SQLite's ``quick_check`` over the whole file on open.

    Raises
    ------
    InvalidStateError
        The instance's bookings break a rule.
    LedgerMismatchError
        The file belongs to another instance or schema version.
    LedgerCorruptError
        The file fails an integrity check, or a replayed decision differs from
        the one stored.

    Notes
    -----
    Thread-safe: every public method runs under one re-entrant lock, held from
    validation to commit (see the module notes).
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
    ) -> None:
        self._lock = threading.RLock()
        self._start = instance
        # Compiled once for every Allocator of this same instance (recovery builds new ones).
        self._compiled: Compiled = compile_instance(instance)
        self._snapshot_every = snapshot_every
        self._broken: str | None = None
        self._txn_depth = 0
        self._ledger = Ledger(db_path, instance, synchronous=synchronous)
        try:
            if full_check:
                self._ledger.quick_check()
            t0 = time.perf_counter()
            with gc_paused():  # decoding and rebuilding make no cycles: skip the GC passes
                self._recover(use_snapshots=use_snapshots)
            self.recovery_seconds = time.perf_counter() - t0
        except BaseException:
            self._ledger._close_quietly()
            raise
        log.info(
            "ledger %s: recovered %d rows (%d replayed) in %.3f s",
            self._ledger.path,
            self._seq + 1,
            self.replayed_rows,
            self.recovery_seconds,
        )

    # ------------------------------------------------------------ recovery

    def _recover(self, *, use_snapshots: bool = True) -> None:
        """Rebuild the in-memory state from the ledger (snapshot, then the rows after it)."""
        self._alloc = Allocator(self._start, compiled=self._compiled)
        self._seq = -1
        self._hash = self._ledger.genesis
        self.replayed_rows = 0
        snap = self._ledger.latest_snapshot() if use_snapshots else None
        if snap is not None:
            seq, h, state = snap
            if self._ledger.row_hash(seq) != h:
                raise LedgerCorruptError(
                    f"{self._ledger.path}: snapshot at row {seq} does not match the rows"
                )
            if "allocator" in state:
                self._alloc = self._load_snapshot(state["allocator"])
                self._seq, self._hash = seq, h
            else:
                # An older snapshot layout: the rows alone rebuild the same state.
                log.warning(
                    "%s: snapshot at row %d has an older layout; replaying every row",
                    self._ledger.path,
                    seq,
                )
        batch: list[Row] = []
        for row in self._ledger.rows(self._seq, self._hash):
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
        self._since_snapshot = self.replayed_rows

    def _replay_row(self, row: Row) -> None:
        body = json.loads(row.body)
        try:
            if row.kind == "book":
                request = Request.model_validate(body["request"])
                children = [Child.model_validate(c) for c in body.get("children", ())]
                got: dict[str, Any] = _book_result(self._alloc.book(request, children))
            elif row.kind == "cancel":
                got = _cancel_result(self._alloc.cancel(body["request"]))
            else:
                raise LedgerCorruptError(f"row {row.seq}: unknown kind {row.kind!r}")
        except (SlotallocError, ValueError, KeyError) as e:
            if isinstance(e, LedgerCorruptError):
                raise
            raise LedgerCorruptError(
                f"row {row.seq}: the stored event is refused on replay: {e}"
            ) from e
        if canonical_json(got) != row.result:
            raise LedgerCorruptError(
                f"row {row.seq}: replay decided {canonical_json(got)}, the ledger says {row.result}"
            )

    def _snapshot_state(self) -> dict[str, Any]:
        return {"seq": self._seq, "allocator": self._alloc.state()}

    def _load_snapshot(self, state: Mapping[str, Any]) -> Allocator:
        try:
            return Allocator.restore(self._start, state, compiled=self._compiled)
        except InvalidStateError as e:
            raise LedgerCorruptError(f"{self._ledger.path}: bad snapshot: {e}") from e

    # ------------------------------------------------------------ the lock held

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise LedgerUnavailableError(
                f"the allocator is unusable after a failed commit ({self._broken}); restart"
            )

    def _log(self, kind: str, body: Any, result: Any) -> int:
        """Append one row; commit unless inside :meth:`transaction`. Returns its seq."""
        led = self._ledger
        try:
            led.begin()
            seq = self._seq + 1
            h = led.insert(seq, self._hash, kind, canonical_json(body), canonical_json(result))
            self._seq, self._hash = seq, h
            if self._txn_depth == 0:
                led.commit(seq, h)
        except sqlite3.Error as e:
            self._commit_failed(e)
        self._since_snapshot += 1
        return seq

    def _recover_or_break(self, err: BaseException) -> None:
        led = self._ledger
        log.error("ledger %s: not committed (%s); rebuilding from the ledger", led.path, err)
        try:
            self._recover()
        except Exception as e:  # the process must restart; say why
            self._broken = f"{err}; recovery failed: {e}"
            log.critical("ledger %s: recovery failed: %s", led.path, e)
            raise LedgerUnavailableError(self._broken) from err

    def _commit_failed(self, err: BaseException) -> NoReturn:
        self._ledger.rollback()
        self._recover_or_break(err)
        raise LedgerWriteError(f"not committed, nothing changed: {err}") from err

    def _maybe_snapshot(self) -> None:
        if self._snapshot_every and self._since_snapshot >= self._snapshot_every:
            self._take_snapshot()

    def _take_snapshot(self) -> None:
        try:
            self._ledger.save_snapshot(self._seq, self._hash, self._snapshot_state())
        except sqlite3.Error as e:
            # A snapshot is only a shortcut: the rows alone rebuild the state.
            log.warning("ledger %s: snapshot failed: %s", self._ledger.path, e)
            return
        self._since_snapshot = 0

    # ------------------------------------------------------------ public operations

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
                            if self._ledger._in_txn:
                                self._ledger.commit(self._seq, self._hash)
                        except sqlite3.Error as e:
                            self._commit_failed(e)
                        self._maybe_snapshot()
                    elif self._ledger._in_txn:
                        # The block's own exception propagates; its operations are undone.
                        self._ledger.rollback()
                        self._recover_or_break(RuntimeError("transaction block raised"))

    def book(self, request: Request, children: Sequence[Child] = ()) -> Decision:
        """Book a request (FORMAT §3) and commit it to the ledger.

        Parameters
        ----------
        request
            A validated request with an id never used before.
        children
            Children not known yet.

        Returns
        -------
        Decision
            Its ``sequence`` is the ledger row's seq.

        Raises
        ------
        BookingError
            Refused (used id, unknown child or session, child conflict); nothing
            changed and nothing was logged.
        LedgerWriteError
            The commit failed; nothing changed.
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        with self._lock:
            self._check_usable()
            d = self._alloc.book(request, children)
            result = _book_result(d)
            body: dict[str, Any] = {"request": _dump(request)}
            if children:
                body["children"] = [_dump(c) for c in children]
            seq = self._log("book", body, result)
            self._maybe_snapshot()
        return Decision(d.request, d.session, seq)

    def cancel(self, request_id: str) -> Cancellation:
        """Cancel a request (FORMAT §3) and commit it to the ledger.

        Parameters
        ----------
        request_id
            A request holding a place or waitlisted.

        Returns
        -------
        Cancellation
            With the promotions; ``sequence`` is the ledger row's seq.

        Raises
        ------
        UnknownRequestError
            Nothing to cancel; nothing changed and nothing was logged.
        LedgerWriteError
            The commit failed; nothing changed.
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        with self._lock:
            self._check_usable()
            c = self._alloc.cancel(request_id)
            seq = self._log("cancel", {"request": request_id}, _cancel_result(c))
            self._maybe_snapshot()
        return Cancellation(c.request, c.session, c.promoted, seq)

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
        """The last committed ledger (seq, hash hex); seq -1 for an empty ledger."""
        with self._lock:
            return self._seq, self._hash.hex()

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

    def export(self) -> tuple[Instance, Solution]:
        """The FORMAT §3 state export, requests in the order they were first accepted.

        The same whether the state was built live, from a snapshot or by a
        full replay (a snapshot keeps the Allocator's request order).

        Raises
        ------
        pydantic.ValidationError
            Never for a state this engine built (it would mean a bug).
        """
        with self._lock:
            return self._alloc.export()

    # ------------------------------------------------------------ rebalancing

    def _solver_instance(self, allow_drops: bool) -> Instance:
        """The live requests (held and waitlisted) with the places held as unlocked bookings."""
        inst = self._start
        state, sol = self._alloc.export()
        waiting = set(self._alloc.waitlist())
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
        (dropped requests join the end of the waitlist before it).

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
        RebalanceRejectedError
            Drops without ``allow_drops``, an infeasible or invalid result, or
            the state changed while solving; nothing changed.
        ValueError
            An unknown method.
        LedgerWriteError
            The commit failed; nothing changed.
        """
        from slotalloc.solve import solve  # the batch path is not needed by plain bookings

        with self._lock:
            self._check_usable()
            seq0 = self._seq
            problem = self._solver_instance(allow_drops)
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
            if self._seq != seq0:
                raise RebalanceRejectedError("the state changed while solving; retry")
            if not (moved or dropped or placed):
                return RebalanceOutcome((), (), (), (), kept, None, stats)
            rows = [("move", {"request": r, "from": b, "to": a}) for r, b, a in moved]
            rows += [("drop", {"request": r, "from": b}) for r, b in dropped]
            rows += [("place", {"request": r, "to": a}) for r, a in placed]
            try:
                promoted = self._apply_rebalance(rows)
            except (InvalidStateError, BookingError) as e:
                raise RebalanceRejectedError(f"the solver's result is invalid: {e}") from e
            with self.transaction():
                for kind, body in rows:
                    self._log(kind, body, {})
                seq = self._log(
                    "scan",
                    {},
                    {"promoted": [{"request": p.request, "session": p.session} for p in promoted]},
                )
        return RebalanceOutcome(
            tuple(moved), tuple(dropped), tuple(placed), tuple(promoted), kept, seq, stats
        )

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
        rows = [(r.kind, json.loads(r.body)) for r in batch]
        try:
            promoted = self._apply_rebalance(rows)
        except (InvalidStateError, BookingError, KeyError) as e:
            raise LedgerCorruptError(
                f"row {scan.seq}: stored rebalance refused on replay: {e}"
            ) from e
        got = {"promoted": [{"request": p.request, "session": p.session} for p in promoted]}
        if canonical_json(got) != scan.result:
            raise LedgerCorruptError(f"row {scan.seq}: replayed scan differs from the ledger")

    # ------------------------------------------------------------ lifecycle

    def snapshot(self) -> int:
        """Store a snapshot of the current state now; returns its seq."""
        with self._lock:
            self._check_usable()
            self._take_snapshot()
            return self._seq

    def close(self, *, snapshot: bool = True) -> None:
        """Snapshot (when rows were added since the last one) and close the file."""
        with self._lock:
            if snapshot and self._broken is None and self._since_snapshot > 0:
                self._take_snapshot()
            self._ledger.close()

    def __enter__(self) -> DurableAllocator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
