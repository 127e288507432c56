"""Plain figures about an allocation, for the demo and for people reading a result."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from slotalloc.models import Assignment, Instance

__all__ = ["Summary", "summarise"]


@dataclass(frozen=True)
class Summary:
    """Children requesting and served, by district and by residency, and session fill.

    A child counts as *requesting* when it is in at least one request and as
    *served* when it is in at least one assigned request.
    """

    children_requesting: int
    children_served: int
    requests: int
    requests_served: int
    by_district: tuple[tuple[str, int, int], ...]  # (district, requesting, served)
    by_residency: tuple[tuple[str, int, int], ...]
    morning_fill: tuple[int, int]  # (places taken, capacity) of sessions starting before noon
    afternoon_fill: tuple[int, int]


def _rate_rows(requesting: Counter[str], served: Counter[str]) -> tuple[tuple[str, int, int], ...]:
    return tuple((k, requesting[k], served[k]) for k in sorted(requesting))


def summarise(instance: Instance, assignments: tuple[Assignment, ...]) -> Summary:
    """Summarise an allocation of ``instance``.

    A request's district is that of the site of its first preference; a session
    is a morning session when it starts before 12:00 in its own offset.
    """
    sites = {s.id: s for s in instance.sites}
    sessions = instance.sessions
    sidx = instance.session_index
    children = instance.children
    cidx = instance.child_index
    placed = {a.request: a.session for a in assignments}

    district_of_child: dict[str, str] = {}
    served_children: set[str] = set()
    for r in instance.requests:
        first = sessions[sidx[r.preferences[0]]]
        site = sites.get(first.site)
        district = (site.district if site is not None else None) or "unknown"
        for c in r.children:
            district_of_child.setdefault(c, district)
            if r.id in placed:
                served_children.add(c)

    req_d: Counter[str] = Counter()
    srv_d: Counter[str] = Counter()
    req_r: Counter[str] = Counter()
    srv_r: Counter[str] = Counter()
    for c, d in district_of_child.items():
        res = children[cidx[c]].residency or "unknown"
        req_d[d] += 1
        req_r[res] += 1
        if c in served_children:
            srv_d[d] += 1
            srv_r[res] += 1

    taken: Counter[str] = Counter()
    size = {r.id: len(r.children) for r in instance.requests}
    for rid, sid in placed.items():
        taken[sid] += size[rid]
    am = [0, 0]
    pm = [0, 0]
    for s in sessions:
        bucket = am if s.start.hour < 12 else pm
        bucket[0] += taken[s.id]
        bucket[1] += s.capacity

    return Summary(
        children_requesting=len(district_of_child),
        children_served=len(served_children),
        requests=len(instance.requests),
        requests_served=len(placed),
        by_district=_rate_rows(req_d, srv_d),
        by_residency=_rate_rows(req_r, srv_r),
        morning_fill=(am[0], am[1]),
        afternoon_fill=(pm[0], pm[1]),
    )
