"""What the engine's operations return: decisions, cancellations, statuses, occupancies."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any, NamedTuple

from slotalloc.rules import Rule

__all__ = [
    "Cancellation",
    "Decision",
    "GroupOccupancy",
    "Placement",
    "RequestStatus",
    "SessionOccupancy",
]


class Placement(NamedTuple):
    """A request placed in a session (ids)."""

    request: str
    session: str


class Decision:
    """The outcome of :meth:`Allocator.book`.

    Attributes
    ----------
    request
        The request id.
    session
        The session id taken, or None when waitlisted.
    waitlisted
        Whether the request joined the waitlist.
    reason
        Why it was waitlisted: the rule its first preference would break at
        that moment (:attr:`Rule.ELIGIBILITY` when the first preference does not
        take a child at its age, else :attr:`Rule.CAPACITY`,
        :attr:`Rule.GROUP_CAP`, :attr:`Rule.CAREGIVERS`, :attr:`Rule.OVERLAP` or
        :attr:`Rule.PER_CHILD_CAP`, the first broken in that order); None when a
        place was taken.
    sequence
        Position of this operation in the allocator's serial order (successful
        operations only, from 0): the order the lock serialised them in.
    """

    __slots__ = ("reason", "request", "sequence", "session", "waitlisted")

    def __init__(
        self, request: str, session: str | None, sequence: int, reason: Rule | None = None
    ) -> None:
        self.request = request
        self.session = session
        self.waitlisted = session is None
        self.reason = reason
        self.sequence = sequence

    def __repr__(self) -> str:
        why = "" if self.reason is None else f", reason={self.reason.value!r}"
        return (
            f"Decision(request={self.request!r}, session={self.session!r}, "
            f"waitlisted={self.waitlisted}{why})"
        )


class Cancellation:
    """The outcome of :meth:`Allocator.cancel`.

    Attributes
    ----------
    request
        The request id cancelled.
    session
        The session whose place was freed, or None when the request was waitlisted.
    promoted
        The waitlisted requests that took a place, in waitlist order.
    sequence
        Position of this operation in the allocator's serial order.
    """

    __slots__ = ("promoted", "request", "sequence", "session")

    def __init__(
        self, request: str, session: str | None, promoted: list[Placement], sequence: int
    ) -> None:
        self.request = request
        self.session = session
        self.promoted = promoted
        self.sequence = sequence

    def __repr__(self) -> str:
        return (
            f"Cancellation(request={self.request!r}, session={self.session!r}, "
            f"promoted={self.promoted!r})"
        )


@dataclass(frozen=True)
class RequestStatus:
    """Where a request stands (:meth:`Allocator.status`).

    Attributes
    ----------
    request
        The request id.
    session
        The session held, or None.
    waitlisted
        Whether the request is on the waitlist.
    cancelled
        Whether the id is used but the request is gone: cancelled, or an id
        carried in as used (``used_ids``, :meth:`Allocator.restore`).
    position
        The place in the waitlist when waitlisted (1 is the head: the first
        scanned when a place is freed), else None.
    """

    request: str
    session: str | None
    waitlisted: bool
    cancelled: bool
    position: int | None = None


@dataclass(frozen=True)
class GroupOccupancy:
    """One age group in one session (part of :class:`SessionOccupancy`).

    Attributes
    ----------
    group
        The age group's name.
    taken
        Children of this group placed in the session.
    cap
        The session's cap for this group.
    ratio
        Children per caregiver for this group.
    caregivers_needed
        This group's term of the session's caregiver need: ``ceil(taken /
        ratio)`` with ``per_group`` staffing, the exact ``taken / ratio`` when
        ``pooled``.
    """

    group: str
    taken: int
    cap: int
    ratio: int
    caregivers_needed: int | Fraction


@dataclass(frozen=True)
class SessionOccupancy:
    """Places taken and caregivers needed in one session (:meth:`Allocator.occupancy`).

    Attributes
    ----------
    session
        The session id.
    capacity
        Places in the session.
    taken
        Children placed.
    caregivers_available
        The session's caregivers.
    caregivers_needed
        Caregivers the placed children need under the policy's staffing (an
        int with ``per_group``, an exact fraction when ``pooled``).
    staffing
        ``"per_group"`` or ``"pooled"``.
    requests
        The requests holding a place, in request order (the order of
        :meth:`Allocator.export`).
    groups
        One entry per age group, in policy order.
    site
        The session's site.
    start, end
        The session's interval, as the instance gives it (ISO 8601 with offset).
    waiting
        Waitlisted requests that have this session among the preferences
        they are eligible for.
    """

    session: str
    capacity: int
    taken: int
    caregivers_available: int
    caregivers_needed: int | Fraction
    staffing: str
    requests: tuple[str, ...]
    groups: tuple[GroupOccupancy, ...]
    site: str = ""
    start: str = ""
    end: str = ""
    waiting: int = 0

    def to_json(self) -> dict[str, Any]:
        """The same as JSON data (exact fractions become floats).

        Returns
        -------
        dict
            The attributes by name, ``groups`` as a list of dicts.
        """

        def num(x: int | Fraction) -> int | float:
            return int(x) if isinstance(x, int) else float(x)

        return {
            "session": self.session,
            "capacity": self.capacity,
            "taken": self.taken,
            "caregivers_available": self.caregivers_available,
            "caregivers_needed": num(self.caregivers_needed),
            "staffing": self.staffing,
            "requests": list(self.requests),
            "site": self.site,
            "start": self.start,
            "end": self.end,
            "waiting": self.waiting,
            "groups": [
                {
                    "group": g.group,
                    "taken": g.taken,
                    "cap": g.cap,
                    "ratio": g.ratio,
                    "caregivers_needed": num(g.caregivers_needed),
                }
                for g in self.groups
            ],
        }
