"""The rules of FORMAT §2 and §4: their names, and the one home of their checks.

:class:`Rule` is the one spelling of a rule in messages, explanations, online
outcomes and infeasibility reports: its value is what JSON and HTTP carry
(``"capacity"``), :attr:`Rule.number` its number in FORMAT.md and
:attr:`Rule.code` the verifier's label (``"3-capacity"``).

:class:`Occupancy` answers "can these children join this session now?" (rules
3-5) incrementally, for first-come-first-served, the online engine, the
explanations and every other caller outside the solver's row modules (which
state the rules as constraints) and the verifier (which keeps its own plain
copy on purpose).

:class:`Occupancy` keeps, per session, the children placed by age group and the
caregivers they need, and per child the sessions it is in, so that the question
"can these children join this session now?" (FORMAT §2 rules 3-5) costs
O(children x their sessions), never O(sessions). First-come-first-served and
the online engine both stand on it; eligibility (rule 2) is decided by the
compiler beforehand.

Plain Python lists on purpose: on this hot path numpy scalars cost more than
they save.

Caregiver need is kept incrementally, never recomputed: with ``per_group``
staffing a session's need is ``sum_g ceil(n_g / ratio_g)`` and adding ``k``
children of group ``g`` changes only that group's term, by
``ceil((n_g + k) / r) - ceil(n_g / r)``; with ``pooled`` staffing the need is
kept exactly as the integer ``sum_g n_g * (L / ratio_g)`` with ``L`` the lcm of
the ratios (and compared with ``caregivers * L``), so a group of ``k`` changes it
by the constant ``k * L / ratio_g``.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from slotalloc.compile import Compiled

__all__ = ["Occupancy", "Rule"]

_NO_LIMIT = 1 << 62


class Occupancy:
    """Places taken, by session and by child, with caregiver need kept up to date.

    Parameters
    ----------
    compiled
        The compiled instance: it fixes sessions, ratios and the per-child cap.
    """

    __slots__ = (
        "_G",
        "_cap",
        "_caregivers_scaled",
        "_end",
        "_group_cap",
        "_max_per_child",
        "_pool_weight",
        "_pooled",
        "_ratio",
        "_scale",
        "_start",
        "capacity",
        "child_sessions",
        "group_taken",
        "need",
        "open",
        "taken",
    )

    def __init__(self, compiled: Compiled) -> None:
        c = compiled
        self._pooled: bool = c.pooled
        self._ratio: list[int] = c.ratio.tolist()
        # Pooled need sum(n_g / ratio_g) is kept exactly as an integer times lcm(ratios).
        self._scale: int = c.pool_lcm if c.pooled else 1
        self._pool_weight: list[int] = [self._scale // r for r in self._ratio]
        self._cap: list[int] = c.capacity.tolist()
        #: places per session (read-only: callers may pre-check ``taken[s] < capacity[s]``)
        self.capacity = self._cap
        self._caregivers_scaled: list[int] = (c.caregivers * self._scale).tolist()
        self._group_cap: list[list[int]] = c.group_cap.tolist()
        self._start: list[int] = c.start.tolist()
        self._end: list[int] = c.end.tolist()
        self._max_per_child: int = c.max_sessions_per_child or _NO_LIMIT
        S, G = c.n_sessions, c.n_groups
        self.taken: list[int] = [0] * S
        self.group_taken: list[list[int]] = [[0] * G for _ in range(S)]
        #: caregivers needed per session (times lcm(ratios) when pooled)
        self.need: list[int] = [0] * S
        self.child_sessions: dict[int, list[int]] = {}
        self._G = G
        #: ``open[s * G + g]``: whether one more child of group ``g`` fits session ``s`` by
        #: rule 3 (:meth:`room_for_one`), kept up to date on every change of ``s``.
        self.open: list[bool] = [False] * (S * G)
        for s in range(S):
            self._refresh(s)

    def _refresh(self, s: int) -> None:
        """Recompute ``open`` for session ``s`` (O(groups), after each change of ``s``)."""
        G = self._G
        base = s * G
        op = self.open
        if self.taken[s] >= self._cap[s]:
            for g in range(G):
                op[base + g] = False
            return
        gt = self.group_taken[s]
        caps = self._group_cap[s]
        slack = self._caregivers_scaled[s] - self.need[s]
        if self._pooled:
            w = self._pool_weight
            for g in range(G):
                op[base + g] = gt[g] < caps[g] and w[g] <= slack
        else:
            ratio = self._ratio
            for g in range(G):
                n = gt[g]
                # one more child needs a new caregiver exactly when n is a multiple of the ratio
                op[base + g] = n < caps[g] and (slack >= 1 or n % ratio[g] != 0)

    def _need_delta(self, s: int, groups: Sequence[tuple[int, int]]) -> int:
        """Change in caregiver need if ``groups`` ((group, count) pairs) join session s."""
        delta = 0
        if self._pooled:
            w = self._pool_weight
            for g, k in groups:
                delta += k * w[g]
        else:
            gt = self.group_taken[s]
            ratio = self._ratio
            for g, k in groups:
                r = ratio[g]
                n = gt[g]
                delta += (n + k + r - 1) // r - (n + r - 1) // r
        return delta

    def fits(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> bool:
        """Whether these eligible children may all join session ``s`` now (rules 3-5)."""
        return self.violation(s, size, groups, children) is None

    def violation(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> str | None:
        """The first of rules 3-5 that placing these children in ``s`` would break, or None.

        The answer names the rule (``"3-capacity"``, ``"3-group-cap"``,
        ``"3-caregivers"``, ``"4-overlap"``, ``"5-per-child-cap"``) so that callers
        can say why a place already held is not valid.
        """
        if self.taken[s] + size > self._cap[s]:
            return "3-capacity"
        gt = self.group_taken[s]
        caps = self._group_cap[s]
        for g, k in groups:
            if gt[g] + k > caps[g]:
                return "3-group-cap"
        if self.need[s] + self._need_delta(s, groups) > self._caregivers_scaled[s]:
            return "3-caregivers"
        start, end = self._start, self._end
        s0, s1 = start[s], end[s]
        for ch in children:
            held = self.child_sessions.get(ch)
            if held:
                for t in held:
                    if start[t] < s1 and s0 < end[t]:
                        return "4-overlap"
                if len(held) >= self._max_per_child:
                    return "5-per-child-cap"
        return None

    def try_add(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> bool:
        """Place the children in ``s`` if that breaks none of rules 3-5; say whether it did.

        One call instead of :meth:`fits` then :meth:`add`: the online engine's
        admission path runs this once per preference tried, so the caregiver
        delta is computed once and the attribute look-ups are shared.
        """
        taken = self.taken
        t = taken[s] + size
        if t > self._cap[s]:
            return False
        gt = self.group_taken[s]
        caps = self._group_cap[s]
        delta = 0
        if self._pooled:
            w = self._pool_weight
            for g, k in groups:
                if gt[g] + k > caps[g]:
                    return False
                delta += k * w[g]
        else:
            ratio = self._ratio
            for g, k in groups:
                n = gt[g]
                if n + k > caps[g]:
                    return False
                r = ratio[g]
                delta += (n + k + r - 1) // r - (n + r - 1) // r
        need = self.need
        if need[s] + delta > self._caregivers_scaled[s]:
            return False
        cs = self.child_sessions
        if cs:
            start, end = self._start, self._end
            s0, s1 = start[s], end[s]
            cap_child = self._max_per_child
            for ch in children:
                held = cs.get(ch)
                if held:
                    if len(held) >= cap_child:
                        return False
                    for u in held:
                        if start[u] < s1 and s0 < end[u]:
                            return False
        need[s] += delta
        taken[s] = t
        for g, k in groups:
            gt[g] += k
        for ch in children:
            held = cs.get(ch)
            if held is None:
                cs[ch] = [s]
            else:
                held.append(s)
        self._refresh(s)
        return True

    def add(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> None:
        """Place the children in session ``s`` (the caller checked :meth:`fits`)."""
        self.need[s] += self._need_delta(s, groups)
        self.taken[s] += size
        gt = self.group_taken[s]
        for g, k in groups:
            gt[g] += k
        cs = self.child_sessions
        for ch in children:
            held = cs.get(ch)
            if held is None:
                cs[ch] = [s]
            else:
                held.append(s)
        self._refresh(s)

    def remove(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> None:
        """Free the places these children hold in session ``s``."""
        gt = self.group_taken[s]
        for g, k in groups:
            gt[g] -= k
        # With the counts already lowered, the delta of adding them back is what leaves.
        self.need[s] -= self._need_delta(s, groups)
        self.taken[s] -= size
        cs = self.child_sessions
        for ch in children:
            held = cs[ch]
            held.remove(s)
            if not held:
                del cs[ch]
        self._refresh(s)

    def room_for_one(self, s: int, g: int) -> bool:
        """Whether one more child of group ``g`` could join session ``s`` (rule 3 only).

        Every rule-3 quantity only grows with the children added, so when this is
        false no set of children including one of group ``g`` fits ``s``: the
        online engine uses it to skip session ``s`` for that group.
        """
        return self.open[s * self._G + g]


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
