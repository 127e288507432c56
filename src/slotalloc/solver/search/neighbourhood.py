"""Sub-models for large-neighbourhood search: free a few variables, fix the rest.

:class:`Restrictor` folds the fixed variables of every row into its bounds, so the
sub-model holds only the rows and terms that still matter; it is vectorised
over the blocks and costs milliseconds even on a city-sized model.
:class:`SessionGraph` picks the neighbourhoods: sessions linked by requests
that could go to both, grown breadth-first from a seed session.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.solver.formulation import INF, Formulation, LinearModel, group_rows

__all__ = ["Restrictor", "SessionGraph", "free_variables"]

BoolArray = npt.NDArray[np.bool_]


def _ranges(starts: IntArray, stops: IntArray) -> IntArray:
    """``concatenate([arange(a, b) for a, b in zip(starts, stops)])``, vectorised."""
    counts = stops - starts
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.cumsum(counts) - counts
    return np.repeat(starts - offsets, counts) + np.arange(total, dtype=np.int64)


class Restrictor:
    """Sub-models of one model, each built in time proportional to the rows it touches.

    Indexes once which rows each variable is in, so that a sub-model freeing a
    few hundred variables reads only their rows: on the ten-city model (2.5 M
    row entries) this is what keeps the search's main thread from spending a
    third of its time rebuilding sub-models.
    """

    def __init__(self, m: LinearModel) -> None:
        self.m = m
        self._var_ptr: list[IntArray] = []
        self._var_entries: list[IntArray] = []
        self._entry_row: list[IntArray] = []
        for b in m.blocks:
            order, ptr = group_rows(b.var, m.n_vars)
            self._var_entries.append(order.astype(np.int64))
            self._var_ptr.append(ptr)
            self._entry_row.append(np.repeat(np.arange(b.n_rows, dtype=np.int64), np.diff(b.ptr)))

    def __call__(self, free: BoolArray, values: IntArray) -> tuple[LinearModel, IntArray]:
        """The model over the free variables, the others fixed at ``values``."""
        m = self.m
        idx = np.flatnonzero(free).astype(np.int64)
        new_index = np.full(m.n_vars, -1, dtype=np.int64)
        new_index[idx] = np.arange(idx.shape[0], dtype=np.int64)
        lb = m.lb[idx].copy()
        ub = m.ub[idx].copy()
        sub = LinearModel(
            lb=lb,
            ub=ub,
            obj=m.obj[idx].copy(),
            offset=int(m.offset + int(m.obj @ np.where(free, 0, values))),
        )
        for k, b in enumerate(m.blocks):
            vptr = self._var_ptr[k]
            mine = self._var_entries[k][_ranges(vptr[idx], vptr[idx + 1])]
            if mine.shape[0] == 0:
                continue
            rows = np.unique(self._entry_row[k][mine])
            entries = _ranges(b.ptr[rows], b.ptr[rows + 1])
            local = np.repeat(np.arange(rows.shape[0], dtype=np.int64), np.diff(b.ptr)[rows])
            var = b.var[entries]
            coef = b.coef[entries]
            entry_free = free[var]
            fixed_e = ~entry_free
            const = np.zeros(rows.shape[0], dtype=np.int64)
            np.add.at(const, local[fixed_e], coef[fixed_e] * values[var[fixed_e]])
            n_free = np.bincount(local[entry_free], minlength=rows.shape[0])
            if b.at_most_one:
                # A row already holding a 1 forbids its free literals outright.
                full = (const >= 1) & (n_free > 0)
                zero = var[entry_free & full[local]]
                ub[new_index[zero]] = 0
                keep_row = (const == 0) & (n_free >= 2)
            else:
                keep_row = n_free > 0
            if not keep_row.any():
                continue
            keep_e = entry_free & keep_row[local]
            kept = np.flatnonzero(keep_row)
            ptr = np.concatenate([[0], np.cumsum(n_free[kept])]).astype(np.int64)
            lo_b, hi_b = b.lo[rows[kept]], b.hi[rows[kept]]
            lo = np.where(lo_b <= -INF, -INF, lo_b - const[kept])
            hi = np.where(hi_b >= INF, INF, hi_b - const[kept])
            sub.blocks.append(
                type(b)(b.name, ptr, new_index[var[keep_e]], coef[keep_e], lo, hi, b.at_most_one)
            )
        return sub, idx


def free_variables(f: Formulation, requests: IntArray) -> BoolArray:
    """Flags freeing every arc of these requests and the per-session counts of their sessions.

    The counts are the staffing ``y`` and, with the fairness rule, its ``z``;
    the fairness rows then fold the fixed sessions' counts into their bounds.
    """
    c = f.c
    free = np.zeros(f.n_vars, dtype=np.bool_)
    req_mask = np.zeros(c.n_requests, dtype=np.bool_)
    req_mask[requests] = True
    arcs = req_mask[c.arc_req] & ~c.locked[c.arc_req]
    free[: c.n_arcs] = arcs
    touched = np.zeros(c.n_sessions, dtype=np.bool_)
    touched[c.arc_sess[arcs]] = True
    if f.staff_vars.shape[0]:
        free[f.staff_vars] = touched[f.staff_pairs // c.n_groups]
    if f.fair_vars.shape[0]:
        free[f.fair_vars] = touched[f.fair_pairs // c.n_groups]
    return free


class SessionGraph:
    """Sessions and the requests that could go to them, for growing neighbourhoods."""

    def __init__(self, c: Compiled) -> None:
        self.c = c
        order, ptr = group_rows(c.arc_sess, c.n_sessions)
        self._sess_ptr = ptr
        self._sess_req = c.arc_req[order]
        self._req_ptr = c.req_arc_ptr
        self._arc_sess = c.arc_sess

    def grow(self, seed: int, max_arcs: int, rng: np.random.Generator) -> IntArray:
        """Requests of sessions reached breadth-first from ``seed``, about ``max_arcs`` arcs."""
        c = self.c
        seen_s = np.zeros(c.n_sessions, dtype=np.bool_)
        seen_r = np.zeros(c.n_requests, dtype=np.bool_)
        frontier = [seed]
        seen_s[seed] = True
        n_arcs = 0
        taken: list[IntArray] = []
        while frontier and n_arcs < max_arcs:
            nxt: list[int] = []
            rng.shuffle(frontier)
            for s in frontier:
                reqs = self._sess_req[self._sess_ptr[s] : self._sess_ptr[s + 1]]
                reqs = np.unique(reqs[~seen_r[reqs]])
                if reqs.shape[0] == 0:
                    continue
                seen_r[reqs] = True
                taken.append(reqs)
                n_arcs += int((self._req_ptr[reqs + 1] - self._req_ptr[reqs]).sum())
                for r in reqs.tolist():
                    for t in self._arc_sess[self._req_ptr[r] : self._req_ptr[r + 1]].tolist():
                        if not seen_s[t]:
                            seen_s[t] = True
                            nxt.append(t)
                if n_arcs >= max_arcs:
                    break
            frontier = nxt
        if not taken:
            return np.zeros(0, dtype=np.int64)
        return np.sort(np.concatenate(taken))
