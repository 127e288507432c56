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

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from slotalloc.exceptions import SlotallocError
from slotalloc.models import AgeGroup, Instance, Request, Session, Solution, Status

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

# Rules whose violation leaves the score undefined (no rank, or a request
# counted twice, or an id that names nothing).
_UNSCORABLE_RULES = frozenset({"unknown-id", "1-preference", "7-request-once"})

# Rules that the locked bookings alone can break (FORMAT §2, infeasibility).
_INFEASIBILITY_RULES = frozenset(
    {
        "2-eligibility",
        "3-capacity",
        "3-group-cap",
        "3-caregivers",
        "4-overlap",
        "5-per-child-cap",
        "7-request-once",
    }
)


class UnscorableAssignmentError(SlotallocError, ValueError):
    """An assignment has no score: an unknown id, a non-preference, a request twice."""


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


# ---------------------------------------------------------------- ages and eligibility


def age_in_months(birth_date: dt.date, on: dt.date) -> int:
    """Completed months of age on a date (FORMAT §1); negative before birth.

    Parameters
    ----------
    birth_date
        The child's birth date.
    on
        The calendar date on which the age is taken.

    Returns
    -------
    int
        ``(on.year - b.year) * 12 + (on.month - b.month) - (1 if on.day < b.day else 0)``.
        Born 2023-01-31, the age on 2023-02-28 is 0 and on 2023-03-31 is 2.
    """
    months = (on.year - birth_date.year) * 12 + (on.month - birth_date.month)
    return months - 1 if on.day < birth_date.day else months


def _group_for_age(groups: tuple[AgeGroup, ...], age: int) -> AgeGroup | None:
    for g in groups:
        if g.min_months <= age < g.max_months:
            return g
    return None


def eligible_group(instance: Instance, child_id: str, session_id: str) -> AgeGroup | None:
    """The child's age group in the session, or None when it is not eligible.

    The age is taken on the date of the session's ``start`` in the session's own
    offset; it must be in the session's [min_months, max_months) (defaults: the
    span of the policy's groups) and in one of the policy's groups.

    Raises
    ------
    KeyError
        When the child or the session id is unknown.
    """
    child = instance.children[instance.child_index[child_id]]
    session = instance.sessions[instance.session_index[session_id]]
    age = age_in_months(child.birth_date, session.start.date())
    lo, hi = instance.session_age_range(session)
    if age < 0 or not lo <= age < hi:
        return None
    return _group_for_age(instance.policy.groups, age)


# ---------------------------------------------------------------- validity rules


def _ids(items: Iterable[str]) -> str:
    """Ids as ``'a', 'b'`` in first-seen order, without repeats."""
    return ", ".join(repr(x) for x in dict.fromkeys(items))


def _children(n: int) -> str:
    return f"{n} child" if n == 1 else f"{n} children"


@dataclass(slots=True)
class _Load:
    """What one session holds, accumulated over the assignment."""

    placed: int = 0
    requests: list[str] = field(default_factory=list)
    children: list[str] = field(default_factory=list)
    by_group: dict[str, list[str]] = field(default_factory=dict)


def check_assignment(instance: Instance, pairs: Iterable[tuple[str, str]]) -> list[Violation]:
    """Every violation of the FORMAT §2 validity rules 1-7 by an assignment.

    Parameters
    ----------
    instance
        The validated instance.
    pairs
        ``(request id, session id)`` pairs; a request not listed is unassigned.
        Ids the instance does not know are reported (rule ``unknown-id``), never
        raised. A pair listed twice is reported once under ``7-request-once``
        and otherwise counted once.

    Returns
    -------
    list of Violation
        Grouped by rule in the order of :data:`VALIDITY_RULES`; empty when the
        assignment is valid. Children that are not eligible are counted in the
        session's capacity, and in the group their age falls in (if any) for
        the group caps and caregivers.
    """
    found: dict[str, list[Violation]] = {rule: [] for rule in VALIDITY_RULES}
    sessions_of, placed = _known_pairs(instance, pairs, found)
    _rule_7_request_once(sessions_of, found)
    loads, placements = _rules_1_2_per_placement(instance, placed, found)
    _rule_3_per_session(instance, loads, found)
    _rules_4_5_per_child(instance, placements, found)
    _rule_6_locked(instance, sessions_of, found)
    return [v for rule in VALIDITY_RULES for v in found[rule]]


_Found = dict[str, list[Violation]]
_Placement = tuple[dt.datetime, dt.datetime, str, str]  # start, end, session id, request id


