"""First-come-first-served, the baseline of FORMAT §2.

Bookings are kept in file order when that keeps the assignment valid, else
dropped; then the other requests, in file order, each take their first
preference (by rank) that keeps the assignment valid.

Reading of FORMAT (documented in docs/format-notes.md): locked bookings are
placed before the unlocked ones. Whenever the literal file order keeps every
locked booking, this gives the same assignment (every rule is monotone); it
differs only where the literal order would drop a locked booking behind an
unlocked one and so call a feasible instance infeasible.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled
from slotalloc.rules import Occupancy

__all__ = ["first_come_first_served"]


def first_come_first_served(
    c: Compiled, *, priority_order: bool = False, rebook: npt.ArrayLike | None = None
) -> npt.NDArray[np.int64] | None:
    """The chosen arcs of the baseline, or None when a locked booking cannot be kept.

    With ``priority_order`` (FORMAT §2 "Priority order"), after the bookings
    every request not yet assigned, dropped bookings included, is taken in
    decreasing priority, file order within a priority. ``rebook`` (not
    FORMAT's baseline; only with ``priority_order``), a mask over requests:
    those of them left unassigned go first, before every other request.
    Rule 9 never counts a booking, so with bookings only in it the answer is
    still free of justified envy.
    """
    occ = Occupancy(c)
    arc_sess = c.arc_sess.tolist()
    ptr = c.req_arc_ptr.tolist()
    cptr = c.req_child_ptr.tolist()
    kids = c.req_child.tolist()
    size = c.req_size.tolist()
    groups = [[(g, k) for g, k in enumerate(row) if k] for row in c.arc_groups.tolist()]
    booked = c.booked_session.tolist()
    chosen: list[int] = []

    def place(r: int, a: int) -> bool:
        ch = kids[cptr[r] : cptr[r + 1]]
        s = arc_sess[a]
        if occ.fits(s, size[r], groups[a], ch):
            occ.add(s, size[r], groups[a], ch)
            chosen.append(a)
            return True
        return False

    order = c.booking_order.tolist()
    locked = c.locked.tolist()
    for r in [r for r in order if locked[r]] + [r for r in order if not locked[r]]:
        kept = False
        for a in range(ptr[r], ptr[r + 1]):
            if arc_sess[a] == booked[r]:
                kept = place(r, a)
                break
        if locked[r] and not kept:
            return None
    if priority_order:
        placed = set(c.arc_req[np.asarray(chosen, dtype=np.int64)].tolist())
        prio = c.req_priority.tolist()
        first = [False] * c.n_requests if rebook is None else np.asarray(rebook).tolist()
        rest = sorted(
            (r for r in range(c.n_requests) if r not in placed),
            key=lambda r: (not first[r], -prio[r]),
        )
    else:
        rest = [r for r in range(c.n_requests) if booked[r] < 0]
    for r in rest:
        for a in range(ptr[r], ptr[r + 1]):
            if place(r, a):
                break
    return np.array(sorted(chosen), dtype=np.int64)
