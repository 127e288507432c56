"""The FORMAT §2 score and the verdict on a solution file.

Part of the independent verifier (:mod:`slotalloc.verify`): :func:`score_of`
recomputes the score of an assignment and :func:`verify` decides whether a
solution file is accepted, from the rule checks of :mod:`slotalloc.verify.checks`
and :mod:`slotalloc.verify.fairness`.
"""

from __future__ import annotations

from collections.abc import Iterable

from slotalloc.exceptions import SlotallocError
from slotalloc.models import Instance, Solution, Status
from slotalloc.verify.checks import check_assignment, locked_conflicts
from slotalloc.verify.fairness import fairness_violations
from slotalloc.verify.report import VerificationReport, Violation

__all__ = ["UnscorableAssignmentError", "score_of", "verify"]

# Rules whose violation leaves the score undefined (no rank, or a request
# counted twice, or an id that names nothing).
_UNSCORABLE_RULES = frozenset({"unknown-id", "1-preference", "7-request-once"})


class UnscorableAssignmentError(SlotallocError, ValueError):
    """An assignment has no score: an unknown id, a non-preference, a request twice."""


# ---------------------------------------------------------------- score


def score_of(instance: Instance, pairs: Iterable[tuple[str, str]]) -> int:
    """The FORMAT §2 score of an assignment, in integers.

    ``sum over assigned requests r at rank k of len(r.children) * (serve +
    priority * r.priority - rank * k)``, minus ``move`` per unlocked booked
    request assigned to another session, minus ``drop`` per booked request left
    unassigned. Validity (rules 2-6) is not checked here.

    Parameters
    ----------
    instance
        The validated instance.
    pairs
        ``(request id, session id)`` pairs.

    Returns
    -------
    int
        The score.

    Raises
    ------
    UnscorableAssignmentError
        When a request id is unknown, a session is not one of its request's
        preferences (so it has no rank; unknown sessions included) or a request
        appears more than once.
    """
    objective = instance.objective
    requests = instance.requests
    r_index = instance.request_index
    assigned: dict[str, str] = {}
    total = 0
    for rid, sid in pairs:
        ri = r_index.get(rid)
        if ri is None:
            raise UnscorableAssignmentError(f"unknown request {rid!r}")
        if rid in assigned:
            raise UnscorableAssignmentError(f"request {rid!r} is assigned more than once")
        request = requests[ri]
        try:
            rank = request.preferences.index(sid)
        except ValueError:
            raise UnscorableAssignmentError(
                f"session {sid!r} is not one of the preferences of request {rid!r}"
            ) from None
        assigned[rid] = sid
        total += len(request.children) * (
            objective.serve + objective.priority * request.priority - objective.rank * rank
        )
    for b in instance.bookings:
        got = assigned.get(b.request)
        if got is None:
            total -= objective.drop
        elif got != b.session and not b.locked:
            total -= objective.move
    return total


# ---------------------------------------------------------------- verdict


def verify(instance: Instance, solution: Solution) -> VerificationReport:
    """Check a solution against its instance (FORMAT §2).

    A feasible or optimal claim is accepted when its assignments break no
    validity rule, its ``score`` equals the recomputed score, its ``bound`` (if
    not null) is >= the score, and an ``optimal`` status comes with ``bound``
    equal to the score or null. An infeasible claim is accepted only when the
    locked bookings alone break rule 2, 3, 4, 5 or 7.

    Parameters
    ----------
    instance
        The validated instance.
    solution
        The validated solution file.

    Returns
    -------
    VerificationReport
        The verdict with every violation found. Nothing is raised for a bad
        solution, including one naming unknown ids.
    """
    conflicts = tuple(locked_conflicts(instance))
    status = solution.status

    if status is Status.INFEASIBLE:
        violations: list[Violation] = []
        if not conflicts:
            violations.append(
                Violation(
                    "infeasible-claim",
                    "The solution claims the instance is infeasible, but its locked "
                    "bookings alone break no rule, so a valid assignment exists.",
                    sessions=tuple(b.session for b in instance.bookings if b.locked),
                    requests=tuple(b.request for b in instance.bookings if b.locked),
                )
            )
        # The model forbids assignments in an infeasible solution; be safe anyway.
        if solution.assignments:
            violations.append(
                Violation(
                    "status",
                    f"An infeasible solution lists {len(solution.assignments)} assignments.",
                )
            )
        ok = not violations
        return VerificationReport(
            status=status,
            claimed_score=solution.score,
            accepted=ok,
            valid=ok,
            score=None,
            violations=tuple(violations),
            conflicts=conflicts,
        )

    pairs = [(a.request, a.session) for a in solution.assignments]
    violations = check_assignment(instance, pairs)
    if instance.policy.fairness is not None and not violations:
        violations = fairness_violations(instance, pairs)
    valid = not violations
    score: int | None = None
    if not any(v.rule in _UNSCORABLE_RULES for v in violations):
        score = score_of(instance, pairs)

    claimed = solution.score
    if claimed is None:
        violations.append(Violation("score", f"The {status.value} solution claims no score."))
    elif score is not None and claimed != score:
        violations.append(
            Violation(
                "score",
                f"The solution claims score {claimed} but its assignments score {score}.",
            )
        )
    bound = solution.bound
    if bound is not None and claimed is not None and bound < claimed:
        violations.append(
            Violation("bound", f"The bound {bound} is below the claimed score {claimed}.")
        )
    if status is Status.OPTIMAL and bound is not None and bound != claimed:
        violations.append(
            Violation(
                "status",
                f"The solution claims optimality with bound {bound} differing from its "
                f"score {claimed}.",
            )
        )
    return VerificationReport(
        status=status,
        claimed_score=claimed,
        accepted=not violations,
        valid=valid,
        score=score,
        violations=tuple(violations),
        conflicts=conflicts,
    )
