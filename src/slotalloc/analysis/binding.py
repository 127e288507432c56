"""Which limit binds in each session of a plan: the room, the caregivers or a group cap.

A limit *binds* when one more child could not join the session because of it.
Asked per age group of the policy (one more child of that group), in the
verifier's order of rules 3 (room, group cap, caregivers), with the one home
of the rules (:class:`slotalloc.rules.Occupancy`).
"""

from __future__ import annotations

from dataclasses import dataclass

from slotalloc.compile import compile_instance
from slotalloc.models import Instance, Solution
from slotalloc.rules import Occupancy, Rule, ceil_div

__all__ = ["SessionLimit", "binding_limits"]


@dataclass(frozen=True)
class SessionLimit:
    """One session's fill and the limits that bind there.

    ``binds`` is ``"room"`` when the session is full, else the limits that stop
    one more child of some group (``"caregivers"``, ``"group cap (infant)"``),
    joined by ``", "``; empty when a child of every group could still join.
    """

    session: str
    site: str
    children: int
    capacity: int
    caregivers_needed: int
    caregivers: int
    binds: str


def binding_limits(instance: Instance, solution: Solution) -> list[SessionLimit]:
    """Per session of ``instance`` (file order), its fill and the limits that bind.

    Parameters
    ----------
    instance, solution
        The instance and a valid solution of it.

    Raises
    ------
    KeyError
        When the solution names a request or session the instance lacks.
    """
    c = compile_instance(instance)
    occ = Occupancy(c)
    req_index = {rid: i for i, rid in enumerate(c.request_ids)}
    sess_index = {sid: i for i, sid in enumerate(c.session_ids)}
    for a in solution.assignments:
        r, s = req_index[a.request], sess_index[a.session]
        kids = c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()
        arcs = range(int(c.req_arc_ptr[r]), int(c.req_arc_ptr[r + 1]))
        arc = next(k for k in arcs if int(c.arc_sess[k]) == s)
        groups = [(g, int(n)) for g, n in enumerate(c.arc_groups[arc].tolist()) if n]
        occ.add(s, int(c.req_size[r]), groups, kids)
    scale = c.pool_lcm if c.pooled else 1
    out = []
    for s, sess in enumerate(instance.sessions):
        # Groups the session never takes (a cap of 0) are not a limit that binds.
        admitted = [g for g in range(c.n_groups) if c.group_cap[s, g] > 0]
        refused = [occ.broken_rule(s, 1, [(g, 1)], []) for g in admitted]
        if refused and all(r is Rule.CAPACITY for r in refused):
            binds = "room"
        else:
            parts = []
            if Rule.CAREGIVERS in refused:
                parts.append("caregivers")
            parts += [
                f"group cap ({c.group_names[g]})"
                for g, r in zip(admitted, refused, strict=True)
                if r is Rule.GROUP_CAP
            ]
            binds = ", ".join(parts)
        need = ceil_div(occ.need[s], scale)  # pooled: the scaled need, rounded up
        out.append(
            SessionLimit(
                sess.id, sess.site, occ.taken[s], int(c.capacity[s]), need,
                int(c.caregivers[s]), binds,
            )
        )  # fmt: skip
    return out
