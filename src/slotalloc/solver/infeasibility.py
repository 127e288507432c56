"""Infeasibility: exactly when the locked bookings alone break a rule (FORMAT §2).

:func:`locked_conflicts` checks the assignment made of the locked bookings only
and names every session, child and booking in conflict. The list is correct but
not necessarily minimal. :func:`minimal_conflicts` narrows it to a minimal
conflicting set of locked bookings by deletion filtering: every rule is
monotone, so a set from which no single booking can be removed without the
conflict disappearing is minimal (each of its proper subsets is consistent).

The checks are :mod:`slotalloc.rules`'; each item's ``rule`` is the rule's
:attr:`~slotalloc.rules.Rule.conflict_label`, the word solution files carry.
"""

from __future__ import annotations

import numpy as np

from slotalloc.compile import Compiled
from slotalloc.models import ConflictItem
from slotalloc.rules import Rule, child_cap_exceeded, session_excess, sessions_overlap

__all__ = ["locked_conflicts", "minimal_conflict_set", "minimal_conflicts"]


def locked_conflicts(c: Compiled) -> tuple[ConflictItem, ...]:
    """Every rule the locked bookings alone break; empty when they are consistent."""
    return _conflicts(c, [int(r) for r in c.booking_order.tolist() if c.locked[r]])


def minimal_conflict_set(c: Compiled) -> list[int]:
    """A minimal set of locked requests whose bookings conflict (empty when none do).

    Deletion filtering: start from the bookings named by the first conflict
    found (already a conflicting set: each check looks at one session or one
    child), then drop each booking in turn and keep it out whenever the rest
    still conflicts. Linear in the size of that first set, each test one run
    of the per-rule checks over it.
    """
    items = locked_conflicts(c)
    if not items:
        return []
    ridx = {r: i for i, r in enumerate(c.request_ids)}
    order = {int(r): k for k, r in enumerate(c.booking_order.tolist())}
    current = sorted({ridx[b] for b in items[0].bookings}, key=order.__getitem__)
    i = 0
    while i < len(current):
        trial = current[:i] + current[i + 1 :]
        if _conflicts(c, trial):
            current = trial
        else:
            i += 1
    return current


def minimal_conflicts(c: Compiled) -> tuple[ConflictItem, ...]:
    """An explanation naming a minimal conflicting set of locked bookings.

    The items are the rule checks that fail on that set alone, so every
    booking they name is needed: without any one of them, the remaining
    bookings of the explanation are consistent. Empty when the locked bookings
    are consistent.
    """
    return _conflicts(c, minimal_conflict_set(c))


def _conflicts(c: Compiled, locked_reqs: list[int]) -> tuple[ConflictItem, ...]:
    """The rules broken by the assignment made of these locked requests' bookings."""
    items: list[ConflictItem] = []
    placed: list[tuple[int, int]] = []  # (request, arc)
    for r in locked_reqs:
        lo, hi = int(c.req_arc_ptr[r]), int(c.req_arc_ptr[r + 1])
        if hi == lo:  # the compiler keeps a locked request's own arc only when eligible
            items.append(_ineligible(c, r))
        else:
            placed.append((r, lo))
    by_session: dict[int, list[int]] = {}
    for _r, a in placed:
        by_session.setdefault(int(c.arc_sess[a]), []).append(a)
    for s, arcs in by_session.items():
        items.extend(_session_items(c, s, arcs))
    by_child: dict[int, list[int]] = {}
    for r, a in placed:
        for k in c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist():
            by_child.setdefault(k, []).append(a)
    for k, arcs in by_child.items():
        items.extend(_child_items(c, k, arcs))
    return tuple(items)


def _ineligible(c: Compiled, r: int) -> ConflictItem:
    """Rule 2: a locked booking whose session does not admit one of its children."""
    rid, sid = c.request_ids[r], c.session_ids[int(c.booked_session[r])]
    kids = c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()
    return ConflictItem(
        rule=Rule.ELIGIBILITY.conflict_label,
        message=f"locked booking {rid!r} puts a child in {sid!r} "
        "whose age or group does not admit it",
        sessions=(sid,),
        bookings=(rid,),
        children=tuple(c.child_ids[k] for k in kids),
    )


def _session_items(c: Compiled, s: int, arcs: list[int]) -> list[ConflictItem]:
    """Rule 3: the limits of session ``s`` that these locked arcs exceed together."""
    sid = c.session_ids[s]
    counts = c.arc_groups[np.array(arcs)].sum(axis=0).tolist()
    total = sum(counts)
    names = tuple(c.request_ids[int(c.arc_req[a])] for a in arcs)
    items: list[ConflictItem] = []
    for rule, g in session_excess(c, s, total, counts):
        if rule is Rule.CAPACITY:
            message = (
                f"locked bookings put {total} children in {sid!r}, capacity {int(c.capacity[s])}"
            )
        elif rule is Rule.GROUP_CAP:
            message = (
                f"locked bookings put {counts[g]} {c.group_names[g]} children in "
                f"{sid!r}, cap {int(c.group_cap[s, g])}"
            )
        else:
            need, scale = c.caregiver_need(counts)
            need_text = f"{need}/{scale}" if scale > 1 else str(need)
            message = (
                f"locked bookings in {sid!r} need {need_text} caregivers, "
                f"{int(c.caregivers[s])} available"
            )
        items.append(
            ConflictItem(rule=rule.conflict_label, message=message, sessions=(sid,), bookings=names)
        )
    return items


def _child_items(c: Compiled, k: int, arcs: list[int]) -> list[ConflictItem]:
    """Rules 4 and 5: what the locked arcs holding child ``k`` break together."""
    rid, sid, cid = c.request_ids, c.session_ids, c.child_ids
    items: list[ConflictItem] = []
    for i, a in enumerate(arcs):
        for b in arcs[i + 1 :]:
            s, t = int(c.arc_sess[a]), int(c.arc_sess[b])
            if sessions_overlap(c, s, t):
                items.append(
                    ConflictItem(
                        rule=Rule.OVERLAP.conflict_label,
                        message=f"locked bookings put child {cid[k]!r} in overlapping "
                        f"sessions {sid[s]!r} and {sid[t]!r}",
                        sessions=(sid[s], sid[t]),
                        bookings=(rid[int(c.arc_req[a])], rid[int(c.arc_req[b])]),
                        children=(cid[k],),
                    )
                )
    cap = c.max_sessions_per_child
    if child_cap_exceeded(len(arcs), cap):
        items.append(
            ConflictItem(
                rule=Rule.PER_CHILD_CAP.conflict_label,
                message=f"locked bookings put child {cid[k]!r} in {len(arcs)} sessions, "
                f"at most {cap} allowed",
                sessions=tuple(sid[int(c.arc_sess[a])] for a in arcs),
                bookings=tuple(rid[int(c.arc_req[a])] for a in arcs),
                children=(cid[k],),
            )
        )
    return items
