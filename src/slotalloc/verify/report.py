"""The verdict's data: rule names, :class:`Violation` and :class:`VerificationReport`.

Part of the independent verifier (:mod:`slotalloc.verify`, whose docstring lists
the rule names used in :attr:`Violation.rule`).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from slotalloc.models import Status

__all__ = ["CLAIM_RULES", "VALIDITY_RULES", "VerificationReport", "Violation"]

#: Names of the validity rules, in the order their violations are reported.
VALIDITY_RULES: tuple[str, ...] = (
    "unknown-id",
    "7-request-once",
    "1-preference",
    "2-eligibility",
    "3-capacity",
    "3-group-cap",
    "3-caregivers",
    "4-overlap",
    "5-per-child-cap",
    "6-locked",
    "8-group-floor",
    "9-no-justified-envy",
)

#: Names of the violations of a solution file's claims (not of the assignment).
CLAIM_RULES: tuple[str, ...] = ("score", "bound", "status", "infeasible-claim")


@dataclass(frozen=True, slots=True)
class Violation:
    """One broken rule, naming the ids involved.

    Attributes
    ----------
    rule
        The rule's name, such as ``"3-capacity"`` (see the module docstring).
    message
        One sentence naming the ids and the numbers involved.
    sessions, requests, children
        The ids of the sessions, requests and children involved (possibly ids
        that the instance does not know, for ``unknown-id``).
    """

    rule: str
    message: str
    sessions: tuple[str, ...] = ()
    requests: tuple[str, ...] = ()
    children: tuple[str, ...] = ()

    def __str__(self) -> str:
        return f"[{self.rule}] {self.message}"


@dataclass(frozen=True, slots=True)
class VerificationReport:
    """The verdict on a solution.

    Attributes
    ----------
    status
        The status the solution claims.
    claimed_score
        The score the solution claims (None for an infeasible claim).
    accepted
        Whether the solution file is accepted per FORMAT §2.
    valid
        For a feasible or optimal claim, whether the assignments satisfy the
        validity rules 1-7 (the score may still be wrong). For an infeasible
        claim, whether the claim is true (the locked bookings alone break a
        rule).
    score
        The score recomputed from the models, or None when it is meaningless
        (an infeasible claim, an unknown id, a non-preference, a request
        assigned twice).
    violations
        Every violation found, validity rules first, then the claims.
    conflicts
        The rules that the instance's locked bookings alone break: non-empty
        exactly when the instance is infeasible (whatever the claim).
    """

    status: Status
    claimed_score: int | None
    accepted: bool
    valid: bool
    score: int | None
    violations: tuple[Violation, ...]
    conflicts: tuple[Violation, ...] = ()

    @property
    def instance_infeasible(self) -> bool:
        """Whether the instance is infeasible (its locked bookings break a rule)."""
        return bool(self.conflicts)

    @property
    def verdict(self) -> str:
        """A short human verdict, one or two sentences."""
        if self.accepted:
            if self.status is Status.INFEASIBLE:
                rules = ", ".join(sorted({c.rule for c in self.conflicts}))
                return (
                    "Accepted: the instance is infeasible, as claimed; its locked "
                    f"bookings alone break {rules}."
                )
            proven = " (proven optimal)" if self.status is Status.OPTIMAL else ""
            return (
                f"Accepted: a valid {self.status.value} solution with score {self.score}{proven}."
            )
        counts = Counter(v.rule for v in self.violations)
        summary = ", ".join(f"{n} x {rule}" for rule, n in counts.items())
        total = len(self.violations)
        return (
            f"Rejected: {total} violation{'s' if total != 1 else ''} ({summary}); "
            f"first: {self.violations[0].message}"
        )

    def __str__(self) -> str:
        return self.verdict
