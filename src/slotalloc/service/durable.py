"""The durable allocator: the online Allocator with every accepted operation committed first.

See :mod:`slotalloc.service.ledger` for the durability, the order of
validate, apply, log and commit, and what is checked on open. This module
holds what a booking backend calls; the state and the commit protocol are
:class:`slotalloc.service.journal.Journal`, the file
:class:`slotalloc.service.store.Ledger`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

from slotalloc.compile import Compiled, compile_instance
from slotalloc.exceptions import (
    AlreadyCancelledError,
    BookingError,
    InvalidStateError,
    UnknownRequestError,
)
from slotalloc.models import Child, Instance, Request, Solution
from slotalloc.online import Placement, RequestStatus
from slotalloc.online.allocator import gc_paused
from slotalloc.result import Result
from slotalloc.service.chain import canonical_json, storable
from slotalloc.service.compaction import CompactionReport, base_row
from slotalloc.service.errors import NotPermittedError, RebalanceBusyError, RebalanceRejectedError
from slotalloc.service.files import acquire_writer_lock
from slotalloc.service.journal import Journal, starting_allocator
from slotalloc.service.ops import (
    BookOp,
    CancelOp,
    DurableCancellation,
    DurableDecision,
    Op,
    Prepared,
    book_result,
    cancel_result,
    placements_json,
    prepare,
)
from slotalloc.service.rebalance import (
    RebalanceOutcome,
    RebalancePlan,
    apply_entries,
    plan_rebalance,
    solver_instance,
)
from slotalloc.service.replay import RecoveryReport, open_state, snapshot_state
from slotalloc.service.store import Ledger, Synchronous

__all__ = ["DurableAllocator", "compact"]

# One logger for the ledger, whichever of its modules writes the line.
log = logging.getLogger("slotalloc.service.ledger")


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
        SQLite ``synchronous`` (``FULL`` by default; see :mod:`slotalloc.service.ledger`).
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
    applying an operation to its commit (see :mod:`slotalloc.service.ledger`).
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
        # Compiled once for every Allocator of this same instance (recovery builds new ones).
        self._compiled: Compiled = compile_instance(instance)
        self._start_kids = {r.id: r.children for r in instance.requests}
        self.recovery: RecoveryReport | None = None
        # The starting state first: bookings or a plan that break a rule are refused
        # before any file is created or locked (nothing written on bad input).
        initial = starting_allocator(instance, start, self._compiled)
        self._lock_file = acquire_writer_lock(os.fspath(db_path)) if exclusive else None
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
        self._journal = j = Journal(
            self._ledger,
            start=instance,
            plan=start,
            compiled=self._compiled,
            initial=initial,
            snapshot_every=snapshot_every,
        )
        try:
            t0 = time.perf_counter()
            with gc_paused():  # decoding and rebuilding make no cycles: skip the GC passes
                rep, self.recovery = open_state(
                    self._ledger,
                    j.new_replay,
                    use_snapshots=use_snapshots,
                    full_check=full_check,
                    recover=recover,
                )
                j.adopt(rep, complete=True)
            self.recovery_seconds = time.perf_counter() - t0
        except BaseException:
            self._ledger._close_quietly()
            self._release_lock()
            raise
        log.info(
            "ledger %s: recovered %d rows (%d replayed) in %.3f s",
            self._ledger.path,
            j.seq + 1,
            j.replayed,
            self.recovery_seconds,
        )

    @property
    def replayed_rows(self) -> int:
        """Rows re-applied by the last rebuild (those after the snapshot it started from)."""
        return self._journal.replayed

    @property
    def last_rebalance(self) -> RebalanceOutcome | None:
        """The last rebalance since start (as the rows record it after a restart), or None."""
        return self._journal.last_rebalance

    # ------------------------------------------------------------ operations

    def _apply(
        self, op: Op, prep: Prepared
    ) -> DurableDecision | DurableCancellation | BookingError:
        """Apply one operation and append its row; a refusal is returned, having changed nothing."""
        j = self._journal
        alloc = j.alloc
        if isinstance(op, BookOp):
            request = op.request
            if not op.privileged:
                refusal = j.ownership.book_refusal(request, prep.proof)
                if refusal is not None:
                    return refusal
            try:
                d = alloc.book(request, op.children)
            except BookingError as e:
                return e
            # Applied: from here any exception is handled by Journal.abort (rebuild).
            seq, h = j.append("book", prep.body, canonical_json(book_result(d)), prep.secret_hex)
            if prep.secret is not None:
                j.ownership.note(request, prep.secret)
            return DurableDecision(d.request, d.session, seq, h.hex(), d.reason)
        rid = op.request
        if not op.privileged and not j.ownership.may_cancel(rid, prep.proof):
            return self._cancel_refusal(rid)
        try:
            c = alloc.cancel(rid)
        except BookingError as e:
            return e
        seq, h = j.append("cancel", prep.body, canonical_json(cancel_result(c)))
        j.ownership.forget(rid)
        return DurableCancellation(c.request, c.session, c.promoted, seq, h.hex())

    def _cancel_refusal(self, rid: str) -> BookingError:
        """Why a caller without the booking's secret may not cancel it."""
        try:
            st = self._journal.alloc.status(rid)
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
        prepared: list[Prepared | BookingError] = []
        for op in ops:
            try:
                prepared.append(prepare(op))
            except BookingError as e:
                prepared.append(e)
        out: list[DurableDecision | DurableCancellation | BookingError] = []
        with self._lock:
            j = self._journal
            j.check_usable()
            try:
                for op, prep in zip(ops, prepared, strict=True):
                    out.append(prep if isinstance(prep, BookingError) else self._apply(op, prep))
                if j.depth == 0:
                    j.commit()
            except BaseException as e:
                j.abort(e)
            j.maybe_snapshot()
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
            j = self._journal
            j.check_usable()
            j.depth += 1
            ok = False
            try:
                yield
                ok = True
            finally:
                j.end_transaction(ok)

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
            return self._journal.alloc.status(request_id)

    def held(self) -> dict[str, str]:
        """Request id -> session id of every place held."""
        with self._lock:  # recovery may replace the Allocator
            return self._journal.alloc.held()

    def waitlist(self) -> list[str]:
        """The waitlisted request ids, head first."""
        with self._lock:
            return self._journal.alloc.waitlist()

    @property
    def session_ids(self) -> list[str]:
        """The ids of the sessions, in instance order."""
        return [s.id for s in self._start.sessions]

    @property
    def failure(self) -> str | None:
        """Why the allocator refuses operations (a commit it could not recover from), or None."""
        return self._journal.broken

    @property
    def head(self) -> tuple[int, str]:
        """The last committed ledger (seq, hash hex); seq -1 for an empty ledger (no lock taken)."""
        seq, h = self._journal.committed
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
            occ = self._journal.alloc.occupancy(session_id)
        return occ.to_json()

    def session_occupancies(self, ids: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """:meth:`session_occupancy` of several sessions (all when None), the state read once.

        Raises
        ------
        UnknownSessionError
            A session id that does not exist.
        """
        with self._lock:
            occ = self._journal.alloc.occupancies(ids)
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
            return self._journal.alloc.requests_of(child=child, household=household)

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
            alloc = self._journal.alloc
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
            j = self._journal
            j.check_usable()
            if j.depth or j.pending:
                raise RuntimeError("compact() inside a transaction")
            led = self._ledger
            old = (j.seq, j.hash)
            row, report = base_row(
                snapshot_state(j.seq, j.alloc, j.ownership),
                start=self._start,
                compiled=self._compiled,
                live=j.alloc,
                start_kids=self._start_kids,
                first=led.base_seq,
                head=old,
            )
            try:
                led.rewrite([row], base=(row.seq, old[1]), head=(row.seq, row.hash), prev=old)
            except BaseException as e:
                j.abort(e)
            j.recover()
            log.info(
                "ledger %s: compacted rows up to %d into base row %d; %d children erased",
                led.path,
                old[0],
                row.seq,
                report.erased_children,
            )
            return report

    # ------------------------------------------------------------ rebalancing

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
        j = self._journal
        with self._lock:
            j.check_usable()
            seq0 = j.committed[0]
            alloc = j.alloc
            copy = alloc._export_copy()
            waiting = set(alloc.waitlist())
        state, sol = alloc._export_from(copy)
        problem = solver_instance(self._start, state, sol, waiting, allow_drops)
        plan = plan_rebalance(
            problem, allow_drops=allow_drops, method=method, time_limit=time_limit, seed=seed
        )
        with self._lock:
            j.check_usable()
            if j.committed[0] != seq0 or j.pending:
                raise RebalanceRejectedError("the state changed while solving; retry")
            if not (plan.moved or plan.dropped or plan.placed):
                out = RebalanceOutcome((), (), (), (), plan.kept, None, plan.stats)
                j.last_rebalance = out
                return out
            seq, promoted = self._commit_rebalance(plan)
        log.info(
            "rebalance: %d moved, %d dropped, %d placed, %d promoted; ledger row %d",
            len(plan.moved),
            len(plan.dropped),
            len(plan.placed),
            len(promoted),
            seq,
        )
        out = RebalanceOutcome(
            plan.moved, plan.dropped, plan.placed, tuple(promoted), plan.kept, seq, plan.stats
        )
        j.last_rebalance = out
        return out

    def _commit_rebalance(self, plan: RebalancePlan) -> tuple[int, list[Placement]]:
        """Apply a plan and commit its rows (the lock held); returns the last row and promotions."""
        j = self._journal
        rows = plan.entries()
        texts = [(kind, storable(canonical_json(body))) for kind, body in rows]
        try:
            promoted = apply_entries(j.alloc, rows)
        except (InvalidStateError, BookingError) as e:
            raise RebalanceRejectedError(f"the solver's result is invalid: {e}") from e
        try:
            for kind, text in texts:
                j.append(kind, text, "{}")
            seq, _h = j.append(
                "scan", "{}", canonical_json({"promoted": placements_json(promoted)})
            )
            if j.depth == 0:
                j.commit()
        except BaseException as e:
            j.abort(e)
        j.maybe_snapshot()
        return seq, promoted

    # ------------------------------------------------------------ lifecycle

    def snapshot(self) -> int:
        """Store a snapshot of the current state now; returns its seq.

        Raises
        ------
        LedgerUnavailableError
            A previous failure left the allocator unusable.
        """
        with self._lock:
            j = self._journal
            j.check_usable()
            if not j.pending:
                j.take_snapshot()
            return j.committed[0]

    def close(self, *, snapshot: bool = True) -> None:
        """Snapshot (when rows were added since the last one) and close the file."""
        with self._lock:
            j = self._journal
            if snapshot and j.broken is None and j.since_snapshot > 0 and not j.pending:
                j.take_snapshot()
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
