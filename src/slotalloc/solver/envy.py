"""FORMAT §4 rule 9 on compiled arrays: justified envy, found and resolved.

A triple ``(r, r', s)`` is justified envy when ``r`` and ``r'`` have no
booking, ``r'`` has the lower priority and holds ``s``, ``r`` ranks ``s``
before its own session (any of its preferences when unplaced), and the
assignment with ``r'`` removed and ``r`` moved to ``s`` is valid.

The rule is not linear. The optimiser treats it lazily on small models: the
incumbent's triples become rows (:mod:`slotalloc.solver.rows.no_envy`) and the
model is solved again (:mod:`slotalloc.solver.fair`). :func:`resolve_envy`
gives an envy-free assignment from any valid assignment: it applies the swap
of a triple whose ``r`` has the highest priority, places ``r'`` again where
it fits, and repeats. Each swap improves ``r`` and only moves requests of
lower priority, so the per-priority ranks improve lexicographically and the
loop ends, with no triple left.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy

__all__ = ["envy_triples", "resolve_envy"]


#: (r, arc of r into s, arc of r' in s)
Triple = tuple[int, int, int]


class _State:
    """An assignment of arcs with its occupancy, changed one request at a time."""

    def __init__(self, c: Compiled, arcs: Iterable[int]) -> None:
        self.c = c
        self.occ = Occupancy(c)
        self.groups = [[(g, k) for g, k in enumerate(row) if k] for row in c.arc_groups.tolist()]
        self.kids = [
            c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()
            for r in range(c.n_requests)
        ]
        self.size = c.req_size.tolist()
        self.sess = c.arc_sess.tolist()
        self.req = c.arc_req.tolist()
        self.arc_of = [-1] * c.n_requests
        self.holders: dict[int, dict[int, int]] = {}  # session -> {request: arc}
        for a in arcs:
            self.add(int(a))

    def args(self, a: int) -> tuple[int, int, list[tuple[int, int]], list[int]]:
        r = self.req[a]
        return self.sess[a], self.size[r], self.groups[a], self.kids[r]

    def add(self, a: int) -> None:
        self.occ.add(*self.args(a))
        r = self.req[a]
        self.arc_of[r] = a
        self.holders.setdefault(self.sess[a], {})[r] = a

    def remove(self, a: int) -> None:
        self.occ.remove(*self.args(a))
        r = self.req[a]
        self.arc_of[r] = -1
        del self.holders[self.sess[a]][r]

    def fits(self, a: int) -> bool:
        return self.occ.fits(*self.args(a))


def _free(c: Compiled) -> npt.NDArray[np.bool_]:
    """Requests the rule speaks of: those without a booking."""
    return np.asarray(c.booked_session < 0)


def _triples_of(st: _State, r: int, free: list[bool], prio: list[int]) -> list[Triple]:
    c = st.c
    own = st.arc_of[r]
    lo, hi = int(c.req_arc_ptr[r]), int(c.req_arc_ptr[r + 1])
    stop = own if own >= 0 else hi
    out: list[Triple] = []
    candidates = [
        (a, ap)
        for a in range(lo, stop)
        for rp, ap in st.holders.get(st.sess[a], {}).items()
        if free[rp] and prio[rp] < prio[r]
    ]
    if not candidates:
        return out
    if own >= 0:
        st.remove(own)
    for a, ap in candidates:
        st.remove(ap)
        if st.fits(a):
            out.append((r, a, ap))
        st.add(ap)
    if own >= 0:
        st.add(own)
    return out


def envy_triples(c: Compiled, arcs: npt.ArrayLike) -> list[Triple]:
    """Every justified-envy triple of a valid assignment, as (r, arc r -> s, arc of r')."""
    st = _State(c, np.asarray(arcs, dtype=np.int64).tolist())
    free = _free(c).tolist()
    prio = c.req_priority.tolist()
    out: list[Triple] = []
    for r in range(c.n_requests):
        if free[r]:
            out.extend(_triples_of(st, r, free, prio))
    return out


def resolve_envy(c: Compiled, arcs: npt.ArrayLike) -> IntArray:
    """An assignment without justified envy, from a valid one (see the module notes).

    A worklist of requests without a booking, highest priority first: each
    takes the best-ranked session it envies (if any) and the displaced request
    then takes its first preference that fits, or none. A swap changes three
    sessions (the envied one, the one left, the one the displaced request
    takes): every request with a preference among them is looked at again. A
    final pass over every request confirms that no triple is left.
    """
    st = _State(c, np.asarray(arcs, dtype=np.int64).tolist())
    free = _free(c).tolist()
    prio = c.req_priority.tolist()
    by_sess: dict[int, list[int]] = {}
    for a, s in enumerate(st.sess):
        by_sess.setdefault(s, []).append(st.req[a])
    heap = [(-prio[r], r) for r in range(c.n_requests) if free[r]]
    heapq.heapify(heap)
    waiting = {r for _p, r in heap}
    while heap:
        while heap:
            _p, r = heapq.heappop(heap)
            waiting.discard(r)
            found = _triples_of(st, r, free, prio)
            if not found:
                continue
            _r, a, ap = min(found, key=lambda t: t[1])  # r's best-ranked envied session
            rp = st.req[ap]
            own = st.arc_of[r]
            st.remove(ap)
            if own >= 0:
                st.remove(own)
            st.add(a)
            touched = [st.sess[a]] + ([st.sess[own]] if own >= 0 else [])
            for b in range(int(c.req_arc_ptr[rp]), int(c.req_arc_ptr[rp + 1])):
                if st.fits(b):
                    st.add(b)
                    touched.append(st.sess[b])
                    break
            for s in touched:
                for q in by_sess.get(s, ()):
                    if free[q] and q not in waiting:
                        waiting.add(q)
                        heapq.heappush(heap, (-prio[q], q))
        for r in {t[0] for t in envy_triples(c, [x for x in st.arc_of if x >= 0])}:
            waiting.add(r)
            heapq.heappush(heap, (-prio[r], r))
    chosen = [a for a in st.arc_of if a >= 0]
    return np.array(sorted(chosen), dtype=np.int64)
