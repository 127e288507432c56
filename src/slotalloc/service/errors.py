"""The errors of the durable booking service, and how an error is described in a log line."""

from __future__ import annotations

import sqlite3

from slotalloc.exceptions import BookingError, SlotallocError

__all__ = [
    "LedgerCorruptError",
    "LedgerError",
    "LedgerMismatchError",
    "LedgerUnavailableError",
    "LedgerWriteError",
    "NotPermittedError",
    "RebalanceBusyError",
    "RebalanceRejectedError",
    "UnstorableEventError",
    "describe",
]


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


def describe(err: BaseException) -> str:
    """An exception for a log line or a reply: SQLite and OS errors say what; others their type.

    Other exceptions' messages may quote the data being written, which must not
    reach a log.
    """
    if isinstance(err, sqlite3.Error | OSError | LedgerError):
        return f"{type(err).__name__}: {err}"
    return type(err).__name__
