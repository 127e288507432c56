"""A deliberately plain reference model of FORMAT §3 online booking.

Written apart from ``slotalloc.online`` and sharing none of its machinery: no
compiler, no incremental state, no indices. It keeps the places held as a list
of (request id, session id) pairs and the waitlist as a list, and answers every
"is this feasible?" by recomputing all of FORMAT §2 rules 1-5 and 7 from
scratch over the models, with its own age and eligibility code. A cancellation
scans the whole waitlist literally. Slow on purpose; obviously right, we hope.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Iterator, Sequence
from fractions import Fraction
from typing import Any

from slotalloc.io import parse_event
from slotalloc.models import BookEvent, Child, Instance, Request, Session


class RefError(Exception):
    """An event refused by the reference (nothing changed)."""


class RefInvalidState(Exception):
    """The starting places break a rule; ``index`` is the first bad one."""

    def __init__(self, index: int) -> None:
        super().__init__(f"place {index} breaks a rule")
        self.index = index


def months_old(born: dt.date, on: dt.date) -> int:
    months = (on.year - born.year) * 12 + (on.month - born.month)
    if on.day < born.day:
        months -= 1
    return months


class ReferenceOnline:
    """The literal semantics of FORMAT §3 over plain Python data."""

    def __init__(self, instance: Instance, held: Sequence[tuple[str, str]] | None = None) -> None:
        self.instance = instance
        self.sessions: dict[str, Session] = {s.id: s for s in instance.sessions}
        self.births: dict[str, dt.date] = {c.id: c.birth_date for c in instance.children}
        self.requests: dict[str, Request] = {r.id: r for r in instance.requests}
        self.used: set[str] = set(self.requests)
        self.held: list[tuple[str, str]] = []
        self.waitlist: list[str] = []
        places = [(b.request, b.session) for b in instance.bookings] if held is None else held
        for i, (rid, sid) in enumerate(places):
            if not self.valid([*self.held, (rid, sid)]):
                raise RefInvalidState(i)
            self.held.append((rid, sid))

    @classmethod
    def from_places(
        cls, instance: Instance, places: Sequence[tuple[str, str]]
    ) -> tuple[ReferenceOnline, list[tuple[str, str]]]:
        """Places held given, the other requests waitlisted in file order, one full scan."""
        ref = cls(instance, held=places)
        placed = {rid for rid, _ in places}
        ref.waitlist = [
            r.id
            for r in instance.requests
            if r.id not in placed
            and any(
                all(ref.group(c, ref.sessions[sid]) is not None for c in r.children)
                for sid in r.preferences
            )
        ]
        return ref, ref.scan()

    # ---------------------------------------------------------------- rules

    def group(self, child: str, session: Session) -> str | None:
        groups = self.instance.policy.groups
        lo = min(g.min_months for g in groups) if session.min_months is None else session.min_months
        hi = max(g.max_months for g in groups) if session.max_months is None else session.max_months
        age = months_old(self.births[child], session.start.date())
        if age < 0 or not lo <= age < hi:
            return None
        for g in groups:
            if g.min_months <= age < g.max_months:
                return g.name
        return None

    def valid(self, pairs: list[tuple[str, str]]) -> bool:
        policy = self.instance.policy
        groups = {g.name: g for g in policy.groups}
        if len({rid for rid, _ in pairs}) != len(pairs):
            return False
        per_session: dict[str, list[str]] = {}
        per_child: dict[str, list[Session]] = {}
        for rid, sid in pairs:
            request = self.requests.get(rid)
            if request is None or sid not in request.preferences or sid not in self.sessions:
                return False
            session = self.sessions[sid]
            for child in request.children:
                g = self.group(child, session)
                if g is None:
                    return False
                per_session.setdefault(sid, []).append(g)
                per_child.setdefault(child, []).append(session)
        for sid, names in per_session.items():
            session = self.sessions[sid]
            if len(names) > session.capacity:
                return False
            need: Fraction | int = 0
            for name, group in groups.items():
                n = names.count(name)
                if n > session.group_caps.get(name, group.max_group_size):
                    return False
                if policy.staffing == "pooled":
                    need += Fraction(n, group.ratio)
                else:
                    need += math.ceil(n / group.ratio)
            if need > session.caregivers:
                return False
        for sessions in per_child.values():
            if (
                policy.max_sessions_per_child is not None
                and len(sessions) > policy.max_sessions_per_child
            ):
                return False
            for i, a in enumerate(sessions):
                for b in sessions[i + 1 :]:
                    if a.start < b.end and b.start < a.end:
                        return False
        return True

    def first_feasible(self, rid: str) -> str | None:
        for sid in self.requests[rid].preferences:
            if self.valid([*self.held, (rid, sid)]):
                return sid
        return None

    # ---------------------------------------------------------------- events

    def book(self, request: Request, children: Iterable[Child] = ()) -> str | None:
        """The session taken, or None when waitlisted; RefError when refused."""
        if request.id in self.used:
            raise RefError("request id used before")
        declared: dict[str, dt.date] = {}
        for c in children:
            if c.id in declared:
                raise RefError("child declared twice")
            if c.id in self.births and self.births[c.id] != c.birth_date:
                raise RefError("child declared with another birth date")
            declared[c.id] = c.birth_date
        for child in request.children:
            if child not in self.births and child not in declared:
                raise RefError("unknown child")
        for sid in request.preferences:
            if sid not in self.sessions:
                raise RefError("unknown session")
        fresh = [cid for cid in declared if cid not in self.births]
        for cid in fresh:
            self.births[cid] = declared[cid]
        if not any(
            all(self.group(c, self.sessions[sid]) is not None for c in request.children)
            for sid in request.preferences
        ):
            for cid in fresh:
                del self.births[cid]
            raise RefError("no preference could ever take the request")
        self.used.add(request.id)
        self.requests[request.id] = request
        sid = self.first_feasible(request.id)
        if sid is None:
            self.waitlist.append(request.id)
        else:
            self.held.append((request.id, sid))
        return sid

    def cancel(self, rid: str) -> list[tuple[str, str]]:
        """The promotions; RefError when the request neither holds a place nor waits."""
        if rid in self.waitlist:
            self.waitlist.remove(rid)
            return []
        for pair in self.held:
            if pair[0] == rid:
                self.held.remove(pair)
                return self.scan()
        raise RefError("nothing to cancel")

    def scan(self) -> list[tuple[str, str]]:
        promoted = []
        order = list(self.waitlist)
        if self.instance.policy.envy_free:  # FORMAT §4: by priority, joining order within
            order.sort(key=lambda rid: -self.requests[rid].priority)
        for rid in order:
            sid = self.first_feasible(rid)
            if sid is not None:
                self.held.append((rid, sid))
                self.waitlist.remove(rid)
                promoted.append((rid, sid))
        return promoted

    def held_map(self) -> dict[str, str]:
        return dict(self.held)


def reference_replay(instance: Instance, lines: Iterable[str]) -> Iterator[dict[str, Any]]:
    """FORMAT §3 decisions by the reference; errors carry the text "refused"."""
    ref = ReferenceOnline(instance)
    n = -1
    for line in lines:
        if not line.strip():
            continue
        n += 1
        try:
            event = parse_event(line)
        except ValueError:
            yield {"event": n, "error": "malformed"}
            continue
        try:
            if isinstance(event, BookEvent):
                sid = ref.book(event.request, event.children or ())
                yield {
                    "event": n,
                    "request": event.request.id,
                    "session": sid,
                    "waitlisted": sid is None,
                }
            else:
                promoted = ref.cancel(event.request)
                yield {
                    "event": n,
                    "request": event.request,
                    "cancelled": True,
                    "promoted": [{"request": r, "session": s} for r, s in promoted],
                }
        except RefError:
            yield {"event": n, "error": "refused"}
