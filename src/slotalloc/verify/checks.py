"""The validity rules 1-7 of FORMAT §2, checked plainly over the models.

Part of the independent verifier (:mod:`slotalloc.verify`): its own age rule
(:func:`age_in_months`), eligibility (:func:`eligible_group`), per-session
counts and per-child overlaps, sharing nothing with :mod:`slotalloc.rules` or
the compiler. :func:`check_assignment` lists every violation of an assignment;
:func:`locked_conflicts` the rules the locked bookings alone break.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from slotalloc.models import AgeGroup, Instance, Request, Session
from slotalloc.verify.report import VALIDITY_RULES, Violation

__all__ = ["age_in_months", "check_assignment", "eligible_group", "locked_conflicts"]

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
