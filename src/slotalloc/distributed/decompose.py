"""Split an instance into parts that can be solved on different machines.

Two kinds of split, both on the compiled arrays (:mod:`slotalloc.compile`):

* **Components.** Requests are linked when they have a candidate arc to the
  same session or share a child (union-find over arcs, vectorised). Requests
  of different components share no session and no child, so every rule and
  every term of the score separates: solving the components apart and adding
  up their scores and bounds is exact. Small components are packed together
  into parts of about ``part_requests`` requests.
* **Geographic parts.** A component larger than that is cut by sites:
  recursive bisection of the sites' coordinates (lat/lon, else a district
  order), balanced by candidate arcs, along axes turned by a seeded angle.
  Requests follow their best arcs, all requests of a child together, so
  parts share sessions with no one and children only through locked
  bookings. Parts are then *not* independent: a request near a border loses
  its preferences on the other side. A second pass
  (:func:`border_parts`) cuts the same component along other axes and
  re-optimises each new part around the merged incumbent, which frees the
  requests the first cut separated from their places. The sum of such parts'
  bounds is not a bound; the component's bound comes from its whole LP.

Every part is a plain ``slotalloc.instance/1`` document (JSON-able dicts), so a
task carries plain data and builds its solver model where it runs.
Preferences outside a part are replaced by closed placeholder sessions
(capacity 0) at the same position, so ranks, hence scores, are those of the
whole instance.

Merging re-checks every rule on the whole instance (:func:`repair`, in
:mod:`slotalloc.distributed.merge`): any assignment that breaks one (possible
only through locked bookings or a buggy part) is dropped, lowest value first,
locked bookings never.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.distributed.merge import repair
from slotalloc.models import Instance

__all__ = [
    "Decomposition",
    "InstanceTables",
    "Part",
    "border_parts",
    "components",
    "decompose",
    "repair",
    "site_coordinates",
    "split_sites",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

#: Placeholder sessions standing in for preferences outside a part.
_CLOSED = "~closed"


# ---------------------------------------------------------------- union-find


def _union_find(n: int, u: IntArray, v: IntArray) -> IntArray:
    """Component label (its smallest member) of each of ``n`` nodes linked by edges (u, v).

    Hook-and-compress on whole edge arrays: each round hooks every root to the
    smallest root it is linked to, then compresses paths by pointer jumping,
    so the rounds are few (logarithmic on the graphs met here) and each is a
    handful of numpy passes.
    """
    parent = np.arange(n, dtype=np.int64)
    if u.shape[0] == 0:
        return parent
    while True:
        pu, pv = parent[u], parent[v]
        lo, hi = np.minimum(pu, pv), np.maximum(pu, pv)
        differ = lo != hi
        if not differ.any():
            return parent
        np.minimum.at(parent, hi[differ], lo[differ])
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped


def _star_edges(owner: IntArray, member: IntArray) -> tuple[IntArray, IntArray]:
    """Edges linking every member of each owner's list to the owner's first member."""
    if owner.shape[0] == 0:
        return owner, member
    order = np.argsort(owner, kind="stable")
    o, m = owner[order], member[order]
    first = np.ones(o.shape[0], dtype=np.bool_)
    first[1:] = o[1:] != o[:-1]
    head = m[first][np.cumsum(first) - 1]
    return m, head


def components(c: Compiled, *, through_sessions: bool = True) -> IntArray:
    """Label the requests by connected component.

    Parameters
    ----------
    c
        The compiled instance.
    through_sessions
        Link requests with an arc to a common session (True), or only
        requests sharing a child (False: the units a geographic cut keeps
        together).

    Returns
    -------
    numpy.ndarray
        ``[R]`` labels ``0..k-1`` numbered in order of each component's first
        request, or -1 for requests without any candidate arc (they can never
        be placed and belong to no part).
    """
    R = c.n_requests
    us: list[IntArray] = []
    vs: list[IntArray] = []
    if through_sessions:
        u, v = _star_edges(c.arc_sess, c.arc_req)
        us.append(u)
        vs.append(v)
    child_of_row = np.repeat(np.arange(c.n_children, dtype=np.int64), np.diff(c.child_arc_ptr))
    u, v = _star_edges(child_of_row, c.arc_req[c.child_arc])
    us.append(u)
    vs.append(v)
    root = _union_find(R, np.concatenate(us), np.concatenate(vs))
    has_arc = np.diff(c.req_arc_ptr) > 0
    labels = np.full(R, -1, dtype=np.int64)
    _, first_index, inverse = np.unique(root[has_arc], return_index=True, return_inverse=True)
    # Number components in order of first appearance, so labels do not depend on roots.
    rank = np.empty(first_index.shape[0], dtype=np.int64)
    rank[np.argsort(first_index, kind="stable")] = np.arange(first_index.shape[0])
    labels[has_arc] = rank[inverse]
    return labels


# ---------------------------------------------------------------- geography


def site_coordinates(instance: Instance, c: Compiled) -> tuple[IntArray, FloatArray]:
    """The site unit of each session and a planar position of each unit.

    Returns
    -------
    tuple
        ``(session_unit [S], xy [U, 2])``: sessions of one site share a unit.
        Positions are lat/lon in locally scaled degrees when every site has
        both; otherwise units are ordered by district then id along one axis.
    """
    labels = [s.site for s in instance.sessions]
    names, session_unit = np.unique(np.array(labels, dtype=object), return_inverse=True)
    session_unit = session_unit.astype(np.int64)
    U = names.shape[0]
    by_id = {s.id: s for s in instance.sites}
    sites = [by_id.get(str(n)) for n in names]
    if U and all(s is not None and s.lat is not None and s.lon is not None for s in sites):
        lat = np.array([s.lat for s in sites if s is not None], dtype=np.float64)
        lon = np.array([s.lon for s in sites if s is not None], dtype=np.float64)
        scale = math.cos(math.radians(float(np.mean(lat))))
        return session_unit, np.column_stack([lat, lon * scale])
    keys = [
        ((s.district or "") if s is not None else "", str(n))
        for s, n in zip(sites, names, strict=True)
    ]
    order = sorted(range(U), key=keys.__getitem__)
    pos = np.empty(U, dtype=np.float64)
    pos[order] = np.arange(U, dtype=np.float64)
    return session_unit, np.column_stack([pos, np.zeros(U)])


def split_sites(xy: FloatArray, weight: FloatArray, n_parts: int, angle: float) -> IntArray:
    """Recursive weighted bisection of points into ``n_parts`` contiguous regions.

    Each step cuts the current region across its wider spread (in axes turned
    by ``angle``) at the weight quantile that matches how many parts each side
    will hold, so regions carry about equal weight.

    Returns
    -------
    numpy.ndarray
        ``[U]`` part labels ``0..n_parts-1``.
    """
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    p = xy @ rot
    out = np.zeros(p.shape[0], dtype=np.int64)
    stack: list[tuple[IntArray, int, int]] = [(np.arange(p.shape[0], dtype=np.int64), n_parts, 0)]
    while stack:
        idx, k, base = stack.pop()
        if k <= 1 or idx.shape[0] <= 1:
            out[idx] = base
            continue
        spread = p[idx].max(axis=0) - p[idx].min(axis=0)
        axis = int(np.argmax(spread))
        order = idx[np.lexsort((idx, p[idx, axis]))]
        left_k = k // 2
        w = np.cumsum(weight[order])
        cut = int(np.searchsorted(w, w[-1] * left_k / k, side="left")) + 1
        cut = min(max(cut, 1), order.shape[0] - 1)
        stack.append((order[cut:], k - left_k, base + left_k))
        stack.append((order[:cut], left_k, base))
    return out


# ---------------------------------------------------------------- plain sub-instances


class InstanceTables:
    """The instance as JSON-able rows, dumped once and sliced into parts."""

    def __init__(self, instance: Instance) -> None:
        doc = instance.model_dump(mode="json")
        self.head = {k: doc[k] for k in ("format", "name", "policy", "objective")}
        self.sites: list[dict[str, Any]] = doc["sites"]
        self.sessions: list[dict[str, Any]] = doc["sessions"]
        self.children: list[dict[str, Any]] = doc["children"]
        self.requests: list[dict[str, Any]] = doc["requests"]
        self.site_pos = {s["id"]: i for i, s in enumerate(self.sites)}
        self.booking_of = {b["request"]: b for b in doc["bookings"]}
        ids = {s["id"] for s in self.sessions}
        prefix = _CLOSED
        while any(f"{prefix}/{k}" in ids for k in range(10)):
            prefix += "~"
        self.closed = [f"{prefix}/{k}" for k in range(10)]

    def document(
        self,
        c: Compiled,
        sessions: IntArray,
        requests: IntArray,
        *,
        name: str,
        pin: dict[int, int] | None = None,
    ) -> dict[str, Any]:
        """A valid instance document holding these sessions and requests.

        Parameters
        ----------
        c
            The compiled whole instance (for indices).
        sessions, requests
            Indices of the sessions and requests to keep.
        name
            The part's name.
        pin
            Request index -> session index: requests held in place, written as
            locked bookings (the session must be among ``sessions``).
        """
        inside = np.zeros(c.n_sessions, dtype=np.bool_)
        inside[sessions] = True
        sess_rows = [self.sessions[i] for i in sessions.tolist()]
        req_rows: list[dict[str, Any]] = []
        bookings: list[dict[str, Any]] = []
        used_closed = 0
        child_set: set[int] = set()
        sid = c.session_ids
        pin = pin or {}
        for r in requests.tolist():
            row = dict(self.requests[r])
            prefs = c.req_pref[c.req_pref_ptr[r] : c.req_pref_ptr[r + 1]].tolist()
            new = [sid[s] if inside[s] else self.closed[k] for k, s in enumerate(prefs)]
            used_closed = max([used_closed] + [k + 1 for k, s in enumerate(prefs) if not inside[s]])
            row["preferences"] = new
            req_rows.append(row)
            child_set.update(c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist())
            rid = c.request_ids[r]
            if r in pin:
                bookings.append({"request": rid, "session": sid[pin[r]], "locked": True})
            elif rid in self.booking_of:
                b = self.booking_of[rid]
                s = int(c.booked_session[r])
                k = prefs.index(s)
                bookings.append(
                    {"request": rid, "session": new[k], "locked": bool(b["locked"] and inside[s])}
                )
        if used_closed and sess_rows:
            model = sess_rows[0]
            for k in range(used_closed):
                sess_rows.append(
                    {
                        "id": self.closed[k],
                        "site": model["site"],
                        "start": model["start"],
                        "end": model["end"],
                        "capacity": 0,
                        "caregivers": 0,
                    }
                )
        site_ids = sorted({s["site"] for s in sess_rows if s["site"] in self.site_pos})
        return {
            **self.head,
            "name": name,
            "sites": [self.sites[self.site_pos[s]] for s in site_ids],
            "sessions": sess_rows,
            "children": [self.children[i] for i in sorted(child_set)],
            "requests": req_rows,
            "bookings": bookings,
        }


# ---------------------------------------------------------------- plans


@dataclass
class Part:
    """One task's worth of the instance.

    Attributes
    ----------
    index
        Position in the decomposition (merge order).
    component
        The component (or packed group of components) it belongs to.
    independent
        True when the part shares nothing with other parts (whole components),
        so its bound adds up.
    sessions, requests
        Indices into the whole compiled instance.
    document
        The plain sub-instance.
    """

    index: int
    component: int
    independent: bool
    sessions: IntArray
    requests: IntArray
    document: dict[str, Any]


@dataclass
class Decomposition:
    """Parts of an instance, and the large components cut geographically."""

    parts: list[Part]
    n_components: int
    #: component id -> (sessions, requests) of components cut into geographic parts
    giant: dict[int, tuple[IntArray, IntArray]] = field(default_factory=dict)
    #: locked requests held at a session outside their part (merged as fixed)
    pinned: dict[int, int] = field(default_factory=dict)


def _best_arc_session(c: Compiled, requests: IntArray) -> IntArray:
    return c.arc_sess[c.req_arc_ptr[requests]]


def decompose(
    instance: Instance,
    c: Compiled,
    *,
    part_requests: int = 25_000,
    min_parts: int = 1,
    seed: int = 0,
    tables: InstanceTables | None = None,
) -> Decomposition:
    """Split the instance into parts of about ``part_requests`` requests.

    Parameters
    ----------
    instance, c
        The validated instance and its compiled arrays.
    part_requests
        Target requests per part: smaller components are packed up to it,
        larger ones are cut geographically into parts of about this size.
    min_parts
        Cut the largest component further so there are at least this many
        parts (to give every worker something), when it has enough sites.
    seed
        Seeds nothing on this first cut (axes are not turned); kept for
        symmetry with :func:`border_parts`.
    tables
        Pre-dumped rows of the instance, when the caller has them.

    Returns
    -------
    Decomposition
        The parts, in a deterministic order.

    Raises
    ------
    ValueError
        If ``part_requests`` or ``min_parts`` is below 1.
    """
    del seed
    if part_requests < 1 or min_parts < 1:
        raise ValueError("part_requests and min_parts must be >= 1")
    tables = tables or InstanceTables(instance)
    labels = components(c)
    k = int(labels.max()) + 1 if labels.shape[0] else 0
    sizes = np.bincount(labels[labels >= 0], minlength=k)
    cuts = _cuts(sizes, part_requests, min_parts)
    members = _Members(c, labels, k)
    parts: list[Part] = []
    dec = Decomposition(parts=parts, n_components=k)
    for bin_members in _pack(sizes, cuts, part_requests):
        got = [members(comp) for comp in sorted(bin_members)]
        sess = np.sort(np.concatenate([g[0] for g in got]))
        reqs = np.sort(np.concatenate([g[1] for g in got]))
        idx = len(parts)
        doc = tables.document(c, sess, reqs, name=f"{tables.head['name']}/part{idx}")
        parts.append(Part(idx, min(bin_members), True, sess, reqs, doc))

    session_unit, xy = site_coordinates(instance, c)
    arcs_per_sess = np.bincount(c.arc_sess, minlength=c.n_sessions).astype(np.float64)
    for comp in (int(i) for i in np.flatnonzero(cuts > 1)):
        sess, reqs = members(comp)
        dec.giant[comp] = (sess, reqs)
        for p_sess, p_reqs, pin in _geographic(
            c, sess, reqs, session_unit, xy, arcs_per_sess, int(cuts[comp]), 0.0, dec.pinned
        ):
            idx = len(parts)
            doc = tables.document(
                c, p_sess, p_reqs, name=f"{tables.head['name']}/part{idx}", pin=pin
            )
            parts.append(Part(idx, comp, False, p_sess, p_reqs, doc))
    return dec


def _cuts(sizes: IntArray, part_requests: int, min_parts: int) -> IntArray:
    """How many geographic parts each component gets (1: it stays whole)."""
    k = sizes.shape[0]
    cuts = np.where(sizes > 1.5 * part_requests, np.ceil(sizes / part_requests), 1).astype(np.int64)
    if k and cuts.sum() + (k - int((cuts > 1).sum())) < min_parts:
        big = int(np.argmax(sizes))
        cuts[big] = max(int(cuts[big]), min_parts - (k - 1) if k > 1 else min_parts)
    return cuts


def _pack(sizes: IntArray, cuts: IntArray, part_requests: int) -> list[list[int]]:
    """The components left whole, packed first-fit decreasing (by requests; ties by label)."""
    k = sizes.shape[0]
    small = [int(i) for i in np.lexsort((np.arange(k), -sizes)) if cuts[i] == 1]
    bins: list[list[int]] = []
    load: list[int] = []
    for comp in small:
        for b in range(len(bins)):
            if load[b] + sizes[comp] <= part_requests:
                bins[b].append(comp)
                load[b] += int(sizes[comp])
                break
        else:
            bins.append([comp])
            load.append(int(sizes[comp]))
    return bins


class _Members:
    """The sessions and requests of each component, sorted (``-1``: requests without arcs)."""

    def __init__(self, c: Compiled, labels: IntArray, k: int) -> None:
        comp_of_sess = np.full(c.n_sessions, -1, dtype=np.int64)
        comp_of_sess[c.arc_sess] = labels[c.arc_req]
        self._req_order = np.argsort(labels, kind="stable")
        self._comp_ptr = np.searchsorted(labels[self._req_order], np.arange(-1, k + 1))
        self._sess_order = np.argsort(comp_of_sess, kind="stable")
        self._sess_ptr = np.searchsorted(comp_of_sess[self._sess_order], np.arange(-1, k + 1))

    def __call__(self, comp: int) -> tuple[IntArray, IntArray]:
        reqs = np.sort(self._req_order[self._comp_ptr[comp + 1] : self._comp_ptr[comp + 2]])
        sess = np.sort(self._sess_order[self._sess_ptr[comp + 1] : self._sess_ptr[comp + 2]])
        return sess, reqs


def _session_parts(
    c: Compiled,
    sess: IntArray,
    session_unit: IntArray,
    xy: FloatArray,
    arcs_per_sess: FloatArray,
    n_parts: int,
    angle: float,
) -> tuple[IntArray, int]:
    """Part of each session (-1 outside ``sess``) when its sites are cut by position.

    Sites are weighted by their sessions' arcs; returns the parts and how many
    there are (no more than the sites).
    """
    units = np.unique(session_unit[sess])
    unit_weight = np.bincount(
        session_unit[sess], weights=arcs_per_sess[sess], minlength=xy.shape[0]
    ).astype(np.float64)
    unit_part = np.full(xy.shape[0], -1, dtype=np.int64)
    n_parts = min(n_parts, units.shape[0])
    unit_part[units] = split_sites(xy[units], unit_weight[units], n_parts, angle)
    sess_part = np.full(c.n_sessions, -1, dtype=np.int64)
    sess_part[sess] = unit_part[session_unit[sess]]
    return sess_part, n_parts


def _geographic(
    c: Compiled,
    sess: IntArray,
    reqs: IntArray,
    session_unit: IntArray,
    xy: FloatArray,
    arcs_per_sess: FloatArray,
    n_parts: int,
    angle: float,
    pinned: dict[int, int],
) -> list[tuple[IntArray, IntArray, dict[int, int]]]:
    """Cut one component's sessions by site position; requests follow their best arcs."""
    sess_part, n_parts = _session_parts(c, sess, session_unit, xy, arcs_per_sess, n_parts, angle)

    # A request's part: its locked or booked session's, else its best arc's; all
    # requests sharing a child follow the plurality of their unit.
    booked = c.booked_session[reqs]
    anchor = np.where(booked >= 0, booked, _best_arc_session(c, reqs))
    anchor_part = sess_part[anchor]
    anchor_part = np.where(anchor_part >= 0, anchor_part, 0)
    unit = _child_units(c, reqs)
    votes = np.zeros((int(unit.max()) + 1 if unit.shape[0] else 0, n_parts), dtype=np.int64)
    np.add.at(votes, (unit, anchor_part), 1 + 1000 * c.locked[reqs])
    req_part = np.argmax(votes, axis=1)[unit]
    out: list[tuple[IntArray, IntArray, dict[int, int]]] = []
    for p in range(n_parts):
        p_sess = sess[sess_part[sess] == p]
        p_reqs = reqs[req_part == p]
        # A locked booking outside its unit's part stays where it is, merged as fixed.
        lk = p_reqs[c.locked[p_reqs] & (sess_part[np.maximum(c.booked_session[p_reqs], 0)] != p)]
        for r in lk.tolist():
            pinned[r] = int(c.booked_session[r])
        p_reqs = np.setdiff1d(p_reqs, lk)
        out.append((p_sess, p_reqs, {}))
    return out


