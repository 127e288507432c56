"""The validity rules of FORMAT §2 and §4, named once.

:class:`Rule` is the one spelling of a rule in messages, explanations, online
outcomes and infeasibility reports: its value is what JSON and HTTP carry
(``"capacity"``), :attr:`Rule.number` its number in FORMAT.md and
:attr:`Rule.code` the verifier's label (``"3-capacity"``).
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Rule"]


class Rule(StrEnum):
    """A validity rule of FORMAT §2 (1-7) or §4 (8-9)."""

    PREFERENCE = "preference"
    """1: the session is one of the request's preferences."""
    ELIGIBILITY = "eligibility"
    """2: every child of the request is eligible for the session (its age)."""
    CAPACITY = "capacity"
    """3: the session's places."""
    GROUP_CAP = "group_cap"
    """3: an age group's cap in the session."""
    CAREGIVERS = "caregivers"
    """3: the caregivers the session's children need."""
    OVERLAP = "overlap"
    """4: a child in two sessions at once."""
    PER_CHILD_CAP = "per_child_cap"
    """5: ``max_sessions_per_child``."""
    LOCKED = "locked"
    """6: a locked booking keeps its session."""
    REQUEST_ONCE = "request_once"
    """7: each request appears at most once."""
    GROUP_FLOOR = "group_floor"
    """8: no age group below first-come-first-served (§4)."""
    NO_JUSTIFIED_ENVY = "no_justified_envy"
    """9: no place lost to a lower priority (§4)."""

    @property
    def number(self) -> int:
        """The rule's number in FORMAT.md."""
        return _NUMBER[self]

    @property
    def code(self) -> str:
        """The verifier's label, number and name: ``"3-capacity"``."""
        return f"{_NUMBER[self]}-{self.value.replace('_', '-')}"

    def __str__(self) -> str:
        return self.value


_NUMBER = {
    Rule.PREFERENCE: 1,
    Rule.ELIGIBILITY: 2,
    Rule.CAPACITY: 3,
    Rule.GROUP_CAP: 3,
    Rule.CAREGIVERS: 3,
    Rule.OVERLAP: 4,
    Rule.PER_CHILD_CAP: 5,
    Rule.LOCKED: 6,
    Rule.REQUEST_ONCE: 7,
    Rule.GROUP_FLOOR: 8,
    Rule.NO_JUSTIFIED_ENVY: 9,
}
