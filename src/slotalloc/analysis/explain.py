"""Why did a family get no place? Every rule that blocks each preference.

For each unplaced request and each of its preferences, :func:`explain` names
every rule that stops the request from joining that session *in the given
solution* (FORMAT §2 rules 2-5), with the figures behind it, and says whether
the request could take the place by displacing lower-scoring requests.

Where places the request would need are held (a session-level blocker: the
session's places, an age group's cap or its caregivers), it also names the
*holders*, the placed requests whose children count in the limit that binds,
and why each may keep its place (:class:`Holder`): a booking, an equal or
higher priority, a rule a one-for-one swap would break, or, for a holder of
lower priority that the request could replace, the score (rule 9 off) or a
breach of rule 9 (justified envy, FORMAT §4).

Every check is one of :mod:`slotalloc.rules` (the compiler's arcs for
eligibility, :func:`~slotalloc.rules.session_excess` and
:func:`~slotalloc.rules.child_conflicts` for rules 3-5), and every blocker
names its rule by :class:`~slotalloc.rules.Rule`; the session and child
figures are counted from the solution's assignments.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance, Solution
from slotalloc.rules import (
    Rule,
    age_months,
    child_conflicts,
    group_at_age,
    ineligibility,
    session_excess,
)
from slotalloc.verify import fcfs_assignment, group_places, home_groups

__all__ = [
    "HOLDER_REASONS",
    "Blocker",
    "Holder",
    "HolderReason",
    "PreferenceExplanation",
    "RequestExplanation",
    "explain",
]

#: Why a holder may keep its place (:attr:`Holder.why`).
HolderReason = Literal["booking", "higher_priority", "equal_priority", "rule", "score", "envy"]
#: Every value of :data:`HolderReason`.
HOLDER_REASONS: tuple[HolderReason, ...] = (
    "booking",
    "higher_priority",
    "equal_priority",
    "rule",
    "score",
    "envy",
)


@dataclass(frozen=True)
class Blocker:
    """One rule that stops a request from joining a session.

    ``rule`` is :attr:`Rule.ELIGIBILITY`, :attr:`Rule.LOCKED`,
    :attr:`Rule.CAPACITY`, :attr:`Rule.GROUP_CAP`, :attr:`Rule.CAREGIVERS`,
    :attr:`Rule.OVERLAP` or :attr:`Rule.PER_CHILD_CAP` (a string enum: its
    value, e.g. ``"capacity"``, is what JSON carries).
    """

    rule: Rule
    message: str
    children: tuple[str, ...] = ()
    sessions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Holder:
    """A placed request that holds places an unplaced request would need, and why it may.

    Attributes
    ----------
    request
        The holder's id.
    priority
        The holder's priority (0-9).
    booked
        Whether the holder has a booking in the instance (locked or not).
    why
        Why it may keep its place, the first of these that applies:

        ``"booking"``
            it has a booking: a locked one must stay (rule 6), an unlocked one
            costs ``drop`` to lose, and rule 9 only compares requests that
            both have none;
        ``"higher_priority"`` / ``"equal_priority"``
            its priority is higher than, or equal to, the unplaced request's:
            no rule gives the place to the unplaced request;
        ``"rule"``
            it has lower priority, but swapping it for the unplaced request
            would break ``rules`` (rules 3-5, or rule 8 when the policy has
            ``group_floor``; with rule 9 on too, a swap that only rule 8
            forbids is ``"envy"``, rule 9's swap being judged by rules 1-7
            alone);
        ``"score"``
            the swap breaks no rule, but rule 9 does not apply (it is off, or
            the unplaced request has a booking): the score decides, and the
            message gives both places' score values;
        ``"envy"``
            the swap breaks no rule of 1-7 and rule 9 is on: this is justified
            envy, so the solution breaks rule 9 (a verified solution never
            has one).
    rules
        For ``"rule"`` the rules the swap would break; for ``"envy"``
        ``(Rule.NO_JUSTIFIED_ENVY,)``, the rule the solution breaks; else empty.
    message
        One plain sentence.
    """

    request: str
    priority: int
    booked: bool
    why: HolderReason
    message: str
    rules: tuple[Rule, ...] = ()


@dataclass(frozen=True)
class PreferenceExplanation:
    """What blocks one preference.

    ``displace`` lists requests whose removal frees it (and the score gained);
    ``holders`` the placed requests holding the places it would need, lower
    priorities without a booking first (the ones worth a look), then by
    priority and file order.
    """

    session: str
    rank: int
    blockers: tuple[Blocker, ...]
    displace: tuple[str, ...] | None = None
    displace_gain: int | None = None
    holders: tuple[Holder, ...] = ()


@dataclass(frozen=True)
class RequestExplanation:
    """Why an unplaced request is unplaced, preference by preference."""

    request: str
    children: tuple[str, ...]
    preferences: tuple[PreferenceExplanation, ...] = field(default_factory=tuple)

    @property
    def could_be_added(self) -> bool:
        """True when some preference has no blocker (the solution left it out)."""
        return any(not p.blockers for p in self.preferences)


class _Counts:
    """Per-session and per-child figures of an assignment (arcs of the compiled instance)."""

    def __init__(self, c: Compiled, arcs: Iterable[int]) -> None:
        self.c = c
        S, G = c.n_sessions, c.n_groups
        self.taken = [0] * S
        self.groups = [[0] * G for _ in range(S)]
        self.members: list[list[int]] = [[] for _ in range(S)]
        self.child_sessions: dict[int, list[tuple[int, int]]] = {}
        # Plain lists of what the holders look up per member: numpy scalar
        # indexing costs ~10x more, and a city has hundreds of thousands.
        self.req_of: list[int] = c.arc_req.tolist()
        self.priority: list[int] = c.req_priority.tolist()
        self.booked: list[int] = c.booked_session.tolist()
        for a in arcs:
            self.add(a)

    def _children(self, r: int) -> list[int]:
        c = self.c
        return c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()

    def add(self, a: int, sign: int = 1) -> None:
        c = self.c
        r, s = int(c.arc_req[a]), int(c.arc_sess[a])
        self.taken[s] += sign * int(c.req_size[r])
        for g, k in enumerate(c.arc_groups[a].tolist()):
            self.groups[s][g] += sign * k
        if sign > 0:
            self.members[s].append(a)
        else:
            self.members[s].remove(a)
        for ch in self._children(r):
            held = self.child_sessions.setdefault(ch, [])
            if sign > 0:
                held.append((s, r))
            else:
                held.remove((s, r))

    @contextmanager
    def without(self, a: int) -> Iterator[None]:
        """The counts with arc ``a`` taken out for the duration, restored as they were."""
        c = self.c
        s = int(c.arc_sess[a])
        members = list(self.members[s])
        held = {ch: list(self.child_sessions[ch]) for ch in self._children(int(c.arc_req[a]))}
        self.add(a, -1)
        try:
            yield
        finally:
            self.add(a, +1)
            # Restore the order too, so that messages do not depend on what was tried.
            self.members[s] = members
            self.child_sessions.update(held)

    def session_blockers(self, r: int, s: int) -> list[Blocker]:
        """Rule 3: what stops request ``r`` from joining session ``s`` as it stands."""
        return [b for _, b in self.session_excess(r, s)]

    def session_excess(self, r: int, s: int) -> list[tuple[int, Blocker]]:
        """:meth:`session_blockers`, each with its group (-1 but for a group's cap)."""
        c = self.c
        sid = c.session_ids[s]
        size = int(c.req_size[r])
        extra = _group_counts(c, r, s)
        have = self.groups[s]
        after = [n + k for n, k in zip(have, extra, strict=True)]
        joining = [g for g, k in enumerate(extra) if k]
        out: list[tuple[int, Blocker]] = []
        for rule, g in session_excess(c, s, self.taken[s] + size, after, joining):
            if rule is Rule.CAPACITY:
                message = (
                    f"{sid} has {self.taken[s]} of "
                    f"{int(c.capacity[s])} places taken; the request needs {size}"
                )
            elif rule is Rule.GROUP_CAP:
                message = (
                    f"{sid} has {have[g]} {c.group_names[g]} children of at most "
                    f"{int(c.group_cap[s, g])}; the request brings {extra[g]}"
                )
            else:
                need, scale = c.caregiver_need(after)
                shown = f"{need}/{scale}" if scale > 1 else str(need)
                message = f"{sid} would need {shown} caregivers; {int(c.caregivers[s])} are on duty"
            out.append((g, Blocker(rule, message, sessions=(sid,))))
        return out

    def child_blockers(self, r: int, s: int) -> list[Blocker]:
        """Rules 4 and 5: what stops the children of request ``r`` from joining session ``s``."""
        c = self.c
        out: list[Blocker] = []
        for ch in self._children(r):
            held = self.child_sessions.get(ch, [])
            cid = c.child_ids[ch]
            for rule, i in child_conflicts(c, s, [t for t, _ in held]):
                if rule is Rule.OVERLAP:
                    t, q = held[i]
                    out.append(
                        Blocker(
                            rule,
                            f"child {cid} already holds {c.session_ids[t]} (request "
                            f"{c.request_ids[q]}), which overlaps {c.session_ids[s]}",
                            children=(cid,),
                            sessions=(c.session_ids[t],),
                        )
                    )
                else:
                    out.append(
                        Blocker(
                            rule,
                            f"child {cid} already holds {len(held)} sessions, the most allowed",
                            children=(cid,),
                            sessions=tuple(c.session_ids[t] for t, _ in held),
                        )
                    )
        return out


def _ages(c: Compiled, r: int, s: int) -> list[tuple[int, int]]:
    """(child, age in months on the session's date) for each child of request ``r``."""
    sy, sm, sd = (int(v) for v in c.sess_date[s])
    out = []
    for ch in c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist():
        by, bm, bd = (int(v) for v in c.birth[ch])
        out.append((ch, age_months(by, bm, bd, sy, sm, sd)))
    return out


def _group_counts(c: Compiled, r: int, s: int) -> list[int]:
    """Children of request r per age group in session s (by age alone, as the verifier counts)."""
    counts = [0] * c.n_groups
    for _ch, a in _ages(c, r, s):
        g = group_at_age(a, c.month_group)
        if g >= 0:
            counts[g] += 1
    return counts


_WHY = {
    "unborn": "is not yet born",
    "age_range": "is {a} months old; the session takes [{lo}, {hi}) months",
    "no_group": "is {a} months old, in no age group of the policy",
}


def _ineligible(c: Compiled, instance: Instance, r: int, s: int) -> list[Blocker]:
    """Rule 2: a blocker per child of request ``r`` that session ``s`` does not admit."""
    sess = instance.sessions[s]
    lo, hi = int(c.min_months[s]), int(c.max_months[s])
    out: list[Blocker] = []
    for ch, a in _ages(c, r, s):
        reason = ineligibility(a, lo, hi, c.month_group)
        if reason is None:
            continue
        why = _WHY[reason].format(a=a, lo=lo, hi=hi)
        out.append(
            Blocker(
                Rule.ELIGIBILITY,
                f"child {c.child_ids[ch]} {why} on {sess.start.date().isoformat()}",
                children=(c.child_ids[ch],),
                sessions=(sess.id,),
            )
        )
    return out


def _displacement(counts: _Counts, a: int) -> tuple[tuple[str, ...], int] | None:
    """Lower-scoring requests in the session whose removal lets arc ``a`` in, if any."""
    c = counts.c
    r, s = int(c.arc_req[a]), int(c.arc_sess[a])
    # Placing a booked request also saves its drop cost.
    mine = int(c.arc_coef[a]) + int(c.drop_cost[r])
    # Removing a booked request costs its drop too; a locked one cannot be removed.
    candidates = sorted(
        (int(c.arc_coef[b]) + int(c.drop_cost[int(c.arc_req[b])]), b)
        for b in counts.members[s]
        if not c.locked[int(c.arc_req[b])]
    )
    removed: list[int] = []
    lost = 0
    for value, b in candidates:
        if lost + value >= mine:
            break
        counts.add(b, -1)
        removed.append(b)
        lost += value
        if not counts.session_blockers(r, s):
            break
    ok = bool(removed) and not counts.session_blockers(r, s)
    for b in removed:
        counts.add(b, +1)
    if not ok:
        return None
    return tuple(c.request_ids[int(c.arc_req[b])] for b in removed), mine - lost


class _Floor:
    """Rule 8 for one-for-one swaps: child places by home group against FCFS's.

    The floor is the verifier's own (:func:`slotalloc.verify.fcfs_assignment`
    and :func:`~slotalloc.verify.group_places`, in priority order when rule 9
    is on), so that explain keeps a holder for rule 8 exactly when the
    verifier would refuse the swap. It is computed at the first swap that
    needs it, once per :func:`explain` call.
    """

    def __init__(self, instance: Instance, pairs: list[tuple[str, str]]) -> None:
        self.instance = instance
        self.pairs = pairs
        self._floor: dict[str, int] | None = None
        self._places: dict[str, int] = {}
        self._home: dict[int, Counter[str]] = {}

    def home(self, r: int) -> Counter[str]:
        """Children of request ``r`` per home group (FORMAT §4)."""
        got = self._home.get(r)
        if got is None:
            groups = home_groups(self.instance, self.instance.requests[r])
            got = self._home[r] = Counter(g for g in groups if g is not None)
        return got

    def swap_breaks(self, out: int, into: int) -> str | None:
        """Why swapping request ``out`` for ``into`` breaks rule 8, or None if it does not.

        It breaks it when some age group the swap serves less ends below the
        floor (a group already below it in a hand-made solution is not
        blamed on the swap unless the swap lowers it further).
        """
        if self._floor is None:
            fcfs = fcfs_assignment(self.instance, priority_order=self.instance.policy.envy_free)
            # No FCFS means the locked bookings conflict: no solution, no floor.
            self._floor = {} if fcfs is None else group_places(self.instance, fcfs)
            self._places = group_places(self.instance, self.pairs)
        lose, gain = self.home(out), self.home(into)
        for g, k in lose.items():
            after = self._places[g] - k + gain[g]
            if after < self._places[g] and after < self._floor.get(g, 0):
                return (
                    f"age group {g} would get {after} child places, below the "
                    f"{self._floor[g]} of first-come-first-served"
                )
        return None


def _bound_members(counts: _Counts, s: int, excess: list[tuple[int, Blocker]]) -> list[int]:
    """Arcs placed in ``s`` whose children count in a limit of rule 3 that ``excess`` names.

    Every member for the places and the caregivers (every placed child is
    eligible, so counts in both); for a group's cap, the members with
    children in that group.
    """
    c = counts.c
    if any(b.rule is not Rule.GROUP_CAP for _, b in excess):
        return list(counts.members[s])
    capped = [g for g, _ in excess]
    return [b for b in counts.members[s] if any(c.arc_groups[b, g] for g in capped)]


def _holder(counts: _Counts, a: int, b: int, floor: _Floor | None, envy_free: bool) -> Holder:
    """Why the request of placed arc ``b`` may keep its place against the request of arc ``a``."""
    c = counts.c
    r, s, q = counts.req_of[a], int(c.arc_sess[a]), counts.req_of[b]
    rid, qid, sid = c.request_ids[r], c.request_ids[q], c.session_ids[s]
    pr, pq = counts.priority[r], counts.priority[q]
    booked = counts.booked[q] >= 0

    def holder(why: HolderReason, message: str, rules: tuple[Rule, ...] = ()) -> Holder:
        return Holder(qid, pq, booked, why, message, rules)

    if booked:
        if c.locked[q]:
            return holder("booking", f"{qid} holds a locked booking for {sid}, which must stay")
        t = counts.booked[q]
        held = (
            f"holds a booking for {sid}"
            if t == s
            else f"has a booking (for {c.session_ids[t]}, moved to {sid})"
        )
        return holder(
            "booking",
            f"{qid} {held}: dropping it costs {int(c.drop_cost[q])} in the score, "
            f"and rule 9 compares only requests without a booking",
        )
    if pq > pr:
        return holder("higher_priority", f"{qid} has priority {pq}, higher than {rid}'s {pr}")
    if pq == pr:
        return holder("equal_priority", f"{qid} has the same priority as {rid} ({pq})")
    # Lower priority, no booking: would the one-for-one swap be valid? The
    # request is unplaced, so only the holder's place changes hands.
    with counts.without(b):
        broken = counts.session_blockers(r, s) + counts.child_blockers(r, s)
    lower = f"{qid} has lower priority ({pq} < {rid}'s {pr})"
    own_booking = counts.booked[r] >= 0
    if envy_free and not broken and not own_booking:
        # Rule 9's swap is judged by rules 1-7 alone (FORMAT §4), so a floor
        # of rule 8 does not excuse it: say so, but name the breach.
        also = ""
        if floor is not None and (why_floor := floor.swap_breaks(q, r)) is not None:
            also = f" (rule 9 does not weigh that {why_floor})"
        return holder(
            "envy",
            f"{lower} and {rid} could take its place in {sid} breaking none of rules 1-7: "
            f"justified envy, so this solution breaks rule 9{also}",
            (Rule.NO_JUSTIFIED_ENVY,),
        )
    rules = tuple(dict.fromkeys(blocker.rule for blocker in broken))
    details = [blocker.message for blocker in broken[:1]]
    if floor is not None and (why_floor := floor.swap_breaks(q, r)) is not None:
        rules += (Rule.GROUP_FLOOR,)
        details.append(why_floor)
    if rules:
        return holder(
            "rule",
            f"{lower}, but swapping it for {rid} would break "
            f"{', '.join(rule.value for rule in rules)}: {'; '.join(details)}",
            rules,
        )
    mine, theirs = int(c.arc_coef[a]), int(c.arc_coef[b])
    # A booked request left out costs its drop, which placing it saves.
    gain = mine + int(c.drop_cost[r]) - theirs
    unranked = (
        f"{rid} has a booking, which rule 9 does not compare"
        if envy_free
        else "the policy does not rank by priority (rule 9 is off)"
    )
    return holder(
        "score",
        f"{lower} and {rid} could take its place, but {unranked}: the score decides, "
        f"and {qid}'s place scores {theirs} against {mine} for {rid} "
        f"(the swap would change the score by {gain:+d})",
    )


def _holders(
    counts: _Counts,
    a: int,
    excess: list[tuple[int, Blocker]],
    floor: _Floor | None,
    envy_free: bool,
) -> tuple[Holder, ...]:
    """Every holder of the places arc ``a`` would need (``excess``: what is exceeded).

    Lower priorities without a booking first, then by priority and file order.
    """
    req_of, priority, booked = counts.req_of, counts.priority, counts.booked
    pr = priority[req_of[a]]

    def order(b: int) -> tuple[bool, int, int]:
        q = req_of[b]
        movable = booked[q] < 0 and priority[q] < pr
        return (not movable, priority[q], q)

    members = _bound_members(counts, int(counts.c.arc_sess[a]), excess)
    return tuple(_holder(counts, a, b, floor, envy_free) for b in sorted(members, key=order))


def explain(
    instance: Instance,
    solution: Solution,
    requests: Iterable[str] | None = None,
    *,
    compiled: Compiled | None = None,
) -> list[RequestExplanation]:
    """Explain, for unplaced requests, every rule that blocks each preference.

    Each eligible preference held full by rule 3 (places, a group's cap or
    caregivers) also lists its holders (:class:`Holder`): the placed
    requests whose children count in the limit that binds, each with why it
    may keep its place. Only the members of those sessions are examined, and
    rule 8's first-come-first-served floor is computed at most once per call
    (when the policy has ``group_floor`` and some swap needs it).

    Parameters
    ----------
    instance, solution
        The instance and a valid solution of it (check it with :func:`slotalloc.verify`).
        Rules 1-7 are assumed; a solution that breaks rule 9 is explained,
        its justified envy named by holders with ``why="envy"``.
    requests
        Request ids to explain (placed ones get an empty explanation); all
        unplaced requests when None.
    compiled
        The compiled instance, when the caller already has it.

    Raises
    ------
    KeyError
        When a request id, or an assignment of the solution, is not in the instance.
    """
    c = compiled if compiled is not None else compile_instance(instance)
    arc_of = {
        (int(r), int(s)): a
        for a, (r, s) in enumerate(zip(c.arc_req.tolist(), c.arc_sess.tolist(), strict=True))
    }
    ridx, sidx = instance.request_index, instance.session_index
    chosen = [arc_of[(ridx[x.request], sidx[x.session])] for x in solution.assignments]
    placed = {ridx[x.request] for x in solution.assignments}
    counts = _Counts(c, chosen)
    pairs = [(x.request, x.session) for x in solution.assignments]
    floor = _Floor(instance, pairs) if instance.policy.group_floor else None
    envy_free = instance.policy.envy_free
    wanted = (
        [ridx[r] for r in requests]
        if requests is not None
        else [r for r in range(c.n_requests) if r not in placed]
    )
    out: list[RequestExplanation] = []
    for r in wanted:
        req = instance.requests[r]
        prefs: list[PreferenceExplanation] = []
        if r not in placed:
            for k, sname in enumerate(req.preferences):
                s = sidx[sname]
                a = arc_of.get((r, s))
                eligibility = [] if a is not None else _ineligible(c, instance, r, s)
                if a is None and not eligibility and c.locked[r]:
                    eligibility = [Blocker(Rule.LOCKED, f"{req.id} is locked elsewhere")]
                excess = counts.session_excess(r, s)
                session_level = [b for _, b in excess]
                child_level = counts.child_blockers(r, s)
                disp = None
                if a is not None and session_level and not child_level:
                    disp = _displacement(counts, a)
                holders = (
                    _holders(counts, a, excess, floor, envy_free)
                    if a is not None and excess
                    else ()
                )
                prefs.append(
                    PreferenceExplanation(
                        sname,
                        k,
                        tuple(eligibility + session_level + child_level),
                        displace=None if disp is None else disp[0],
                        displace_gain=None if disp is None else disp[1],
                        holders=holders,
                    )
                )
        out.append(RequestExplanation(req.id, req.children, tuple(prefs)))
    return out