def _known_pairs(
    instance: Instance, pairs: Iterable[tuple[str, str]], found: _Found
) -> tuple[dict[str, list[str]], list[tuple[Request, Session]]]:
    """Unknown ids reported; the sessions of each known request (with repeats); the placements."""
    r_index, s_index = instance.request_index, instance.session_index
    sessions_of: dict[str, list[str]] = defaultdict(list)
    placed: list[tuple[Request, Session]] = []
    seen: set[tuple[str, str]] = set()
    for rid, sid in pairs:
        ri = r_index.get(rid)
        si = s_index.get(sid)
        if ri is not None:
            sessions_of[rid].append(sid)
        if ri is None or si is None:
            what = " and ".join(
                f"unknown {kind} {x!r}"
                for kind, x, i in (("request", rid, ri), ("session", sid, si))
                if i is None
            )
            found["unknown-id"].append(
                Violation(
                    "unknown-id",
                    f"The assignment of request {rid!r} to session {sid!r} names {what}.",
                    sessions=(sid,),
                    requests=(rid,),
                )
            )
            continue
        if (rid, sid) in seen:
            continue
        seen.add((rid, sid))
        placed.append((instance.requests[ri], instance.sessions[si]))
    return sessions_of, placed


def _rule_7_request_once(sessions_of: Mapping[str, list[str]], found: _Found) -> None:
    """Rule 7: each request at most once."""
    for rid, sids in sessions_of.items():
        if len(sids) > 1:
            found["7-request-once"].append(
                Violation(
                    "7-request-once",
                    f"Request {rid!r} is assigned {len(sids)} times (sessions {_ids(sids)}).",
                    sessions=tuple(dict.fromkeys(sids)),
                    requests=(rid,),
                )
            )


def _rules_1_2_per_placement(
    instance: Instance, placed: list[tuple[Request, Session]], found: _Found
) -> tuple[dict[str, _Load], dict[str, list[_Placement]]]:
    """Rules 1 (preference) and 2 (eligibility); what each session and each child holds."""
    children, c_index = instance.children, instance.child_index
    groups = instance.policy.groups
    # Per session: calendar date in the session's own offset, age range.
    day_of: dict[str, dt.date] = {}
    range_of: dict[str, tuple[int, int]] = {}
    loads: dict[str, _Load] = {}
    placements: dict[str, list[_Placement]] = defaultdict(list)
    for request, session in placed:
        rid, sid = request.id, session.id
        if sid not in request.preferences:
            found["1-preference"].append(
                Violation(
                    "1-preference",
                    f"Request {rid!r} is assigned to session {sid!r}, "
                    "which is not one of its preferences.",
                    sessions=(sid,),
                    requests=(rid,),
                )
            )
        day = day_of.get(sid)
        if day is None:
            day = day_of[sid] = session.start.date()
            range_of[sid] = instance.session_age_range(session)
            loads[sid] = _Load()
        lo, hi = range_of[sid]
        load = loads[sid]
        load.placed += len(request.children)
        load.requests.append(rid)
        for cid in request.children:
            child = children[c_index[cid]]
            age = age_in_months(child.birth_date, day)
            group = _group_for_age(groups, age) if age >= 0 else None
            reason = None
            if age < 0:
                reason = f"is not yet born on {day.isoformat()}"
            elif not lo <= age < hi:
                reason = f"is {age} months old, outside the session's range [{lo}, {hi})"
            elif group is None:
                reason = f"is {age} months old, in none of the policy's age groups"
            if reason is not None:
                found["2-eligibility"].append(
                    Violation(
                        "2-eligibility",
                        f"Child {cid!r} of request {rid!r} {reason} in session {sid!r}.",
                        sessions=(sid,),
                        requests=(rid,),
                        children=(cid,),
                    )
                )
            load.children.append(cid)
            if group is not None:
                load.by_group.setdefault(group.name, []).append(cid)
            placements[cid].append((session.start, session.end, sid, rid))
    return loads, placements


