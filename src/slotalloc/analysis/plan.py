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
for a move, the children the afternoon can no longer keep.

The best estimates (``shortlist``) are then measured, each against a control
solved on the same footing. With ``kw = dict(time_limit=T, seed=seed,
deterministic=True, min_group_rate=R)`` and ``hint = hint_by_value(instance,
base)`` (the base places, most valuable first: where they no longer fit, as
for a move's afternoon, the cheapest are the ones left out)::

    changed = solve(apply_change(instance, change), hint=hint, focus=change.sessions, **kw)
    control = solve(instance, hint=hint, focus=change.sessions, **kw)
    gain = changed.score - control.score      # children: placed children, likewise

The two calls differ only by the change, so whatever the short hinted search
improves on its own (on a city the base is ~1 % from its bound, and every
re-solve also improves the neighbourhoods around the changed sessions)
appears in both and cancels. Controls are shared, never solved twice:

* once the unchanged instance's optimum is known it is the control of every
  change: the base when it is proven optimal (then no control is solved at
  all: any control scores at least ``base.score``, its hint being the valid
  base, and at most the optimum, which is ``base.score``; its children count
  is the control's too), or else the first control proven optimal;
* ``focus`` steers only the optimiser's large-neighbourhood search: a control
  the optimiser solved whole (small models, ``stats["strategy"] ==
  "whole-model"``) is the same call for every focus, so it serves every
  change; otherwise there is one control per focus (so on a city nearly
  every measured change has its own: up to twice the solves);
* a control is solved only for a change that can still enter the top list:
  the control scores at least ``base.score`` (its hint is the valid base), so
  the gain is at most ``changed.score - base.score``; when that is <= 0, or
  <= the ``top``-th best gain already measured (a later candidate loses
  ties), the change is out of reach. The list is the one every control
  would give.

Only positive gains are recommended. For ``add_caregiver`` and
``add_places`` the control's assignment stays valid in the changed instance,
so the change's true gain is never negative: a negative ``changed - control``
is the two searches' noise, read as 0, and the change is not recommended. A
move (which may break the hint) with a gain <= 0 is not recommended either.
The calls above give back every reported gain, except where a control proven
optimal stands in for a later change's own: that gain is against the optimum,
never above the one its own call gives.
When the re-solve and the control (or the base) are proven optimal, as on
instances the optimiser solves to optimality, the gain is exactly
``optimum(changed) - optimum(instance)``; otherwise it is the change's effect
with the search's own improvement taken out, not a proof.

:func:`plan` reports progress through ``on_progress`` (a
:class:`PlanProgress` after each measured candidate) and prints nothing.
"""

from __future__ import annotations

import datetime as dt
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Assignment, Instance, Status
from slotalloc.result import Result
from slotalloc.rules import caregiver_need, ceil_div, group_room, pooled_weights
from slotalloc.solve import hint_arcs, solve

__all__ = [
    "Change",
    "PlanProgress",
    "Recommendation",
    "apply_change",
    "as_json",
    "candidates",
    "hint_by_value",
    "plan",
]


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
    """A measured change: its estimate and its gain in children served and in score.

    ``score`` is ``changed_score - control_score`` and ``children`` the same
    difference of placed children; ``changed_score`` is the changed
    instance's re-solve and ``control_score`` the unchanged instance's,
    solved on the same footing (the base score when the base is optimal).
    """

    change: Change
    estimate: int
    children: int
    score: int
    changed_score: int | None = None
    control_score: int | None = None

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


@dataclass(frozen=True)
class PlanProgress:
    """Where :func:`plan` stands, passed to ``on_progress`` after each measured candidate.

    Attributes
    ----------
    done
        Candidates measured so far (1, 2, ..., ``total``).
    total
        Candidates to measure in this run (the shortlist, or fewer if fewer exist).
    elapsed
        Wall seconds since :func:`plan` was called (the base solve included).
    best_gain
        Best positive score gain measured so far, or None when there is none yet.
    """

    done: int
    total: int
    elapsed: float
    best_gain: int | None


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
        want = np.minimum(self.demand[s], np.maximum(c.group_cap[s] - n, 0))
        if c.pooled:
            return self._extra_pooled(n, want, capacity, caregivers)
        return self._extra_per_group(n, want, capacity, caregivers)

    def _extra_pooled(self, n: IntArray, want: IntArray, capacity: int, caregivers: int) -> int:
        """:meth:`extra` under ``pooled`` staffing: the cheapest groups first."""
        ratio = self.c.ratio
        L = self.c.pool_lcm
        w = pooled_weights(ratio, L)
        left = caregivers * L - int(caregiver_need(n.tolist(), ratio.tolist(), L))
        if left < 0:
            return -ceil_div(-left, int(w.min()))  # at least this many leave
        add = 0
        for g in np.argsort(w, kind="stable").tolist():
            k = min(int(want[g]), left // int(w[g]))
            add += k
            left -= k * int(w[g])
        return min(add, capacity - int(n.sum()))

    def _extra_per_group(self, n: IntArray, want: IntArray, capacity: int, caregivers: int) -> int:
        """:meth:`extra` under ``per_group`` staffing: the best split of the caregivers."""
        ratio = self.c.ratio
        taken = int(n.sum())
        if int(caregiver_need(n.tolist(), ratio.tolist())) > caregivers:
            # Over-staffed base: how many must leave, keeping the most children.
            best = 0
            for y in _splits(caregivers, len(ratio)):
                best = max(best, int(np.minimum(n, group_room(np.array(y), ratio)).sum()))
            return best - taken
        best = 0
        for y in _splits(caregivers, len(ratio)):
            room = group_room(np.array(y), ratio) - n
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
    on_progress: Callable[[PlanProgress], None] | None = None,
) -> list[Recommendation]:
    """Rank changes by measured gain against a control, best first.

    Parameters
    ----------
    instance
        The instance to plan for.
    top
        How many recommendations to return at most.
    time_limit
        Deterministic time budget of every solve (the base, each re-solve and
        each control).
    seed
        Seed of every solve.
    places
        Places added by an ``add_places`` change.
    shortlist
        How many best-estimated candidates to re-solve (default ``2 * top + 5``).
    base
        A valid result of ``instance`` to plan from (otherwise solved here in
        deterministic mode). Any valid result will do, even a poor one (e.g.
        first-come-first-served): the controls start from it too.
    min_group_rate
        Passed to every solve (the opt-in fairness rule).
    on_progress
        Called with a :class:`PlanProgress` after each measured candidate
        (``total`` calls, ``done`` = 1, 2, ...), from the calling thread; not
        called when there is no candidate. Its exceptions propagate.

    Returns
    -------
    list of Recommendation
        Changes with a positive gain over their control, by decreasing score
        gain (ties: better estimate, then instance order).

    Raises
    ------
    ValueError
        When the instance is infeasible (its locked bookings conflict), or
        ``base`` is infeasible or names a place that is not a candidate of
        ``instance``.
    """
    t0 = time.perf_counter()
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
    ranked = candidates(instance, base, places=places, compiled=c)
    n = 2 * top + 5 if shortlist is None else shortlist
    measured = ranked[: max(n, 0)]
    hint = hint_by_value(instance, base, compiled=c)
    control = _Controls(instance, c, hint, kw, base)
    recs: list[tuple[Recommendation, int]] = []
    gains: list[int] = []  # of recs, best first
    for i, (change, est) in enumerate(measured):
        rec = _measure(instance, change, est, hint, kw, control, gains, top, base.score)
        if rec is not None:
            recs.append((rec, i))
            gains.append(rec.score)
            gains.sort(reverse=True)
        if on_progress is not None:
            best = gains[0] if gains else None
            on_progress(PlanProgress(i + 1, len(measured), time.perf_counter() - t0, best))
    recs.sort(key=lambda t: (-t[0].score, t[1]))
    return [r for r, _ in recs[:top]]


class _Controls:
    """The (score, children) of each change's control, each solved at most once.

    One serves every change once it is known: the base when it is proven
    optimal, a control proven optimal, or a control the search solved whole;
    until then there is one per focus.
    """

    def __init__(
        self,
        instance: Instance,
        c: Compiled,
        hint: list[Assignment],
        kw: dict[str, object],
        base: Result,
    ) -> None:
        self.instance, self.c, self.hint, self.kw = instance, c, hint, kw
        assert base.score is not None
        base_children = _children(instance, base)
        self.shared = (base.score, base_children) if base.status is Status.OPTIMAL else None
        self.by_focus: dict[tuple[str, ...], tuple[int, int]] = {}

    def __call__(self, change: Change) -> tuple[int, int]:
        if self.shared is not None:
            return self.shared
        focus = change.sessions
        if focus not in self.by_focus:
            res = solve(self.instance, compiled=self.c, hint=self.hint, focus=focus, **self.kw)  # type: ignore[arg-type]
            assert res.score is not None  # the instance is feasible (the base is)
            self.by_focus[focus] = (res.score, _children(self.instance, res))
            if res.status is Status.OPTIMAL or not _focus_read(res):
                self.shared = self.by_focus[focus]
        return self.by_focus[focus]


def _measure(
    instance: Instance,
    change: Change,
    est: int,
    hint: list[Assignment],
    kw: dict[str, object],
    control: _Controls,
    gains: Sequence[int],
    top: int,
    base_score: int,
) -> Recommendation | None:
    """The change re-solved against its control, or None when it gains nothing or misses the top.

    The control scores >= ``base_score``, so the gain is at most ``res.score -
    base_score``: no control is solved when that cannot enter the top list (a
    later candidate loses ties), which therefore stays what every control
    would give.
    """
    changed = apply_change(instance, change)
    res = solve(changed, hint=hint, focus=change.sessions, **kw)  # type: ignore[arg-type]
    if res.score is None or _out_of_reach(res.score - base_score, gains, top):
        return None
    ctl_score, ctl_children = control(change)
    gain = res.score - ctl_score
    if gain <= 0:
        return None
    return Recommendation(
        change,
        est,
        _children(changed, res) - ctl_children,
        gain,
        changed_score=res.score,
        control_score=ctl_score,
    )


def _out_of_reach(most: int, gains: Sequence[int], top: int) -> bool:
    """Whether a gain of at most ``most``, found after ``gains`` (best first), misses the top."""
    if most <= 0 or top <= 0:
        return True
    return len(gains) >= top and most <= gains[top - 1]


def _focus_read(res: Result) -> bool:
    """Whether the solve that gave ``res`` may have read its ``focus``.

    ``focus`` steers the large-neighbourhood search only; a model the optimiser
    solved whole (``stats["strategy"] == "whole-model"``) never read it, so the
    same call with another focus gives the same result. Anything else, or a
    strategy this does not know, counts as read (no sharing: slower, never wrong).
    """
    return res.stats.get("strategy") != "whole-model"


def hint_by_value(
    instance: Instance, base: Result, *, compiled: Compiled | None = None
) -> list[Assignment]:
    """The base places, most valuable first: the hint of every re-solve and control.

    Where the hint no longer fits (a move's afternoon), the re-solve takes its
    places in this order, so the cheapest are the ones left out. Ties keep the
    base's order.

    Parameters
    ----------
    instance
        The instance ``base`` is a result of.
    base
        A result of ``instance``.
    compiled
        ``instance`` compiled, when the caller already has it.

    Returns
    -------
    list of Assignment
        ``base.assignments`` by decreasing value (arc coefficient plus the drop
        cost the place avoids).

    Raises
    ------
    ValueError
        When a place of ``base`` is not a candidate of ``instance`` (an
        unknown request or session, or a session it does not list).
    """
    c = compiled if compiled is not None else compile_instance(instance)
    ridx = {r: i for i, r in enumerate(c.request_ids)}
    sidx = {s: i for i, s in enumerate(c.session_ids)}
    ptr, sess = c.req_arc_ptr, c.arc_sess
    keyed = []
    for i, a in enumerate(base.assignments):
        r, s = ridx.get(a.request), sidx.get(a.session)
        hit = (
            np.flatnonzero(sess[int(ptr[r]) : int(ptr[r + 1])] == s)
            if r is not None and s is not None
            else np.zeros(0, dtype=np.int64)
        )
        if hit.shape[0] == 0:
            raise ValueError(f"{a.request!r} in {a.session!r} is not a candidate place")
        assert r is not None
        arc = int(ptr[r]) + int(hit[0])
        keyed.append((-int(c.arc_coef[arc] + c.drop_cost[r]), i, a))
    keyed.sort(key=lambda t: (t[0], t[1]))
    return [a for _, _, a in keyed]


def as_json(recs: Sequence[Recommendation]) -> list[dict[str, object]]:
    """The recommendations in the JSON shape ``slotalloc report --plan`` reads."""
    return [r.to_dict() for r in recs]