def _child_units(c: Compiled, reqs: IntArray) -> IntArray:
    """Labels ``0..`` of ``reqs`` such that requests sharing a child share a label."""
    pos = np.full(c.n_requests, -1, dtype=np.int64)
    pos[reqs] = np.arange(reqs.shape[0])
    sizes = np.diff(c.req_child_ptr)[reqs]
    rows_req = np.repeat(np.arange(reqs.shape[0], dtype=np.int64), sizes)
    rows_child = (
        np.concatenate(
            [c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]] for r in reqs.tolist()]
        )
        if reqs.shape[0]
        else np.zeros(0, np.int64)
    )
    u, v = _star_edges(rows_child.astype(np.int64), rows_req)
    root = _union_find(reqs.shape[0], u, v)
    _, inv = np.unique(root, return_inverse=True)
    return inv.astype(np.int64)


def border_parts(
    instance: Instance,
    c: Compiled,
    tables: InstanceTables,
    comp: tuple[IntArray, IntArray],
    n_parts: int,
    current: IntArray,
    *,
    angle: float,
    name: str,
) -> list[tuple[IntArray, IntArray, dict[str, Any]]]:
    """Parts of a component cut along other axes, to re-optimise around an incumbent.

    Each new part holds its sessions and every request that can be moved
    without touching anything outside: requests placed in the part or not
    placed at all, with a candidate arc into it, whose children have no place
    outside it. Requests placed in the part whose children do have a place
    outside stay where they are (locked bookings in the part), so the part's
    capacity and the children's rules see them.

    Parameters
    ----------
    instance, c, tables
        The whole instance.
    comp
        The component's (sessions, requests).
    n_parts
        How many parts to cut.
    current
        ``[R]`` session index of each request in the incumbent, -1 if unplaced.
    angle
        Turn of the cutting axes (radians); differ from the first cut's.
    name
        Prefix of the parts' names.

    Returns
    -------
    list
        ``(sessions, free requests, document)`` per part; the free requests
        are those whose places the part's solution replaces.
    """
    sess, reqs = comp
    session_unit, xy = site_coordinates(instance, c)
    arcs_per_sess = np.bincount(c.arc_sess, minlength=c.n_sessions).astype(np.float64)
    sess_part, n_parts = _session_parts(c, sess, session_unit, xy, arcs_per_sess, n_parts, angle)

    unit = _child_units(c, reqs)
    n_units = int(unit.max()) + 1 if unit.shape[0] else 0
    cur = current[reqs]
    cur_part = np.where(cur >= 0, sess_part[np.maximum(cur, 0)], -1)
    # Parts where a unit's requests are placed: a unit placed in two parts, or
    # holding a locked booking, keeps its placed requests fixed.
    placed = cur >= 0
    lo = np.full(n_units, n_parts, dtype=np.int64)
    hi = np.full(n_units, -1, dtype=np.int64)
    np.minimum.at(lo, unit[placed], cur_part[placed])
    np.maximum.at(hi, unit[placed], cur_part[placed])
    has_locked = np.zeros(n_units, dtype=np.bool_)
    has_locked[unit[c.locked[reqs]]] = True
    mixed = ((hi >= 0) & (lo != hi)) | has_locked
    # A unit goes where its requests are placed, else where its first request's
    # best arc is: all requests of a child land in one part.
    best_part = sess_part[_best_arc_session(c, reqs)]
    unit_best = np.full(n_units, -1, dtype=np.int64)
    unit_best[unit[::-1]] = best_part[::-1]
    home = np.where(hi >= 0, hi, unit_best)[unit]
    out: list[tuple[IntArray, IntArray, dict[str, Any]]] = []
    for p in range(n_parts):
        p_sess = sess[sess_part[sess] == p]
        free_mask = (home == p) & ~mixed[unit]
        fixed_mask = mixed[unit] & placed & (cur_part == p)
        free = reqs[free_mask]
        fixed = reqs[fixed_mask]
        pin = {int(r): int(current[r]) for r in fixed.tolist()}
        both = np.sort(np.concatenate([free, fixed]))
        doc = tables.document(c, p_sess, both, name=f"{name}{p}", pin=pin)
        out.append((p_sess, free, doc))
    return out
