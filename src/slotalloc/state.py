"""Incremental feasibility of a growing and shrinking assignment.

:class:`Occupancy` keeps, per session, the children placed by age group and the
caregivers they need, and per child the sessions it is in, so that the question
"can these children join this session now?" (FORMAT §2 rules 3-5) costs
O(children x their sessions), never O(sessions). First-come-first-served and
the online engine both stand on it; eligibility (rule 2) is decided by the
compiler beforehand.

Plain Python lists on purpose: on this hot path numpy scalars cost more than
they save.
"""

from __future__ import annotations

from collections.abc import Sequence

from slotalloc.compile import Compiled

__all__ = ["Occupancy"]


class Occupancy:
    """Places taken, by session and by child, with caregiver need kept up to date.

    Parameters
    ----------
    compiled
        The compiled instance: it fixes sessions, ratios and the per-child cap.
    """

    __slots__ = (
        "_cap",
        "_caregivers_scaled",
        "_end",
        "_group_cap",
        "_max_per_child",
        "_pooled",
        "_ratio",
        "_scale",
        "_start",
        "child_sessions",
        "group_taken",
        "need",
        "taken",
    )

    def __init__(self, compiled: Compiled) -> None:
        c = compiled
        self._pooled = c.pooled
        self._ratio: list[int] = c.ratio.tolist()
        # Pooled need sum(n_g / ratio_g) is kept exactly as an integer times lcm(ratios).
        self._scale = c.pool_lcm if c.pooled else 1
        self._cap: list[int] = c.capacity.tolist()
        self._caregivers_scaled: list[int] = (c.caregivers * self._scale).tolist()
        self._group_cap: list[list[int]] = c.group_cap.tolist()
        self._start: list[int] = c.start.tolist()
        self._end: list[int] = c.end.tolist()
        self._max_per_child = c.max_sessions_per_child or (1 << 62)
        S, G = c.n_sessions, c.n_groups
        self.taken = [0] * S
        self.group_taken = [[0] * G for _ in range(S)]
        #: caregivers needed per session (times lcm(ratios) when pooled)
        self.need = [0] * S
        self.child_sessions: dict[int, list[int]] = {}

    def _need_delta(self, s: int, groups: Sequence[tuple[int, int]]) -> int:
        """Change in caregiver need if ``groups`` ((group, count) pairs) join session s."""
        gt = self.group_taken[s]
        delta = 0
        if self._pooled:
            scale = self._scale
            for g, k in groups:
                delta += k * (scale // self._ratio[g])
        else:
            for g, k in groups:
                r = self._ratio[g]
                n = gt[g]
                delta += -(-(n + k) // r) - (-(-n // r))
        return delta

    def fits(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> bool:
        """Whether these eligible children may all join session ``s`` now (rules 3-5)."""
        if self.taken[s] + size > self._cap[s]:
            return False
        gt = self.group_taken[s]
        caps = self._group_cap[s]
        for g, k in groups:
            if gt[g] + k > caps[g]:
                return False
        if self.need[s] + self._need_delta(s, groups) > self._caregivers_scaled[s]:
            return False
        start, end = self._start, self._end
        s0, s1 = start[s], end[s]
        for ch in children:
            held = self.child_sessions.get(ch)
            if held:
                if len(held) >= self._max_per_child:
                    return False
                for t in held:
                    if start[t] < s1 and s0 < end[t]:
                        return False
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