def _rule_3_per_session(instance: Instance, loads: Mapping[str, _Load], found: _Found) -> None:
    """Rule 3: capacity, group caps, caregivers, per session."""
    sessions, s_index = instance.sessions, instance.session_index
    requests, r_index = instance.requests, instance.request_index
    group_by_name = {g.name: g for g in instance.policy.groups}
    pooled = instance.policy.staffing == "pooled"
    for sid, load in loads.items():
        session = sessions[s_index[sid]]
        if load.placed > session.capacity:
            found["3-capacity"].append(
                Violation(
                    "3-capacity",
                    f"Session {sid!r} holds {_children(load.placed)}, above its capacity "
                    f"of {session.capacity} (requests {_ids(load.requests)}).",
                    sessions=(sid,),
                    requests=tuple(load.requests),
                    children=tuple(load.children),
                )
            )
        need_exact = Fraction(0)
        need_whole = 0
        for name, members in load.by_group.items():
            group = group_by_name[name]
            n = len(members)
            cap = session.group_caps.get(name, group.max_group_size)
            if n > cap:
                found["3-group-cap"].append(
                    Violation(
                        "3-group-cap",
                        f"Session {sid!r} holds {_children(n)} of group {name!r}, above "
                        f"its cap of {cap} (children {_ids(members)}).",
                        sessions=(sid,),
                        requests=_requests_of(members, load.requests, requests, r_index),
                        children=tuple(members),
                    )
                )
            need_exact += Fraction(n, group.ratio)
            need_whole += -(-n // group.ratio)
        need = need_exact if pooled else Fraction(need_whole)
        if need > session.caregivers:
            shown = str(need) if pooled else str(need_whole)
            mode = "pooled" if pooled else "per_group"
            counts = ", ".join(f"{len(m)} {name}" for name, m in load.by_group.items())
            found["3-caregivers"].append(
                Violation(
                    "3-caregivers",
                    f"Session {sid!r} needs {shown} caregivers ({mode} staffing for "
                    f"{counts}) but has {session.caregivers}.",
                    sessions=(sid,),
                    requests=tuple(load.requests),
                    children=tuple(load.children),
                )
            )


def _rules_4_5_per_child(
    instance: Instance, placements: Mapping[str, list[_Placement]], found: _Found
) -> None:
    """Rule 4 (overlaps) and rule 5 (per-child cap), per child."""
    cap_per_child = instance.policy.max_sessions_per_child
    for cid, items in placements.items():
        if cap_per_child is not None and len(items) > cap_per_child:
            found["5-per-child-cap"].append(
                Violation(
                    "5-per-child-cap",
                    f"Child {cid!r} is in {len(items)} assignments, above the limit of "
                    f"{cap_per_child} (sessions {_ids(i[2] for i in items)}).",
                    sessions=tuple(dict.fromkeys(i[2] for i in items)),
                    requests=tuple(dict.fromkeys(i[3] for i in items)),
                    children=(cid,),
                )
            )
        if len(items) < 2:
            continue
        items.sort(key=lambda i: (i[0], i[1]))
        active: list[_Placement] = []
        for item in items:
            start = item[0]
            active = [a for a in active if a[1] > start]  # [s, e) intervals: touching is fine
            for a in active:
                found["4-overlap"].append(_overlap(cid, a, item))
            active.append(item)


def _rule_6_locked(instance: Instance, sessions_of: Mapping[str, list[str]], found: _Found) -> None:
    """Rule 6: every locked booking assigned to exactly its session."""
    for b in instance.bookings:
        if not b.locked:
            continue
        got = sessions_of.get(b.request, [])
        if set(got) != {b.session}:
            where = f"assigned to {_ids(got)}" if got else "unassigned"
            found["6-locked"].append(
                Violation(
                    "6-locked",
                    f"Request {b.request!r} has a locked booking in session {b.session!r} "
                    f"but is {where}.",
                    sessions=tuple(dict.fromkeys([b.session, *got])),
                    requests=(b.request,),
                )
            )


def _requests_of(
    members: list[str],
    session_requests: list[str],
    requests: tuple[Request, ...],
    r_index: Mapping[str, int],
) -> tuple[str, ...]:
    """The requests, among those of a session, that hold one of ``members``."""
    wanted = set(members)
    return tuple(
        rid
        for rid in dict.fromkeys(session_requests)
        if wanted.intersection(requests[r_index[rid]].children)
    )


def _overlap(
    cid: str,
    a: tuple[dt.datetime, dt.datetime, str, str],
    b: tuple[dt.datetime, dt.datetime, str, str],
) -> Violation:
    if a[2] == b[2]:
        message = (
            f"Child {cid!r} is placed twice in session {a[2]!r}, "
            f"through requests {a[3]!r} and {b[3]!r}."
        )
    else:
        message = (
            f"Child {cid!r} is in overlapping sessions {a[2]!r} (request {a[3]!r}) "
            f"and {b[2]!r} (request {b[3]!r})."
        )
    return Violation(
        "4-overlap",
        message,
        sessions=tuple(dict.fromkeys((a[2], b[2]))),
        requests=tuple(dict.fromkeys((a[3], b[3]))),
        children=(cid,),
    )


def locked_conflicts(instance: Instance) -> list[Violation]:
    """The rules broken by the locked bookings alone (FORMAT §2, infeasibility).

    Every rule is monotone, so the instance is infeasible exactly when this list
    is non-empty: the assignment made of exactly the locked bookings breaks
    rule 2, 3, 4, 5 or 7.
    """
    pairs = [(b.request, b.session) for b in instance.bookings if b.locked]
    return [v for v in check_assignment(instance, pairs) if v.rule in _INFEASIBILITY_RULES]


# ---------------------------------------------------------------- fairness (FORMAT §4)


def home_groups(instance: Instance, request: Request) -> tuple[str | None, ...]:
    """Each child's home group in a request (FORMAT §4), or None when its age is in no group.

    The age is taken on the date of the request's first preference, whatever
    that session's own month limits.
    """
    first = instance.sessions[instance.session_index[request.preferences[0]]]
    day = first.start.date()
    groups = instance.policy.groups
    out: list[str | None] = []
    for cid in request.children:
        age = age_in_months(instance.children[instance.child_index[cid]].birth_date, day)
        g = _group_for_age(groups, age) if age >= 0 else None
        out.append(None if g is None else g.name)
    return tuple(out)


def group_places(instance: Instance, pairs: Iterable[tuple[str, str]]) -> dict[str, int]:
    """``P_g(A)`` of FORMAT §4: child places by home group, every policy group listed.

    Unknown request ids are skipped (the validity rules report them).
    """
    places = {g.name: 0 for g in instance.policy.groups}
    seen: set[str] = set()
    for rid, _sid in pairs:
        ri = instance.request_index.get(rid)
        if ri is None or rid in seen:
            continue
        seen.add(rid)
        for g in home_groups(instance, instance.requests[ri]):
            if g is not None:
                places[g] += 1
    return places


class _Plain:
    """What an assignment holds, kept plainly so one request can be tried, added, removed.

    Rules 2-5 for one more request, checked from the counts: the verifier's own
    copy, sharing nothing with the engine's incremental state.
    """

    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.groups = {g.name: g for g in instance.policy.groups}
        self.pooled = instance.policy.staffing == "pooled"
        self.cap_child = instance.policy.max_sessions_per_child
        self.count: dict[str, int] = defaultdict(int)
        self.by_group: dict[str, Counter[str]] = defaultdict(Counter)
        self.held: dict[str, list[Session]] = defaultdict(list)  # child id -> sessions
        self._group: dict[tuple[str, str], AgeGroup | None] = {}

    def group(self, cid: str, session: Session) -> AgeGroup | None:
        key = (cid, session.id)
        if key not in self._group:
            self._group[key] = eligible_group(self.instance, cid, session.id)
        return self._group[key]

    def fits(self, request: Request, session: Session) -> bool:
        """Whether the request may join the session now (rules 2-5)."""
        kids = request.children
        new: Counter[str] = Counter()
        for cid in kids:
            g = self.group(cid, session)
            if g is None:
                return False
            new[g.name] += 1
        sid = session.id
        if self.count[sid] + len(kids) > session.capacity:
            return False
        have = self.by_group[sid]
        for name, k in new.items():
            if have[name] + k > session.group_caps.get(name, self.groups[name].max_group_size):
                return False
        need = Fraction(0)
        for name in set(have) | set(new):
            n, r = have[name] + new[name], self.groups[name].ratio
            need += Fraction(n, r) if self.pooled else -(-n // r)
        if need > session.caregivers:
            return False
        for cid in kids:
            mine = self.held.get(cid, [])
            if self.cap_child is not None and len(mine) + 1 > self.cap_child:
                return False
            if any(t.start < session.end and session.start < t.end for t in mine):
                return False
        return True

    def add(self, request: Request, session: Session) -> None:
        self.count[session.id] += len(request.children)
        for cid in request.children:
            g = self.group(cid, session)
            if g is not None:
                self.by_group[session.id][g.name] += 1
            self.held[cid].append(session)

    def remove(self, request: Request, session: Session) -> None:
        self.count[session.id] -= len(request.children)
        for cid in request.children:
            g = self.group(cid, session)
            if g is not None:
                self.by_group[session.id][g.name] -= 1
            self.held[cid].remove(session)


def fcfs_assignment(
    instance: Instance, *, priority_order: bool = False
) -> list[tuple[str, str]] | None:
    """First-come-first-served (FORMAT §2), computed plainly; None when infeasible.

    Locked bookings in file order, then unlocked bookings in file order, each
    kept at its session if that keeps the assignment valid (a locked one that
    cannot be kept makes the instance infeasible); then the other requests in
    file order, or with ``priority_order`` every request not yet assigned
    (dropped bookings included) in decreasing priority, file order within a
    priority, each at its first preference that keeps the assignment valid.
    """
    state = _Plain(instance)
    sessions = instance.sessions
    s_index, r_index = instance.session_index, instance.request_index
    out: dict[str, str] = {}
    booked = {b.request for b in instance.bookings}
    for b in [b for b in instance.bookings if b.locked] + [
        b for b in instance.bookings if not b.locked
    ]:
        request, session = instance.requests[r_index[b.request]], sessions[s_index[b.session]]
        if b.request not in out and state.fits(request, session):
            state.add(request, session)
            out[b.request] = b.session
        elif b.locked:
            return None
    rest = [r for r in instance.requests if r.id not in out]
    if priority_order:
        rest.sort(key=lambda r: -r.priority)  # stable: file order within a priority
    else:
        rest = [r for r in rest if r.id not in booked]
    for request in rest:
        for sid in request.preferences:
            session = sessions[s_index[sid]]
            if state.fits(request, session):
                state.add(request, session)
                out[request.id] = sid
                break
    return list(out.items())


def justified_envy(
    instance: Instance, pairs: Iterable[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    """The justified-envy triples ``(r, r', s)`` of FORMAT §4 rule 9 in a valid assignment.

    ``r`` and ``r'`` have no booking, ``r'.priority < r.priority``, ``r'`` holds
    ``s``, ``r`` ranks ``s`` before its own session (any preference when
    unassigned), and the assignment with ``r'`` removed and ``r`` moved to
    ``s`` is valid. In request order of ``r``, then preference order, then
    request order of ``r'``.
    """
    sessions, s_index, r_index = instance.sessions, instance.session_index, instance.request_index
    assigned = {rid: sid for rid, sid in pairs}
    state = _Plain(instance)
    holders: dict[str, list[Request]] = defaultdict(list)
    for rid, sid in assigned.items():
        request = instance.requests[r_index[rid]]
        state.add(request, sessions[s_index[sid]])
        holders[sid].append(request)
    booked = {b.request for b in instance.bookings}
    out: list[tuple[str, str, str]] = []
    for r in instance.requests:
        if r.id in booked:
            continue
        own = assigned.get(r.id)
        better = r.preferences if own is None else r.preferences[: r.preferences.index(own)]
        envied = [
            (sid, rp)
            for sid in better
            for rp in holders.get(sid, ())
            if rp.priority < r.priority and rp.id not in booked
        ]
        if not envied:
            continue
        if own is not None:
            state.remove(r, sessions[s_index[own]])
        for sid, rp in envied:
            session = sessions[s_index[sid]]
            state.remove(rp, session)
            if state.fits(r, session):
                out.append((r.id, rp.id, sid))
            state.add(rp, session)
        if own is not None:
            state.add(r, sessions[s_index[own]])
    return out


def fairness_violations(instance: Instance, pairs: list[tuple[str, str]]) -> list[Violation]:
    """Violations of the fairness rules that are on (FORMAT §4 rules 8 and 9).

    Call on an assignment that breaks none of rules 1-7: rule 9's swap test
    assumes the assignment it starts from is valid.
    """
    policy = instance.policy
    found: list[Violation] = []
    if policy.group_floor:
        floor = fcfs_assignment(instance, priority_order=policy.envy_free)
        if floor is not None:
            got, want = group_places(instance, pairs), group_places(instance, floor)
            order = "priority order" if policy.envy_free else "file order"
            for g, n in want.items():
                if got[g] < n:
                    found.append(
                        Violation(
                            "8-group-floor",
                            f"Age group {g!r} gets {got[g]} child places, below the "
                            f"{n} of first-come-first-served ({order}).",
                        )
                    )
    if policy.envy_free:
        for r, rp, sid in justified_envy(instance, pairs):
            found.append(
                Violation(
                    "9-no-justified-envy",
                    f"Request {r!r} ranks session {sid!r} above its own place and could "
                    f"take it from request {rp!r} of lower priority.",
                    sessions=(sid,),
                    requests=(r, rp),
                )
            )
    return found


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
