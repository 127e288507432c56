"""Why did a family get no place? Every rule that blocks each preference.

For each unplaced request and each of its preferences, :func:`explain` names
every rule that stops the request from joining that session *in the given
solution* (FORMAT §2 rules 2-5), with the figures behind it, and says whether
the request could take the place by displacing lower-scoring requests.

Every check is one of :mod:`slotalloc.rules` (the compiler's arcs for
eligibility, :func:`~slotalloc.rules.session_excess` and
:func:`~slotalloc.rules.child_conflicts` for rules 3-5), and every blocker
names its rule by :class:`~slotalloc.rules.Rule`; the session and child
figures are counted from the solution's assignments.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

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

__all__ = ["Blocker", "PreferenceExplanation", "RequestExplanation", "explain"]


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
class PreferenceExplanation:
    """What blocks one preference; ``displace`` lists requests whose removal frees it."""

    session: str
    rank: int
    blockers: tuple[Blocker, ...]
    displace: tuple[str, ...] | None = None
    displace_gain: int | None = None


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

    def session_blockers(self, r: int, s: int) -> list[Blocker]:
        """Rule 3: what stops request ``r`` from joining session ``s`` as it stands."""
        c = self.c
        sid = c.session_ids[s]
        size = int(c.req_size[r])
        extra = _group_counts(c, r, s)
        have = self.groups[s]
        after = [n + k for n, k in zip(have, extra, strict=True)]
        joining = [g for g, k in enumerate(extra) if k]
        out: list[Blocker] = []
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
            out.append(Blocker(rule, message, sessions=(sid,)))
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


def explain(
    instance: Instance,
    solution: Solution,
    requests: Iterable[str] | None = None,
    *,
    compiled: Compiled | None = None,
) -> list[RequestExplanation]:
    """Explain, for unplaced requests, every rule that blocks each preference.

    Parameters
    ----------
    instance, solution
        The instance and a valid solution of it (check it with :func:`slotalloc.verify`).
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
                session_level = counts.session_blockers(r, s)
                child_level = counts.child_blockers(r, s)
                disp = None
                if a is not None and session_level and not child_level:
                    disp = _displacement(counts, a)
                prefs.append(
                    PreferenceExplanation(
                        sname,
                        k,
                        tuple(eligibility + session_level + child_level),
                        displace=None if disp is None else disp[0],
                        displace_gain=None if disp is None else disp[1],
                    )
                )
        out.append(RequestExplanation(req.id, req.children, tuple(prefs)))
    return out
