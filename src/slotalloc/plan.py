"""Capacity planning: which small change would serve the most unmet demand.

Three kinds of change are considered, one at a time:

* ``add_caregiver``: one more caregiver at a session;
* ``add_places``: ``places`` more capacity at a session (default 5);
* ``move_caregiver``: one caregiver moved from an afternoon session (start at
  or after 12:00) to a morning session (start before 12:00) of the same site
  and day.

A cheap estimate ranks every candidate: with the base assignment's group
counts held, how many more children the session could take (for each split
of its caregivers between groups, the room left under capacity, group caps
and ratios, capped by the unplaced demand of each group that lists it), minus,
for a move, the children the afternoon can no longer keep. The best
estimates (``shortlist``) are then measured: the changed instance is re-solved
in deterministic mode, hinted with the base solution (whose places are taken
first where they still fit: for a move, the afternoon's lowest-value places
that no longer fit are left out), its search focused on the changed sessions.
The gain is that score minus the base score. For added caregivers or places
the base solution stays valid, so the gain is never negative; a move whose
re-solve scores below the base is not recommended. Gains are reproducible:
``solve(apply_change(instance, change), deterministic=True, time_limit=T,
seed=seed, hint=base, focus=change.sessions)`` gives them back.

On instances the optimiser solves to optimality the gain is exactly the value
of the change; on a city-sized instance (not proven optimal) it also contains
whatever the short focused re-solve improves near the changed sessions.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Assignment, Instance, Status
from slotalloc.result import Result
from slotalloc.solve import hint_arcs, solve

__all__ = ["Change", "Recommendation", "apply_change", "as_json", "candidates", "plan"]

IntArray = npt.NDArray[np.int64]

ACTIONS = ("add_caregiver", "add_places", "move_caregiver")


@dataclass(frozen=True)
class Change:
    """One change: ``action`` on ``session`` by ``amount``; ``source`` is a move's afternoon."""

    action: str
    session: str
    amount: int = 1
    source: str | None = None

    @property
    def sessions(self) -> tuple[str, ...]:
        """The sessions the change touches."""
        return (self.session,) if self.source is None else (self.session, self.source)


