"""The rules of FORMAT §2 and §4: their names, and the one home of their checks.

Everything outside the verifier that decides a rule calls this module; the
solver's row modules (:mod:`slotalloc.solver.rows`) state the same rules as
linear constraints, and the verifier (:mod:`slotalloc.verify`) keeps its own
plain copy on purpose, so that a slip here cannot hide from it.

* :class:`Rule` is the one spelling of a rule in messages, explanations,
  online outcomes and infeasibility reports: its value is what JSON and HTTP
  carry (``"capacity"``), :attr:`Rule.number` its number in FORMAT.md and
  :attr:`Rule.code` the verifier's label (``"3-capacity"``).
* Rule 2, eligibility: :func:`age_months` (FORMAT §1), :func:`month_groups`
  (a policy's group of every age), :func:`group_at_age`, the vectorised
  :func:`groups_of` on :class:`~slotalloc.compile.Compiled` arrays and its
  scalar wrapper :func:`group_of`, and :func:`ineligibility` (why not).
* Rule 3, a session's children: :func:`caregiver_need` (``per_group``:
  ``sum_g ceil(n_g / ratio_g)``; ``pooled``: the exact ``sum_g n_g / ratio_g``,
  kept as an integer times :func:`pool_scale`), :func:`group_need`,
  :func:`pooled_weights`, :func:`group_room`, :func:`ceil_div`, the vectorised
  :func:`over_session_limits`, and :func:`session_excess` /
  :func:`session_fits` for one session of a compiled instance.
* Rules 4-5, a child's sessions: :func:`overlap`, :func:`sessions_overlap`,
  :func:`child_cap_exceeded`, :func:`child_cap_allows` and
  :func:`child_conflicts`.
* :class:`Occupancy` answers "can these children join this session now?"
  (rules 3-5) incrementally, for first-come-first-served, the online engine
  and the solver's repairs (LP rounding, the group-fairness refill).

Every function takes integers (Python or numpy) and keeps them integers: a
pooled need is compared as ``need <= caregivers * scale``, never as a float.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray

if TYPE_CHECKING:
    from slotalloc.compile import Compiled
    from slotalloc.models import AgeGroup

__all__ = [
    "Occupancy",
    "Rule",
    "age_months",
    "caregiver_need",
    "ceil_div",
    "child_cap_allows",
    "child_cap_exceeded",
    "child_conflicts",
    "group_at_age",
    "group_need",
    "group_of",
    "group_room",
    "groups_of",
    "ineligibility",
    "month_groups",
    "over_session_limits",
    "overlap",
    "pool_scale",
    "pooled_weights",
    "session_excess",
    "session_fits",
    "sessions_overlap",
]

BoolArray = npt.NDArray[np.bool_]

_NO_LIMIT = 1 << 62


# ---------------------------------------------------------------- names


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

    @property
    def conflict_label(self) -> str:
        """The rule as an infeasibility ``explanation`` of a solution file names it.

        Its value, except rule 5, which those files name by its policy key
        ``max_sessions_per_child``: written files keep the word they always had.
        """
        return "max_sessions_per_child" if self is Rule.PER_CHILD_CAP else self.value

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


# ---------------------------------------------------------------- rule 2: eligibility


def age_months(by: Any, bm: Any, bd: Any, sy: Any, sm: Any, sd: Any) -> Any:
    """Age in completed months, exactly as FORMAT §1 defines it.

    Works on Python ints and on numpy arrays alike, so the compiler (vectorised)
    and the online engine (one child at a time) share one formula. Negative
    before birth.
    """
    return (sy - by) * 12 + (sm - bm) - (sd < bd) * 1


def month_groups(groups: Sequence[AgeGroup]) -> IntArray:
    """A policy's age group of every age in months, ``-1`` where none takes it.

    Indexed ``0 .. max(max_months) - 1``; the groups do not overlap (the policy
    is validated), so each age has at most one.
    """
    top = max(g.max_months for g in groups)
    month_group = np.full(top, -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        month_group[g.min_months : g.max_months] = gi
    return month_group


def group_at_age(age: Any, month_group: IntArray) -> Any:
    """The policy's age group of an age in months, by age alone (``-1``: in none).

    Takes an ``int`` (returns an ``int``) or an integer array (returns one of
    the same shape). No session's age range is applied: see :func:`groups_of`.
    """
    top = month_group.shape[0]
    if isinstance(age, np.ndarray):
        inside = (age >= 0) & (age < top)
        g = np.full(age.shape, -1, dtype=np.int64)
        g[inside] = month_group[age[inside]]
        return g
    return int(month_group[age]) if 0 <= age < top else -1


def groups_of(
    birth: IntArray, sess_date: IntArray, lo: IntArray, hi: IntArray, month_group: IntArray
) -> IntArray:
    """Rule 2, vectorised: each child's age group in each session, ``-1`` when ineligible.

    Row ``i`` pairs a child born ``birth[i]`` (year, month, day) with a session
    starting on ``sess_date[i]`` (its own offset's calendar date) that takes
    ages ``[lo[i], hi[i])``: the child is eligible when its age (FORMAT §1) is
    in that range and in a group of the policy (``month_group``, from
    :func:`month_groups`). The arrays are those of
    :class:`~slotalloc.compile.Compiled`, indexed by row.
    """
    a = age_months(
        birth[:, 0], birth[:, 1], birth[:, 2], sess_date[:, 0], sess_date[:, 1], sess_date[:, 2]
    )
    inside = (a >= lo) & (a < hi) & (a >= 0) & (a < month_group.shape[0])
    g = np.full(a.shape, -1, dtype=np.int64)
    g[inside] = month_group[a[inside]]
    return g


def group_of(c: Compiled, birth: dt.date, session: int) -> int:
    """The age group of a child born on ``birth`` in ``session``, or -1 if ineligible.

    One row of :func:`groups_of`.
    """
    s = slice(session, session + 1)
    row = np.array([[birth.year, birth.month, birth.day]], dtype=np.int64)
    return int(groups_of(row, c.sess_date[s], c.min_months[s], c.max_months[s], c.month_group)[0])


def ineligibility(
    age: int, lo: int, hi: int, month_group: IntArray
) -> Literal["unborn", "age_range", "no_group"] | None:
    """Why rule 2 keeps a child of ``age`` months out of a session taking ``[lo, hi)``.

    ``"unborn"`` (a negative age), ``"age_range"`` (outside the session's
    range), ``"no_group"`` (in no group of the policy), in that order of
    precedence; None when the child is eligible (as :func:`groups_of` decides).
    """
    if age < 0:
        return "unborn"
    if not lo <= age < hi:
        return "age_range"
    if group_at_age(age, month_group) < 0:
        return "no_group"
    return None


# ---------------------------------------------------------------- rule 3: a session's children


def pool_scale(ratio: Iterable[int]) -> int:
    """The common multiple ``L`` of the ratios: a pooled need is an integer times ``1 / L``."""
    return math.lcm(*(int(r) for r in ratio))


def ceil_div(a: Any, b: Any) -> Any:
    """``ceil(a / b)`` in integers (``b > 0``), elementwise on arrays: every need rounds so."""
    return -(-a // b)


def group_need(n: Any, ratio: Any) -> Any:
    """Caregivers ``n`` children of a group need under ``per_group`` staffing: ``ceil(n / ratio)``.

    Elementwise on integers or integer arrays.
    """
    return ceil_div(n, ratio)


def pooled_weights(ratio: Any, pool_lcm: int) -> Any:
    """Each group's share of one caregiver under ``pooled`` staffing, times ``pool_lcm``.

    ``L / ratio_g``: one child of group ``g`` adds it to a session's scaled need.
    """
    return pool_lcm // ratio


def group_room(caregivers: Any, ratio: Any) -> Any:
    """Most children of each group its own caregivers may look after (``per_group``).

    ``ratio_g * y_g``: the inverse of :func:`group_need` (``n <= ratio * y``
    exactly when ``group_need(n, ratio) <= y``).
    """
    return ratio * caregivers


def caregiver_need(counts: Iterable[Any], ratio: Sequence[int], pool_lcm: int = 0) -> Any:
    """Caregivers a session needs for ``counts`` children per group (rule 3).

    ``counts`` holds one count per group, in group order: Python ints (the
    answer is an ``int``) or arrays of one shape (the answer is elementwise,
    e.g. ``np.indices(dims)`` or ``n.T`` for an ``[S, G]`` table). With
    ``pool_lcm == 0`` staffing is ``per_group``: ``sum_g ceil(n_g / ratio_g)``;
    otherwise ``pooled``, and the need is ``sum_g n_g * (pool_lcm / ratio_g)``,
    the exact figure times ``pool_lcm``: compare it with
    ``caregivers * pool_lcm``.
    """
    if pool_lcm:
        return sum(n * (pool_lcm // r) for n, r in zip(counts, ratio, strict=True))
    return sum(ceil_div(n, r) for n, r in zip(counts, ratio, strict=True))


def over_session_limits(
    counts: IntArray, capacity: int, caregivers: int, ratio: Sequence[int], pool_lcm: int = 0
) -> BoolArray:
    """Vectorised rule 3 without the group caps: which count vectors a session cannot take.

    ``counts[g]`` is an array of group ``g``'s counts (group axis first, e.g.
    ``np.indices(dims)``); true where the total exceeds ``capacity`` or the
    need (:func:`caregiver_need`) exceeds the ``caregivers``.
    """
    bad: BoolArray = counts.sum(axis=0) > capacity
    bad |= caregiver_need(counts, ratio, pool_lcm) > caregivers * (pool_lcm or 1)
    return bad


def _staffing(c: Compiled) -> tuple[list[int], int]:
    return c.ratio.tolist(), c.pool_lcm if c.pooled else 0


def session_excess(
    c: Compiled,
    s: int,
    total: int,
    counts: Sequence[int],
    joining: Iterable[int] | None = None,
) -> list[tuple[Rule, int]]:
    """Every limit of rule 3 that session ``s`` exceeds with these children.

    Parameters
    ----------
    c
        The compiled instance.
    s
        The session.
    total
        Children in the session (eligible or not: every child takes a place).
    counts
        Children per age group.
    joining
        The groups whose caps to check (those of the children joining); all
        groups when None.

    Returns
    -------
    list of (Rule, int)
        ``(Rule.CAPACITY, -1)``, then ``(Rule.GROUP_CAP, g)`` per group over
        its cap, then ``(Rule.CAREGIVERS, -1)``, in that order (the
        verifier's); empty when the session may hold them all.
    """
    out: list[tuple[Rule, int]] = []
    if total > c.capacity[s]:
        out.append((Rule.CAPACITY, -1))
    caps = c.group_cap[s].tolist()
    for g in range(len(caps)) if joining is None else joining:
        if counts[g] > caps[g]:
            out.append((Rule.GROUP_CAP, g))
    ratio, pool_lcm = _staffing(c)
    if caregiver_need(counts, ratio, pool_lcm) > int(c.caregivers[s]) * (pool_lcm or 1):
        out.append((Rule.CAREGIVERS, -1))
    return out


def session_fits(c: Compiled, s: int, total: int, counts: Sequence[int]) -> bool:
    """Whether session ``s`` may hold ``total`` children, ``counts`` per group (rule 3)."""
    return not session_excess(c, s, total, counts)


# ---------------------------------------------------------------- rules 4-5: a child's sessions


def overlap(start_a: Any, end_a: Any, start_b: Any, end_b: Any) -> Any:
    """Whether two half-open intervals ``[start, end)`` share an instant (rule 4).

    Touching intervals do not overlap; a session overlaps itself. Elementwise
    on arrays.
    """
    return (start_a < end_b) & (start_b < end_a)


def sessions_overlap(c: Compiled, s: int, t: int) -> bool:
    """Whether sessions ``s`` and ``t`` overlap in time (the same session does)."""
    return bool(overlap(c.start[s], c.end[s], c.start[t], c.end[t]))


def child_cap_exceeded(n: int, cap: int) -> bool:
    """Whether ``n`` sessions of one child break rule 5 (``cap`` 0: no limit)."""
    return cap > 0 and n > cap


def child_cap_allows(held: int, cap: int) -> bool:
    """Whether a child already in ``held`` sessions may join one more (rule 5)."""
    return not child_cap_exceeded(held + 1, cap)


def child_conflicts(c: Compiled, s: int, held: Sequence[int]) -> list[tuple[Rule, int]]:
    """What stops a child already in sessions ``held`` from joining session ``s`` too.

    Returns
    -------
    list of (Rule, int)
        ``(Rule.OVERLAP, i)`` for each ``held[i]`` overlapping ``s``, then
        ``(Rule.PER_CHILD_CAP, -1)`` when the child holds the most sessions
        allowed; empty when it may join.
    """
    out = [(Rule.OVERLAP, i) for i, t in enumerate(held) if sessions_overlap(c, s, t)]
    if not child_cap_allows(len(held), c.max_sessions_per_child):
        out.append((Rule.PER_CHILD_CAP, -1))
    return out


# ---------------------------------------------------------------- rules 3-5, incrementally


class Occupancy:
    """Places taken, by session and by child, with caregiver need kept up to date.

    Per session it keeps the children placed by age group and the caregivers
    they need, and per child the sessions it is in, so that "can these
    children join this session now?" (rules 3-5) costs O(children x their
    sessions), never O(sessions). Eligibility (rule 2) is decided beforehand
    (:func:`groups_of`).

    Caregiver need is kept incrementally, never recomputed: with ``per_group``
    staffing a session's need is ``sum_g ceil(n_g / ratio_g)`` and adding ``k``
    children of group ``g`` changes only that group's term, by
    ``ceil((n_g + k) / r) - ceil(n_g / r)``; with ``pooled`` staffing the need
    is kept exactly as the integer ``sum_g n_g * (L / ratio_g)`` with ``L``
    the lcm of the ratios (and compared with ``caregivers * L``), so a group
    of ``k`` changes it by the constant ``k * L / ratio_g``. This is
    :func:`caregiver_need` taken apart, inlined on purpose: the online engine's
    admission path runs it once per preference tried, and plain Python lists
    and integers cost less there than numpy scalars or a call per group.

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
        "group_cap",
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
        return self.broken_rule(s, size, groups, children) is None

    def refusal(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> Rule:
        """The rule that refuses these children in ``s`` now (they must not fit).

        :meth:`broken_rule`, with a fast path for the online engine's usual
        waitlisted book, one child that rule 3 refuses: the kept counts tell
        which limit without the full check (measured 2 µs a waitlisted book
        for :meth:`broken_rule` on a city).
        """
        if len(groups) == 1 and groups[0][1] == 1 and not self.open[s * self._G + groups[0][0]]:
            g = groups[0][0]
            if self.taken[s] >= self._cap[s]:
                return Rule.CAPACITY
            if self.group_taken[s][g] >= self._group_cap[s][g]:
                return Rule.GROUP_CAP
            return Rule.CAREGIVERS
        return self.broken_rule(s, size, groups, children) or Rule.CAPACITY

    def broken_rule(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> Rule | None:
        """The first of rules 3-5 that placing these children in ``s`` would break, or None.

        In the verifier's order: :attr:`Rule.CAPACITY`, :attr:`Rule.GROUP_CAP`,
        :attr:`Rule.CAREGIVERS`, then per child :attr:`Rule.OVERLAP` and
        :attr:`Rule.PER_CHILD_CAP`, so that callers can say why a place is not
        valid.
        """
        if self.taken[s] + size > self._cap[s]:
            return Rule.CAPACITY
        gt = self.group_taken[s]
        caps = self._group_cap[s]
        for g, k in groups:
            if gt[g] + k > caps[g]:
                return Rule.GROUP_CAP
        if self.need[s] + self._need_delta(s, groups) > self._caregivers_scaled[s]:
            return Rule.CAREGIVERS
        start, end = self._start, self._end
        s0, s1 = start[s], end[s]
        for ch in children:
            held = self.child_sessions.get(ch)
            if held:
                for t in held:
                    if start[t] < s1 and s0 < end[t]:
                        return Rule.OVERLAP
                if len(held) >= self._max_per_child:
                    return Rule.PER_CHILD_CAP
        return None

    def violation(
        self, s: int, size: int, groups: Sequence[tuple[int, int]], children: Sequence[int]
    ) -> str | None:
        """:meth:`broken_rule` as the verifier labels it (``"3-capacity"``), or None.

        The label (:attr:`Rule.code`) is what the online engine's messages
        print and what it maps to a :class:`Rule`; :meth:`broken_rule` gives
        the :class:`Rule` itself.
        """
        rule = self.broken_rule(s, size, groups, children)
        return None if rule is None else rule.code

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
