"""Rule 4, time overlaps: a child is in at most one arc of each maximal clique.

For child k and clique Q of mutually overlapping sessions,
``sum_{a of k, sess(a) in Q} x_a <= 1``. Cliques of an interval graph cover
every overlapping pair, and a session belongs to its own cliques, so the same
session reached through two requests is caught too.

A row whose arcs all belong to one request is left out: that request's own
at-most-one (rule 7) already implies it. This drops most rows (a child with
one request has none left), which GLOP's presolve would otherwise find as
proportional rows at a cost of seconds on large instances.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.solver.formulation import Formulation, group_rows

__all__ = ["add_overlap", "spans_requests"]

BoolArray = npt.NDArray[np.bool_]


def add_overlap(f: Formulation) -> None:
    """One at-most-one per (child, clique) holding two or more of the child's arcs."""
    c = f.c
    Q = int(c.clique_ptr.shape[0]) - 1
    if Q == 0 or c.child_arc.shape[0] == 0:
        return
    # session -> cliques containing it
    clique_of_entry = np.repeat(np.arange(Q, dtype=np.int64), np.diff(c.clique_ptr))
    order, sess_ptr = group_rows(c.clique_sess, c.n_sessions)
    sess_cliques = clique_of_entry[order]
    per_sess = np.diff(sess_ptr)

    child = np.repeat(np.arange(c.n_children, dtype=np.int64), np.diff(c.child_arc_ptr))
    arc = c.child_arc
    s = c.arc_sess[arc]
    reps = per_sess[s]
    child_e = np.repeat(child, reps)
    arc_e = np.repeat(arc, reps)
    first = np.repeat(sess_ptr[s], reps)
    offs = np.arange(int(reps.sum()), dtype=np.int64) - np.repeat(np.cumsum(reps) - reps, reps)
    clique_e = sess_cliques[first + offs]
    keys = child_e * Q + clique_e
    keep = spans_requests(keys, c.arc_req[arc_e])
    keys, arc_e = keys[keep], arc_e[keep]
    f.add_grouped(
        "overlap",
        keys,
        f.x(arc_e),
        np.ones_like(arc_e),
        c.n_children * Q,
        hi=1,
        min_terms=2,
        at_most_one=True,
    )


def spans_requests(keys: IntArray, reqs: IntArray) -> BoolArray:
    """Per entry: whether its row (entries with the same key) holds arcs of two or more requests."""
    if keys.shape[0] == 0:
        return np.zeros(0, dtype=np.bool_)
    order = np.argsort(keys, kind="stable")
    k = keys[order]
    r = reqs[order]
    starts = np.concatenate([[True], k[1:] != k[:-1]])
    first = np.flatnonzero(starts)
    group = np.cumsum(starts) - 1
    multi = np.minimum.reduceat(r, first) != np.maximum.reduceat(r, first)
    out = np.empty(keys.shape[0], dtype=np.bool_)
    out[order] = multi[group]
    return out
