"""Independent verifier of solutions (FORMAT §2).

This module checks a solution against its instance with nothing but plain
Python over the validated models of :mod:`slotalloc.models`. It deliberately
does **not** import the compiler (:mod:`slotalloc.compile`), the incremental
state (:mod:`slotalloc.rules`) or any solver (:mod:`slotalloc.solver`): it has
its own implementation of the age rule, of eligibility, of the per-session
counts and of the score, so that a bug in the shared machinery cannot make a
wrong solution look right.

The entry points are:

- :func:`verify`, which decides whether a solution file is *accepted*
  (FORMAT §2) and lists every violation found;
- :func:`check_assignment`, the validity rules 1-7 over a list of
  ``(request id, session id)`` pairs;
- :func:`score_of`, the FORMAT §2 score of such a list;
- :func:`locked_conflicts`, the rules the locked bookings alone break (an
  instance is infeasible exactly when there is at least one);
- :func:`fcfs_assignment`, :func:`group_places` and :func:`justified_envy`, the
  verifier's own first-come-first-served and the two measures of FORMAT §4
  (the fairness rules are checked from them, never from a solver's).

Rule names used in :attr:`Violation.rule`:

``unknown-id``, ``1-preference``, ``2-eligibility``, ``3-capacity``,
``3-group-cap``, ``3-caregivers``, ``4-overlap``, ``5-per-child-cap``,
``6-locked``, ``7-request-once``, ``8-group-floor``, ``9-no-justified-envy``
(the validity rules; 8 and 9 only when ``policy.fairness`` turns them on), and ``score``, ``bound``,
``status``, ``infeasible-claim`` (the claims of a solution file).
"""

from __future__ import annotations

from slotalloc.verify.checks import (
    age_in_months,
    check_assignment,
    eligible_group,
    locked_conflicts,
)
from slotalloc.verify.fairness import (
    fairness_violations,
    fcfs_assignment,
    group_places,
    home_groups,
    justified_envy,
)
from slotalloc.verify.report import CLAIM_RULES, VALIDITY_RULES, VerificationReport, Violation
from slotalloc.verify.verdict import UnscorableAssignmentError, score_of, verify

__all__ = [
    "CLAIM_RULES",
    "VALIDITY_RULES",
    "UnscorableAssignmentError",
    "VerificationReport",
    "Violation",
    "age_in_months",
    "check_assignment",
    "eligible_group",
    "fairness_violations",
    "fcfs_assignment",
    "group_places",
    "home_groups",
    "justified_envy",
    "locked_conflicts",
    "score_of",
    "verify",
]
