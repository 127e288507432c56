"""Rule 4, time overlaps: a child is in at most one arc of each maximal clique.

For child k and clique Q of mutually overlapping sessions,
``sum_{a of k, sess(a) in Q} x_a <= 1``. Cliques of an interval graph cover
every overlapping pair, and a session belongs to its own cliques, so the same
session reached through two requests is caught too.
"""

from __future__ import annotations

import numpy as np

from slotalloc.solver.formulation import Formulation, group_rows

__all__ = ["add_overlap"]


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
    f.add_grouped(
        "overlap",
        child_e * Q + clique_e,
        f.x(arc_e),
        np.ones_like(arc_e),
        c.n_children * Q,
        hi=1,
        min_terms=2,
        at_most_one=True,
    )