@dataclass(frozen=True)
class Recommendation:
    """A measured change: its estimate and its gain in children served and in score."""

    change: Change
    estimate: int
    children: int
    score: int

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form: ``{"action", "session", ..., "gain": {"children", "score"}}``."""
        ch = self.change
        out: dict[str, object] = {"action": ch.action, "session": ch.session}
        if ch.action == "add_places":
            out["places"] = ch.amount
        else:
            out["caregivers"] = ch.amount
        if ch.source is not None:
            out["from"] = ch.source
        out["estimate"] = self.estimate
        out["gain"] = {"children": self.children, "score": self.score}
        return out


def apply_change(instance: Instance, change: Change) -> Instance:
    """The instance with the change made (a new validated instance).

    Raises
    ------
    ValueError
        For an unknown action or session, or a move from a session without a
        caregiver.
    """
    if change.action not in ACTIONS:
        raise ValueError(f"unknown action {change.action!r}")
    doc = instance.model_dump(mode="json", exclude_none=True)
    by_id = {s["id"]: s for s in doc["sessions"]}
    for sid in change.sessions:
        if sid not in by_id:
            raise ValueError(f"unknown session {sid!r}")
    target = by_id[change.session]
    if change.action == "add_places":
        target["capacity"] += change.amount
    else:
        target["caregivers"] += change.amount
    if change.action == "move_caregiver":
        assert change.source is not None
        src = by_id[change.source]
        if src["caregivers"] < change.amount:
            raise ValueError(f"{change.source!r} has fewer than {change.amount} caregivers")
        src["caregivers"] -= change.amount
    return Instance.model_validate(doc)


def _children(instance: Instance, result: Result) -> int:
    ridx = instance.request_index
    return sum(len(instance.requests[ridx[a.request]].children) for a in result.assignments)


class _Room:
    """Per-session counts of a base assignment and the unplaced demand, for estimates."""

    def __init__(self, c: Compiled, arcs: IntArray) -> None:
        S, G = c.n_sessions, c.n_groups
        self.c = c
        self.n = np.zeros((S, G), dtype=np.int64)
        np.add.at(self.n, c.arc_sess[arcs], c.arc_groups[arcs])
        placed = np.zeros(c.n_requests, dtype=np.bool_)
        placed[c.arc_req[arcs]] = True
        open_arc = ~placed[c.arc_req]
        self.demand = np.zeros((S, G), dtype=np.int64)
        np.add.at(self.demand, c.arc_sess[open_arc], c.arc_groups[open_arc])

    def extra(self, s: int, capacity: int, caregivers: int) -> int:
        """Most more children session s could take with this capacity and staff (<0: over)."""
        c = self.c
        n = self.n[s]
        taken = int(n.sum())
        gcap = c.group_cap[s]
        want = np.minimum(self.demand[s], np.maximum(gcap - n, 0))
        if c.pooled:
            L = c.pool_lcm
            w = L // c.ratio
            left = caregivers * L - int(n @ w)
            if left < 0:
                return -((-left + int(w.min()) - 1) // int(w.min()))  # at least this many leave
            add = 0
            for g in np.argsort(w, kind="stable").tolist():
                k = min(int(want[g]), left // int(w[g]))
                add += k
                left -= k * int(w[g])
            return min(add, capacity - taken)
        ratio = c.ratio
        need = -(-n // ratio)
        if int(need.sum()) > caregivers:
            # Over-staffed base: how many must leave, keeping the most children.
            best = 0
            for y in _splits(caregivers, len(ratio)):
                best = max(best, int(np.minimum(n, ratio * np.array(y)).sum()))
            return best - taken
        best = 0
        for y in _splits(caregivers, len(ratio)):
            room = ratio * np.array(y) - n
            if (room < 0).any():
                continue
            best = max(best, int(np.minimum(room, want).sum()))
        return min(best, capacity - taken)


def _splits(k: int, g: int) -> list[tuple[int, ...]]:
    return [y for y in itertools.product(range(k + 1), repeat=g) if sum(y) == k]


def _is_morning(t: dt.datetime) -> bool:
    return t.hour < 12


def candidates(
    instance: Instance, base: Result, *, places: int = 5, compiled: Compiled | None = None
) -> list[tuple[Change, int]]:
    """Every change with a positive estimate, best estimate first (ties: instance order).

    Raises
    ------
    ValueError
        When ``base`` is infeasible (there is nothing to plan from).
    """
    if base.status is Status.INFEASIBLE:
        raise ValueError("the base solution is infeasible")
    c = compiled if compiled is not None else compile_instance(instance)
    room = _Room(c, hint_arcs(c, base))
    cap, cg = c.capacity.tolist(), c.caregivers.tolist()
    out: list[tuple[Change, int, int]] = []
    gain_now = [room.extra(s, cap[s], cg[s]) for s in range(c.n_sessions)]

    def add(change: Change, est: int, order: int) -> None:
        if est > 0:
            out.append((change, est, order))

    sessions = instance.sessions
    for s, sess in enumerate(sessions):
        now = max(gain_now[s], 0)
        add(Change("add_caregiver", sess.id), room.extra(s, cap[s], cg[s] + 1) - now, 3 * s)
        add(
            Change("add_places", sess.id, places),
            room.extra(s, cap[s] + places, cg[s]) - now,
            3 * s + 1,
        )
    # afternoon -> morning of the same site and local day
    by_day: dict[tuple[str, dt.date], list[int]] = {}
    for s, sess in enumerate(sessions):
        by_day.setdefault((sess.site, sess.start.date()), []).append(s)
    for group in by_day.values():
        for am in group:
            if not _is_morning(sessions[am].start):
                continue
            for pm in group:
                if _is_morning(sessions[pm].start) or cg[pm] < 1:
                    continue
                up = room.extra(am, cap[am], cg[am] + 1) - max(gain_now[am], 0)
                lost = min(room.extra(pm, cap[pm], cg[pm] - 1), 0)
                change = Change("move_caregiver", sessions[am].id, 1, sessions[pm].id)
                add(change, up + lost, 3 * am + 2)
    out.sort(key=lambda t: (-t[1], t[2]))
    return [(ch, est) for ch, est, _ in out]


def plan(
    instance: Instance,
    *,
    top: int = 10,
    time_limit: float = 1.0,
    seed: int = 0,
    places: int = 5,
    shortlist: int | None = None,
    base: Result | None = None,
    min_group_rate: float | None = None,
) -> list[Recommendation]:
    """Rank changes by measured gain, best first.

    Parameters
    ----------
    instance
        The instance to plan for.
    top
        How many recommendations to return at most.
    time_limit
        Deterministic time budget of every solve (the base and each re-solve).
    seed
        Seed of every solve.
    places
        Places added by an ``add_places`` change.
    shortlist
        How many best-estimated candidates to re-solve (default ``2 * top + 5``).
    base
        The base result, when already solved with the same deterministic
        settings (otherwise solved here).
    min_group_rate
        Passed to every solve (the opt-in fairness rule).

    Returns
    -------
    list of Recommendation
        Changes with a positive measured score gain, by decreasing score gain
        (ties: better estimate, then instance order).

    Raises
    ------
    ValueError
        When the instance is infeasible (its locked bookings conflict).
    """
    c = compile_instance(instance)
    kw: dict[str, object] = {
        "time_limit": time_limit,
        "seed": seed,
        "deterministic": True,
        "min_group_rate": min_group_rate,
    }
    if base is None:
        base = solve(instance, compiled=c, **kw)  # type: ignore[arg-type]
    if base.status is Status.INFEASIBLE or base.score is None:
        raise ValueError("the instance is infeasible: nothing to plan from")
    base_children = _children(instance, base)
    ranked = candidates(instance, base, places=places, compiled=c)
    n = 2 * top + 5 if shortlist is None else shortlist
    hint = _hint_by_value(c, base)
    recs: list[tuple[Recommendation, int]] = []
    for i, (change, est) in enumerate(ranked[:n]):
        changed = apply_change(instance, change)
        res = solve(changed, hint=hint, focus=change.sessions, **kw)  # type: ignore[arg-type]
        if res.score is None or res.score <= base.score:
            continue
        rec = Recommendation(
            change, est, _children(changed, res) - base_children, res.score - base.score
        )
        recs.append((rec, i))
    recs.sort(key=lambda t: (-t[0].score, t[1]))
    return [r for r, _ in recs[:top]]


def _hint_by_value(c: Compiled, base: Result) -> list[Assignment]:
    """The base places, most valuable first: a hint that no longer fits loses the cheapest."""
    ridx = {r: i for i, r in enumerate(c.request_ids)}
    sidx = {s: i for i, s in enumerate(c.session_ids)}
    ptr, sess = c.req_arc_ptr, c.arc_sess
    keyed = []
    for i, a in enumerate(base.assignments):
        r, s = ridx[a.request], sidx[a.session]
        lo = int(ptr[r])
        arc = lo + int(np.flatnonzero(sess[lo : int(ptr[r + 1])] == s)[0])
        keyed.append((-int(c.arc_coef[arc] + c.drop_cost[r]), i, a))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [a for _, _, a in keyed]


def as_json(recs: Sequence[Recommendation]) -> list[dict[str, object]]:
    """The recommendations in the JSON shape ``slotalloc report --plan`` reads."""
    return [r.to_dict() for r in recs]
