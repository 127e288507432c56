"""Hypothesis strategies that build only valid instances.

Small worlds on purpose: few sessions (some overlapping, some touching), few
children with birth dates around the age-group edges (including the 29th-31st
of a month), sibling requests, both staffing modes, optional per-child caps and
group caps, and optionally bookings (some locked).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import strategies as st

from slotalloc.models import Instance

SESSION_DAY = dt.date(2025, 4, 19)
# (start hour, end hour) slots: some overlap, some only touch
SLOTS = [(8, 12), (9, 10), (10, 11), (12, 14), (14, 17), (15, 16)]


@st.composite
def birth_dates(draw: st.DrawFn) -> str:
    months = draw(st.integers(min_value=-1, max_value=40))
    day = draw(st.sampled_from([1, 15, 18, 19, 20, 28, 29, 30, 31]))
    y, m = SESSION_DAY.year, SESSION_DAY.month - months
    while m <= 0:
        m += 12
        y -= 1
    while True:
        try:
            return dt.date(y, m, day).isoformat()
        except ValueError:
            day -= 1


@st.composite
def instance_dicts(
    draw: st.DrawFn,
    *,
    max_sessions: int = 5,
    max_children: int = 8,
    max_requests: int = 8,
    bookings: bool = False,
) -> dict[str, Any]:
    """A valid instance as a JSON-shaped dict."""
    n_sessions = draw(st.integers(1, max_sessions))
    sessions = []
    for i in range(n_sessions):
        day = SESSION_DAY + dt.timedelta(days=draw(st.integers(0, 1)))
        h0, h1 = draw(st.sampled_from(SLOTS))
        s: dict[str, Any] = {
            "id": f"s{i}",
            "site": f"site{i % 2}",
            "start": f"{day.isoformat()}T{h0:02d}:00:00+08:00",
            "end": f"{day.isoformat()}T{h1:02d}:00:00+08:00",
            "capacity": draw(st.integers(0, 6)),
            "caregivers": draw(st.integers(0, 3)),
        }
        if draw(st.booleans()):
            s["group_caps"] = {
                draw(st.sampled_from(["infant", "toddler", "older"])): draw(st.integers(0, 4))
            }
        if draw(st.integers(0, 3)) == 0:
            lo = draw(st.integers(0, 30))
            s["min_months"] = lo
            s["max_months"] = draw(st.integers(lo + 1, 40))
        sessions.append(s)
    n_children = draw(st.integers(1, max_children))
    children = [
        {
            "id": f"c{i}",
            "birth_date": draw(birth_dates()),
            "residency": draw(st.sampled_from(["local", "non_local"])),
        }
        for i in range(n_children)
    ]
    n_requests = draw(st.integers(1, max_requests))
    requests = []
    ids = [s["id"] for s in sessions]
    for i in range(n_requests):
        kids = draw(
            st.lists(st.sampled_from(range(n_children)), min_size=1, max_size=2, unique=True)
        )
        prefs = draw(
            st.lists(st.sampled_from(ids), min_size=1, max_size=min(3, len(ids)), unique=True)
        )
        requests.append(
            {
                "id": f"r{i}",
                "children": [f"c{k}" for k in kids],
                "preferences": prefs,
                "priority": draw(st.integers(0, 2)),
            }
        )
    policy: dict[str, Any] = {
        "preset": "cn-2019",
        "staffing": draw(st.sampled_from(["per_group", "pooled"])),
    }
    if draw(st.booleans()):
        policy["max_sessions_per_child"] = draw(st.integers(1, 2))
    inst: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "name": "hypothesis",
        "policy": policy,
        "sessions": sessions,
        "children": children,
        "requests": requests,
    }
    if bookings:
        chosen = draw(
            st.lists(st.sampled_from(range(n_requests)), unique=True, max_size=n_requests)
        )
        inst["bookings"] = [
            {
                "request": f"r{r}",
                "session": draw(st.sampled_from(requests[r]["preferences"])),
                "locked": draw(st.integers(0, 3)) == 0,
            }
            for r in chosen
        ]
    return inst


def instances(**kwargs: Any) -> st.SearchStrategy[Instance]:
    """Valid :class:`Instance` objects; keyword arguments as :func:`instance_dicts`."""
    return instance_dicts(**kwargs).map(Instance.model_validate)
