"""The library's own exception classes.

Every error slotalloc raises on purpose derives from :class:`SlotallocError`, so
callers can catch the library's failures without catching programming errors.
"""

from __future__ import annotations

__all__ = [
    "AlreadyCancelledError",
    "BookingError",
    "ChildConflictError",
    "DuplicateRequestError",
    "IneligibleRequestError",
    "InputError",
    "InvalidStateError",
    "SlotallocError",
    "UnknownChildError",
    "UnknownRequestError",
    "UnknownSessionError",
]


class SlotallocError(Exception):
    """Base class of every error raised by slotalloc on purpose."""


class InputError(SlotallocError):
    """A file or value does not follow the slotalloc formats.

    Parameters
    ----------
    source
        The file (or other origin) of the bad input.
    location
        Where in it, as a JSON path such as ``requests[3] (id "r-3").preferences``;
        empty when the problem concerns the whole input.
    problem
        One sentence saying what is wrong.
    """

    def __init__(self, source: str, location: str, problem: str) -> None:
        self.source = source
        self.location = location
        self.problem = problem
        where = f"{source}: {location}: " if location else f"{source}: "
        super().__init__(where + problem)


class InvalidStateError(SlotallocError):
    """Places already held break a validity rule, so no valid state exists."""


class BookingError(SlotallocError):
    """An online booking or cancellation was refused; nothing was changed."""


class UnknownRequestError(BookingError):
    """The request id is not known (or holds nothing that can be cancelled)."""


class DuplicateRequestError(BookingError):
    """The request id was used before."""


class UnknownChildError(BookingError):
    """A child id is neither known nor declared."""


class UnknownSessionError(BookingError):
    """A preference names a session that does not exist."""


class ChildConflictError(BookingError):
    """A child is declared twice, or with another birth date than the one known."""


class AlreadyCancelledError(BookingError):
    """The request was cancelled before (or its id was carried in as used)."""


class IneligibleRequestError(BookingError):
    """No preference of the request takes all its children at their age (FORMAT §3).

    Such a request could never be placed, so it is refused at once rather than
    left waiting.
    """
