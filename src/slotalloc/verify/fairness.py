"""The fairness part of FORMAT §4: the verifier's own first-come-first-served and measures.

Part of the independent verifier (:mod:`slotalloc.verify`): :func:`fcfs_assignment`,
:func:`group_places` and :func:`justified_envy` are computed here from the
models alone, and :func:`fairness_violations` checks rules 8 and 9 from them,
never from a solver's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from fractions import Fraction

from slotalloc.models import AgeGroup, Instance, Request, Session
from slotalloc.verify.checks import _group_for_age, age_in_months, eligible_group
from slotalloc.verify.report import Violation

__all__ = [
    "fairness_violations",
    "fcfs_assignment",
    "group_places",
    "home_groups",
    "justified_envy",
]

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
