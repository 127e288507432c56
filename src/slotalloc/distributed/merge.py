"""The merge check of a decomposed solve: drop what breaks a rule on the whole instance.

The parts of :mod:`slotalloc.distributed.decompose` are solved apart, so their
merged assignment can break a rule only through locked bookings or a buggy
part; :func:`repair` drops such assignments, lowest value first, locked
bookings never. The checks are :mod:`slotalloc.rules`'.
"""

from __future__ import annotations

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.rules import child_conflicts, session_fits

__all__ = ["repair"]


def repair(c: Compiled, arcs: IntArray) -> tuple[IntArray, int]:
    """Drop assignments until every FORMAT §2 rule holds on the whole instance.

    Parameters
    ----------
    c
        The compiled whole instance.
    arcs
        Chosen candidate arcs (eligibility and preference rules hold by
        construction; at most one per request is kept).

    Returns
    -------
    tuple
        ``(arcs, dropped)``: the kept arcs, sorted, and how many were dropped.
        Locked bookings are never dropped (their consistency is checked
        before solving); among the others the lowest-valued arcs go first.
    """
    chosen = np.unique(np.asarray(arcs, dtype=np.int64))
    # rule 7: one arc per request, the best-valued one
    order = np.lexsort((-c.arc_coef[chosen], c.arc_req[chosen]))
    chosen = chosen[order]
    first = np.ones(chosen.shape[0], dtype=np.bool_)
    first[1:] = c.arc_req[chosen[1:]] != c.arc_req[chosen[:-1]]
    dropped = int((~first).sum())
    keep = set(chosen[first].tolist())
    dropped += _repair_sessions(c, keep)
    dropped += _repair_children(c, keep)
    return np.array(sorted(keep), dtype=np.int64), dropped


def _value(c: Compiled, a: int) -> tuple[int, int, int]:
    """Arcs in the order they are kept: locked last to go; then lowest coefficient; then index."""
    return (int(c.locked[c.arc_req[a]]), int(c.arc_coef[a]), -a)


def _repair_sessions(c: Compiled, keep: set[int]) -> int:
    """Rule 3, per session: drop the lowest-valued unlocked arcs of a session over a limit."""
    dropped = 0
    by_sess: dict[int, list[int]] = {}
    for a in keep:
        by_sess.setdefault(int(c.arc_sess[a]), []).append(a)
    for s, members in by_sess.items():
        groups = c.arc_groups[members].sum(axis=0)
        if session_fits(c, s, int(groups.sum()), groups.tolist()):
            continue
        members.sort(key=lambda a: _value(c, a))
        for a in members:
            if c.locked[c.arc_req[a]]:
                break
            keep.discard(a)
            dropped += 1
            groups = groups - c.arc_groups[a]
            if session_fits(c, s, int(groups.sum()), groups.tolist()):
                break
    return dropped


def _repair_children(c: Compiled, keep: set[int]) -> int:
    """Rules 4 and 5, per child: keep its best arcs that overlap none kept and fit the cap."""
    dropped = 0
    in_keep = np.zeros(c.n_arcs, dtype=np.bool_)
    in_keep[np.array(sorted(keep), dtype=np.int64)] = True
    counts = np.bincount(
        np.repeat(np.arange(c.n_children), np.diff(c.child_arc_ptr))[in_keep[c.child_arc]],
        minlength=c.n_children,
    )
    for child in np.flatnonzero(counts > 1).tolist():
        mine = [
            a
            for a in c.child_arc[c.child_arc_ptr[child] : c.child_arc_ptr[child + 1]].tolist()
            if a in keep
        ]
        mine.sort(key=lambda a: _value(c, a), reverse=True)
        held: list[int] = []  # sessions of the arcs kept so far
        for a in mine:
            s = int(c.arc_sess[a])
            fits = not child_conflicts(c, s, held)
            if fits or c.locked[c.arc_req[a]]:
                held.append(s)
            else:
                keep.discard(a)
                dropped += 1
    return dropped
