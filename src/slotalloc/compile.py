"""Compile a validated :class:`~slotalloc.models.Instance` into integer arrays.

Eligibility (who may go where, in which age group) is decided here once, for
the solvers, by :func:`slotalloc.rules.groups_of`, the rules' one home.
Everything downstream works on :class:`Compiled`: read-only numpy arrays
indexed by position.

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
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.models import Instance
from slotalloc.rules import (
    age_months,
    caregiver_need,
    group_of,
    groups_of,
    month_groups,
    pool_scale,
)

__all__ = [
    "Compiled",
    "age_months",
    "compile_instance",
    "group_of",
]

BoolArray = npt.NDArray[np.bool_]

# The rules' eligibility under the names callers outside the compiler still import.
_groups_vectorised = groups_of


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
        return pool_scale(self.ratio.tolist())

    def caregiver_need(self, counts: list[int]) -> tuple[int, int]:
        """Caregivers a session needs for ``counts`` children per group, as (need, scale).

        ``need / scale`` is the exact figure (:func:`slotalloc.rules.caregiver_need`):
        ``per_group`` staffing gives scale 1, ``pooled`` scale ``lcm(ratios)``.
        Compare ``need`` with ``caregivers * scale``.
        """
        scale = self.pool_lcm if self.pooled else 1
        return caregiver_need(counts, self.ratio.tolist(), scale if self.pooled else 0), scale

    @property
    def arc_size(self) -> IntArray:
        """Children per arc."""
        return self.req_size[self.arc_req]


def _date_parts(d: dt.date) -> tuple[int, int, int]:
    return d.year, d.month, d.day


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
    policy = _policy_fields(instance)
    sessions = _session_fields(instance)
    requests = _request_fields(instance)
    arcs = _arc_fields(instance, policy, sessions, requests)
    clique_ptr, clique_sess = _maximal_cliques(sessions["start"], sessions["end"])
    return Compiled(
        **policy,
        **sessions,
        **requests,
        **arcs,
        clique_ptr=clique_ptr,
        clique_sess=clique_sess,
    )


def _policy_fields(instance: Instance) -> dict[str, Any]:
    """The policy's groups and staffing, and the objective's weights."""
    policy = instance.policy
    groups = policy.groups
    obj = instance.objective
    return {
        "group_names": tuple(g.name for g in groups),
        "ratio": _frozen([g.ratio for g in groups]),
        "month_group": _frozen(month_groups(groups)),
        "pooled": policy.staffing == "pooled",
        "max_sessions_per_child": policy.max_sessions_per_child or 0,
        "w_serve": obj.serve,
        "w_priority": obj.priority,
        "w_rank": obj.rank,
        "w_move": obj.move,
        "w_drop": obj.drop,
    }


def _session_fields(instance: Instance) -> dict[str, Any]:
    """Per session: places, caregivers, group caps, age range, instants and start date."""
    groups = instance.policy.groups
    gindex = {g.name: i for i, g in enumerate(groups)}
    default_caps = np.array([g.max_group_size for g in groups], dtype=np.int64)
    sessions = instance.sessions
    S = len(sessions)
    group_cap = np.tile(default_caps, (S, 1))
    for si, s in enumerate(sessions):
        for name, cap in s.group_caps.items():
            group_cap[si, gindex[name]] = cap
    ranges = [instance.session_age_range(s) for s in sessions]
    # Microseconds since the epoch: exact for any instant FORMAT allows, far from overflow.
    start = np.array([_micros(s.start) for s in sessions], dtype=np.int64).reshape(S)
    end = np.array([_micros(s.end) for s in sessions], dtype=np.int64).reshape(S)
    dates = [_date_parts(s.start.date()) for s in sessions]
    return {
        "session_ids": tuple(s.id for s in sessions),
        "capacity": _frozen([s.capacity for s in sessions]),
        "caregivers": _frozen([s.caregivers for s in sessions]),
        "group_cap": _frozen(group_cap),
        "min_months": _frozen(np.array([r[0] for r in ranges], dtype=np.int64).reshape(S)),
        "max_months": _frozen(np.array([r[1] for r in ranges], dtype=np.int64).reshape(S)),
        "start": _frozen(start),
        "end": _frozen(end),
        "sess_date": _frozen(np.array(dates, dtype=np.int64).reshape(S, 3)),
    }


def _request_fields(instance: Instance) -> dict[str, Any]:
    """Children's birth dates; requests' children, preferences, bookings and drop costs."""
    children = instance.children
    birth = np.array([_date_parts(c.birth_date) for c in children], dtype=np.int64)
    requests = instance.requests
    R = len(requests)
    cidx = instance.child_index
    sidx = instance.session_index
    ridx = instance.request_index
    req_size = np.array([len(r.children) for r in requests], dtype=np.int64).reshape(R)
    req_child = np.array([cidx[c] for r in requests for c in r.children], dtype=np.int64)
    n_prefs = np.array([len(r.preferences) for r in requests], dtype=np.int64).reshape(R)
    req_pref = np.array([sidx[s] for r in requests for s in r.preferences], dtype=np.int64)
    booked_session = np.full(R, -1, dtype=np.int64)
    locked = np.zeros(R, dtype=np.bool_)
    for b in instance.bookings:
        r = ridx[b.request]
        booked_session[r] = sidx[b.session]
        locked[r] = b.locked
    drop_cost = np.where(booked_session >= 0, instance.objective.drop, 0)
    return {
        "child_ids": tuple(c.id for c in children),
        "birth": _frozen(birth.reshape(len(children), 3)),
        "request_ids": tuple(r.id for r in requests),
        "req_size": _frozen(req_size),
        "req_priority": _frozen(
            np.array([r.priority for r in requests], dtype=np.int64).reshape(R)
        ),
        "req_child_ptr": _frozen(np.concatenate([[0], np.cumsum(req_size)])),
        "req_child": _frozen(req_child),
        "req_pref_ptr": _frozen(np.concatenate([[0], np.cumsum(n_prefs)])),
        "req_pref": _frozen(req_pref),
        "booked_session": _frozen(booked_session),
        "locked": _frozen(locked, np.bool_),
        "booking_order": _frozen([ridx[b.request] for b in instance.bookings]),
        "drop_cost": _frozen(drop_cost),
    }


def _arc_fields(
    instance: Instance, policy: dict[str, Any], sess: dict[str, Any], req: dict[str, Any]
) -> dict[str, Any]:
    """The candidate arcs (eligible preferences), their coefficients and children."""
    obj = instance.objective
    R, C, G = len(req["request_ids"]), len(req["child_ids"]), len(policy["group_names"])
    req_size, req_child, req_child_ptr = req["req_size"], req["req_child"], req["req_child_ptr"]
    req_pref_ptr, booked_session, locked = req["req_pref_ptr"], req["booked_session"], req["locked"]
    # (request, preference) pairs, then (pair, child) rows to decide eligibility
    pair_req = np.repeat(np.arange(R, dtype=np.int64), np.diff(req_pref_ptr))
    pair_rank = np.arange(req["req_pref"].shape[0], dtype=np.int64) - req_pref_ptr[pair_req]
    pair_sess = req["req_pref"]
    size_of_pair = req_size[pair_req]
    row_pair = np.repeat(np.arange(pair_req.shape[0], dtype=np.int64), size_of_pair)
    # child k of the pair's request: offset within the request's children
    row_offset = np.arange(row_pair.shape[0], dtype=np.int64) - np.repeat(
        np.cumsum(size_of_pair) - size_of_pair, size_of_pair
    )
    row_child = req_child[req_child_ptr[pair_req[row_pair]] + row_offset]
    row_sess = pair_sess[row_pair]
    row_group = groups_of(
        req["birth"][row_child],
        sess["sess_date"][row_sess],
        sess["min_months"][row_sess],
        sess["max_months"][row_sess],
        policy["month_group"],
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
    arc_coef = arc_size * (
        obj.serve + obj.priority * req["req_priority"][arc_req] - obj.rank * arc_rank
    )
    booked = booked_session[arc_req]
    moved = (booked >= 0) & (arc_sess != booked) & ~locked[arc_req]
    arc_coef = arc_coef - obj.move * moved

    # children x arcs incidence
    arc_rows = remap[row_pair[good_rows]]
    arc_child_rows = row_child[good_rows]
    order = np.lexsort((arc_rows, arc_child_rows))
    child_arc_ptr = np.searchsorted(arc_child_rows[order], np.arange(C + 1, dtype=np.int64))
    return {
        "arc_req": _frozen(arc_req),
        "arc_sess": _frozen(arc_sess),
        "arc_rank": _frozen(arc_rank),
        "arc_coef": _frozen(arc_coef),
        "arc_groups": _frozen(arc_groups),
        "req_arc_ptr": _frozen(np.searchsorted(arc_req, np.arange(R + 1, dtype=np.int64))),
        "child_arc_ptr": _frozen(child_arc_ptr),
        "child_arc": _frozen(arc_rows[order]),
    }


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _micros(t: dt.datetime) -> int:
    return (t - _EPOCH) // dt.timedelta(microseconds=1)
