"""Rule 9, no justified envy (FORMAT §4), as lazy rows: one per envy of an incumbent.

The rule is not linear; :func:`slotalloc.solver.envy.envy_triples` finds the
triples (r, r', s) of an incumbent A, and :class:`EnvyRows` adds, per triple,
a row that A breaks and that every assignment meeting rule 9 keeps:

    x[r', s] <= sum of x over r's arcs ranked at or before s
                + sum over the counts d of session s of z[s, d, N_d(A, s) + 1]
                + sum of x over the arcs of the other requests sharing a
                  child with r that A leaves out,

where the counts are s's children and its children of each age group, and
``z[s, d, t]`` is a Boolean that may be 1 only when s's count d is at least t
(``N_d(s) >= t * z``). Why it is valid: the rules of FORMAT §2 are monotone,
and whether r fits in s once r' leaves depends on s only through those counts
and on r's children only through their other requests' assignments. So in any
assignment A' that holds r' in s, leaves r below s, has no count of s above
A's and no new arc for r's children, the swap sees no more than it saw in A,
where it was valid: A' has the same justified envy. A ``z`` whose threshold
is beyond its count's cap can never be 1 and is left out, which makes the row
bind harder where s was already full.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.solver.formulation import INF, Formulation, group_rows

__all__ = ["EnvyRows"]

#: (r, arc of r into s, arc of r' in s), as :func:`slotalloc.solver.envy.envy_triples` gives them
Triple = tuple[int, int, int]


class EnvyRows:
    """Adds rule 9's lazy rows to one formulation, round after round."""

    def __init__(self, f: Formulation) -> None:
        self.f = f
        c = f.c
        self._by_sess, self._sess_ptr = group_rows(c.arc_sess, c.n_sessions)
        # Count d = 0 is the session's children, d = 1 + g its children of group g.
        self._weights = np.concatenate([c.arc_size[:, None], c.arc_groups], axis=1)
        self._caps = np.concatenate([c.capacity[:, None], c.group_cap], axis=1)
        self._z: dict[tuple[int, int, int], int] = {}
        self._seen: set[tuple[int, ...]] = set()
        self.rows = 0

    def _count_at_least(self, s: int, d: int, t: int) -> int:
        """The Boolean ``z[s, d, t]`` (one per key, with its linking row)."""
        key = (s, d, t)
        if key not in self._z:
            f = self.f
            (z,) = f.new_int_vars([0], [1]).tolist()
            arcs = self._by_sess[self._sess_ptr[s] : self._sess_ptr[s + 1]]
            w = self._weights[arcs, d]
            arcs, w = arcs[w > 0], w[w > 0]
            var = np.concatenate([f.x(arcs), np.array([z], dtype=np.int64)])
            coef = np.concatenate([w, [-t]])
            f.add_rows(
                f"no_justified_envy_count_{s}_{d}_{t}",
                np.array([0, var.shape[0]]),
                var,
                coef,
                0,
                INF,
            )
            self._z[key] = z
        return self._z[key]

    def values(self, arcs: npt.ArrayLike) -> IntArray:
        """:meth:`Formulation.values_of_arcs`, with each ``z`` at the value its count allows."""
        v = self.f.values_of_arcs(arcs)
        if self._z:
            c = self.f.c
            chosen = np.asarray(arcs, dtype=np.int64)
            counts = np.zeros((c.n_sessions, self._weights.shape[1]), dtype=np.int64)
            np.add.at(counts, c.arc_sess[chosen], self._weights[chosen])
            for (s, d, t), z in self._z.items():
                v[z] = int(counts[s, d] >= t)
        return v

    def add(self, arcs: npt.ArrayLike, triples: Iterable[Triple]) -> int:
        """Rows for the triples of the assignment ``arcs``; returns how many were new."""
        f, c = self.f, self.f.c
        chosen = np.zeros(c.n_arcs, dtype=np.bool_)
        chosen[np.asarray(arcs, dtype=np.int64)] = True
        counts = np.zeros((c.n_sessions, self._weights.shape[1]), dtype=np.int64)
        np.add.at(counts, c.arc_sess[chosen], self._weights[chosen])
        ptr, var, coef = [0], [], []
        for r, a, ap in triples:
            s, rp = int(c.arc_sess[a]), int(c.arc_req[ap])
            mine = list(range(int(c.req_arc_ptr[r]), a + 1))  # r's arcs ranked at or before s
            grown = [
                (d, int(counts[s, d]) + 1)
                for d in range(counts.shape[1])
                if counts[s, d] + 1 <= self._caps[s, d]
            ]
            kin: set[int] = set()  # the arcs of r's children, through any request
            for ch in c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist():
                kin.update(c.child_arc[c.child_arc_ptr[ch] : c.child_arc_ptr[ch + 1]].tolist())
            new_kin = sorted(b for b in kin if not chosen[b] and int(c.arc_req[b]) not in (r, rp))
            key = (ap, *mine, -1, s, *(t for _d, t in grown), -2, *new_kin)
            if key in self._seen:
                continue
            self._seen.add(key)
            zs = [self._count_at_least(s, d, t) for d, t in grown]
            var.extend([ap, *mine, *new_kin, *zs])
            coef.extend([1] + [-1] * (len(mine) + len(new_kin) + len(zs)))
            ptr.append(len(var))
        n = len(ptr) - 1
        if n:
            f.add_rows(
                "no_justified_envy",
                np.array(ptr, dtype=np.int64),
                np.array(var, dtype=np.int64),  # arcs' x and the z Booleans
                np.array(coef, dtype=np.int64),
                -INF,
                0,
            )
        self.rows += n
        return n
