"""Compile a validated :class:`~slotalloc.models.Instance` into integer arrays.

This is the one place where the solvers and the online engine decide
eligibility (who may go where, in which age group). Everything downstream works
on :class:`Compiled`: read-only numpy arrays indexed by position.

Vocabulary
----------
* A *candidate arc* ``a`` is a pair (request, preference) whose children are all
  eligible for the session. Arcs are sorted by request, then by rank, so the
  arcs of request ``r`` are ``req_arc_ptr[r]:req_arc_ptr[r + 1]``.
* ``arc_coef[a]`` is what assigning the arc adds to the FORMAT §2 score, the
  move cost included; ``drop_cost[r]`` is what leaving a booked request
  unassigned costs. So ``score = arc_coef @ x - drop_cost @ (1 - placed)``.
* Time overlaps: ``cliques`` are the maximal sets of sessions that all overlap
  each other (the interval graph's maximal cliques, a session with itself
  included); a child may be in at most one arc of each clique.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc.models import Instance

__all__ = [
    "Compiled",
    "age_months",
    "compile_instance",
    "group_of",
]

IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def age_months(by: Any, bm: Any, bd: Any, sy: Any, sm: Any, sd: Any) -> Any:
    """Age in completed months, exactly as FORMAT §1 defines it.

    Works on Python ints and on numpy arrays alike, so the compiler (vectorised)
    and the online engine (one child at a time) share one formula.
    """
    return (sy - by) * 12 + (sm - bm) - (sd < bd) * 1


def _frozen(a: npt.ArrayLike, dtype: Any = np.int64) -> Any:
    arr = np.ascontiguousarray(a, dtype=dtype)
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class Compiled:
    """An instance as read-only integer arrays. Build it with :func:`compile_instance`."""

    # policy
    group_names: tuple[str, ...]
    ratio: IntArray  # [G]
    month_group: IntArray  # [M] age in months -> group index, -1 when in no group
    pooled: bool
    max_sessions_per_child: int  # 0 when there is no limit
    # objective
    w_serve: int
    w_priority: int
    w_rank: int
    w_move: int
    w_drop: int
    # sessions [S]
    session_ids: tuple[str, ...]
    capacity: IntArray
    caregivers: IntArray
    group_cap: IntArray  # [S, G]
    min_months: IntArray
    max_months: IntArray
    start: IntArray  # seconds since the epoch
    end: IntArray
    sess_date: IntArray  # [S, 3] year, month, day of the start in the session's own offset
    # children [C]
    child_ids: tuple[str, ...]
    birth: IntArray  # [C, 3] year, month, day
    # requests [R]
    request_ids: tuple[str, ...]
    req_size: IntArray
    req_priority: IntArray
    req_child_ptr: IntArray  # [R + 1]
    req_child: IntArray
    req_pref_ptr: IntArray  # [R + 1] the raw preference lists, eligible or not
    req_pref: IntArray
    booked_session: IntArray  # -1 when the request has no booking
    locked: BoolArray
    booking_order: IntArray  # request indices of the bookings, in file order
    drop_cost: IntArray
    # candidate arcs [A]
    arc_req: IntArray
    arc_sess: IntArray
    arc_rank: IntArray
    arc_coef: IntArray
    arc_groups: IntArray  # [A, G] children of each group the arc brings to its session
    req_arc_ptr: IntArray  # [R + 1]
    # children x arcs
    child_arc_ptr: IntArray  # [C + 1]
    child_arc: IntArray
    # overlaps: maximal cliques of mutually overlapping sessions
    clique_ptr: IntArray
    clique_sess: IntArray

    @property
    def n_groups(self) -> int:
        return len(self.group_names)

    @property
    def n_sessions(self) -> int:
        return len(self.session_ids)

    @property
    def n_children(self) -> int:
        return len(self.child_ids)

    @property
    def n_requests(self) -> int:
        return len(self.request_ids)

    @property
    def n_arcs(self) -> int:
        return int(self.arc_req.shape[0])

    @property
    def pool_lcm(self) -> int:
        """Common multiple of the ratios: pooled need is compared as integers times it."""
        return math.lcm(*(int(r) for r in self.ratio))

    def caregiver_need(self, counts: list[int]) -> tuple[int, int]:
        """Caregivers a session needs for ``counts`` children per group, as (need, scale).

        ``need / scale`` is the exact figure: ``per_group`` staffing gives
        ``sum ceil(n_g / ratio_g)`` with scale 1; ``pooled`` gives
        ``sum n_g * (L / ratio_g)`` with scale ``L = lcm(ratios)``. Compare
        ``need`` with ``caregivers * scale``.
        """
        ratios = self.ratio.tolist()
        if self.pooled:
            scale = self.pool_lcm
            return sum(n * (scale // r) for n, r in zip(counts, ratios, strict=True)), scale
        return sum(-(-n // r) for n, r in zip(counts, ratios, strict=True)), 1

    @property
    def arc_size(self) -> IntArray:
        """Children per arc."""
        return self.req_size[self.arc_req]


def _date_parts(d: dt.date) -> tuple[int, int, int]:
    return d.year, d.month, d.day


def group_of(c: Compiled, birth: dt.date, session: int) -> int:
    """The age group of a child born on ``birth`` in ``session``, or -1 if ineligible."""
    sy, sm, sd = (int(v) for v in c.sess_date[session])
    a = age_months(birth.year, birth.month, birth.day, sy, sm, sd)
    if a < c.min_months[session] or a >= c.max_months[session] or a < 0:
        return -1
    if a >= c.month_group.shape[0]:
        return -1
    return int(c.month_group[a])


def _groups_vectorised(
    c_birth: IntArray, s_date: IntArray, lo: IntArray, hi: IntArray, month_group: IntArray
) -> IntArray:
    a = age_months(
        c_birth[:, 0], c_birth[:, 1], c_birth[:, 2], s_date[:, 0], s_date[:, 1], s_date[:, 2]
    )
    inside = (a >= lo) & (a < hi) & (a >= 0) & (a < month_group.shape[0])
    g = np.full(a.shape, -1, dtype=np.int64)
    g[inside] = month_group[a[inside]]
    return g


def _maximal_cliques(start: IntArray, end: IntArray) -> tuple[IntArray, IntArray]:
    """Maximal cliques of an interval graph of half-open intervals, by a sweep."""
    n = start.shape[0]
    if n == 0:
        return np.zeros(1, np.int64), np.zeros(0, np.int64)
    # Ends sort before starts at the same instant: touching intervals do not overlap.
    times = np.concatenate([start, end])
    kinds = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
    ids = np.concatenate([np.arange(n), np.arange(n)])
    order = np.lexsort((kinds, times))
    active: dict[int, None] = {}
    ptr = [0]
    flat: list[int] = []
    grew = False
    for k in order.tolist():
        s = int(ids[k])
        if kinds[k] == 1:
            active[s] = None
            grew = True
        else:
            if grew:
                flat.extend(sorted(active))
                ptr.append(len(flat))
                grew = False
            del active[s]
    return _frozen(ptr), _frozen(flat)


def compile_instance(instance: Instance) -> Compiled:
    """Compile a validated instance into read-only integer arrays.

    Parameters
    ----------
    instance
        A validated instance; it is trusted, not re-checked.

    Returns
    -------
    Compiled
        The arrays every solver and the online engine share.
    """
    policy = instance.policy
    groups = policy.groups
    G = len(groups)
    ratio = np.array([g.ratio for g in groups], dtype=np.int64)
    top = max(g.max_months for g in groups)
    month_group = np.full(top, -1, dtype=np.int64)
    for gi, g in enumerate(groups):
        month_group[g.min_months : g.max_months] = gi
    default_caps = np.array([g.max_group_size for g in groups], dtype=np.int64)
    gindex = {g.name: i for i, g in enumerate(groups)}
    obj = instance.objective

    # sessions
    sessions = instance.sessions
    S = len(sessions)
    capacity = np.array([s.capacity for s in sessions], dtype=np.int64)
    caregivers = np.array([s.caregivers for s in sessions], dtype=np.int64)
    group_cap = np.tile(default_caps, (S, 1))
    for si, s in enumerate(sessions):
        for name, cap in s.group_caps.items():
            group_cap[si, gindex[name]] = cap
    ranges = [instance.session_age_range(s) for s in sessions]
    lo = np.array([r[0] for r in ranges], dtype=np.int64).reshape(S)
    hi = np.array([r[1] for r in ranges], dtype=np.int64).reshape(S)
    # Instants as integer microseconds would overflow nothing; seconds suffice
    # unless fractions are used, so keep microseconds to compare exactly.
    start = np.array([_micros(s.start) for s in sessions], dtype=np.int64).reshape(S)
    end = np.array([_micros(s.end) for s in sessions], dtype=np.int64).reshape(S)
    sess_date = np.array([_date_parts(s.start.date()) for s in sessions], dtype=np.int64).reshape(
        S, 3
    )

    # children
    children = instance.children
    birth = np.array([_date_parts(c.birth_date) for c in children], dtype=np.int64).reshape(
        len(children), 3
    )

    # requests
    requests = instance.requests
    R = len(requests)
    cidx = instance.child_index
    sidx = instance.session_index
    req_size = np.array([len(r.children) for r in requests], dtype=np.int64).reshape(R)
    req_priority = np.array([r.priority for r in requests], dtype=np.int64).reshape(R)
    req_child = np.array([cidx[c] for r in requests for c in r.children], dtype=np.int64)
    req_child_ptr = np.concatenate([[0], np.cumsum(req_size)]).astype(np.int64)
    n_prefs = np.array([len(r.preferences) for r in requests], dtype=np.int64).reshape(R)
    req_pref = np.array([sidx[s] for r in requests for s in r.preferences], dtype=np.int64)
    req_pref_ptr = np.concatenate([[0], np.cumsum(n_prefs)]).astype(np.int64)

    booked_session = np.full(R, -1, dtype=np.int64)
    locked = np.zeros(R, dtype=np.bool_)
    ridx = instance.request_index
    booking_order = np.array([ridx[b.request] for b in instance.bookings], dtype=np.int64)
    for b in instance.bookings:
        r = ridx[b.request]
        booked_session[r] = sidx[b.session]
        locked[r] = b.locked
    drop_cost = np.where(booked_session >= 0, obj.drop, 0).astype(np.int64)

    # (request, preference) pairs, then (pair, child) rows to decide eligibility
    pair_req = np.repeat(np.arange(R, dtype=np.int64), n_prefs)
    pair_rank = np.arange(req_pref.shape[0], dtype=np.int64) - req_pref_ptr[pair_req]
    pair_sess = req_pref
    size_of_pair = req_size[pair_req]
    row_pair = np.repeat(np.arange(pair_req.shape[0], dtype=np.int64), size_of_pair)
    # child k of the pair's request: offset within the request's children
    row_offset = np.arange(row_pair.shape[0], dtype=np.int64) - np.repeat(
        np.cumsum(size_of_pair) - size_of_pair, size_of_pair
    )
    row_child = req_child[req_child_ptr[pair_req[row_pair]] + row_offset]
    row_sess = pair_sess[row_pair]
    row_group = _groups_vectorised(
        birth[row_child], sess_date[row_sess], lo[row_sess], hi[row_sess], month_group
    )
    bad_rows = np.bincount(row_pair[row_group < 0], minlength=pair_req.shape[0])
    eligible = bad_rows == 0
    # A locked request may only be where it is locked.
    lk = locked[pair_req]
    eligible &= ~lk | (pair_sess == booked_session[pair_req])

    keep = np.flatnonzero(eligible)
    arc_req = pair_req[keep]
    arc_sess = pair_sess[keep]
    arc_rank = pair_rank[keep]
    A = keep.shape[0]
    remap = np.full(pair_req.shape[0], -1, dtype=np.int64)
    remap[keep] = np.arange(A, dtype=np.int64)
    good_rows = eligible[row_pair]
    arc_groups = np.zeros((A, G), dtype=np.int64)
    np.add.at(arc_groups, (remap[row_pair[good_rows]], row_group[good_rows]), 1)

    arc_size = req_size[arc_req]
    arc_coef = arc_size * (obj.serve + obj.priority * req_priority[arc_req] - obj.rank * arc_rank)
    booked = booked_session[arc_req]
    moved = (booked >= 0) & (arc_sess != booked) & ~locked[arc_req]
    arc_coef = arc_coef - obj.move * moved

    req_arc_ptr = np.searchsorted(arc_req, np.arange(R + 1, dtype=np.int64)).astype(np.int64)

    # children x arcs incidence
    arc_rows = remap[row_pair[good_rows]]
    arc_child_rows = row_child[good_rows]
    order = np.lexsort((arc_rows, arc_child_rows))
    child_arc = arc_rows[order]
    child_arc_ptr = np.searchsorted(
        arc_child_rows[order], np.arange(len(children) + 1, dtype=np.int64)
    ).astype(np.int64)

    clique_ptr, clique_sess = _maximal_cliques(start, end)

    return Compiled(
        group_names=tuple(g.name for g in groups),
        ratio=_frozen(ratio),
        month_group=_frozen(month_group),
        pooled=policy.staffing == "pooled",
        max_sessions_per_child=policy.max_sessions_per_child or 0,
        w_serve=obj.serve,
        w_priority=obj.priority,
        w_rank=obj.rank,
        w_move=obj.move,
        w_drop=obj.drop,
        session_ids=tuple(s.id for s in sessions),
        capacity=_frozen(capacity),
        caregivers=_frozen(caregivers),
        group_cap=_frozen(group_cap),
        min_months=_frozen(lo),
        max_months=_frozen(hi),
        start=_frozen(start),
        end=_frozen(end),
        sess_date=_frozen(sess_date),
        child_ids=tuple(c.id for c in children),
        birth=_frozen(birth),
        request_ids=tuple(r.id for r in requests),
        req_size=_frozen(req_size),
        req_priority=_frozen(req_priority),
        req_child_ptr=_frozen(req_child_ptr),
        req_child=_frozen(req_child),
        req_pref_ptr=_frozen(req_pref_ptr),
        req_pref=_frozen(req_pref),
        booked_session=_frozen(booked_session),
        locked=_frozen(locked, np.bool_),
        booking_order=_frozen(booking_order),
        drop_cost=_frozen(drop_cost),
        arc_req=_frozen(arc_req),
        arc_sess=_frozen(arc_sess),
        arc_rank=_frozen(arc_rank),
        arc_coef=_frozen(arc_coef),
        arc_groups=_frozen(arc_groups),
        req_arc_ptr=_frozen(req_arc_ptr),
        child_arc_ptr=_frozen(child_arc_ptr),
        child_arc=_frozen(child_arc),
        clique_ptr=clique_ptr,
        clique_sess=clique_sess,
    )


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(microseconds=1)
