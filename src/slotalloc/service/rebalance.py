"""Rebalancing a live state with the batch optimiser: the problem it solves, and its rows.

The solver sees the live requests (held and waitlisted) with the places held
as unlocked bookings. What it changed is logged as explicit ``move``,
``drop`` and ``place`` rows plus a closing ``scan`` row; :func:`apply_entries`
applies those rows, live and on replay alike, so a replay cannot drift from
what was decided.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from slotalloc.exceptions import InvalidStateError
from slotalloc.models import Booking, Instance, Objective, Solution
from slotalloc.online import Allocator, Placement
from slotalloc.service.errors import RebalanceRejectedError

__all__ = [
    "REBALANCE_ENTRIES",
    "RebalanceOutcome",
    "RebalancePlan",
    "apply_entries",
    "plan_rebalance",
    "solver_instance",
]

#: Row kinds of one rebalance's changes; a ``scan`` row closes the group.
REBALANCE_ENTRIES = ("move", "drop", "place")

Entry = tuple[str, Mapping[str, Any]]


@dataclass(frozen=True)
class RebalanceOutcome:
    """What a rebalance changed (request order of the current state).

    Attributes
    ----------
    moved
        (request, old session, new session).
    dropped
        (request, old session); dropped requests join the end of the waitlist.
    placed
        (request, new session): waitlisted requests the optimiser placed.
    promoted
        Placements made by the waitlist scan that follows.
    kept
        Requests left in their session.
    seq
        The ledger seq of the last row written, or None when nothing changed.
    stats
        The solver's figures.
    """

    moved: tuple[tuple[str, str, str], ...]
    dropped: tuple[tuple[str, str], ...]
    placed: tuple[tuple[str, str], ...]
    promoted: tuple[Placement, ...]
    kept: int
    seq: int | None
    stats: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def recorded(
        cls,
        entries: Sequence[Entry],
        promoted: Sequence[Placement],
        held: Mapping[str, str],
        seq: int,
    ) -> RebalanceOutcome:
        """The outcome as a replayed group of rows records it (the solver's stats are not stored).

        ``held`` is the state after the group: every holder the group did not
        change counts as kept.
        """
        moved = tuple((b["request"], b["from"], b["to"]) for k, b in entries if k == "move")
        dropped = tuple((b["request"], b["from"]) for k, b in entries if k == "drop")
        placed = tuple((b["request"], b["to"]) for k, b in entries if k == "place")
        changed = {b["request"] for _k, b in entries} | {p.request for p in promoted}
        kept = sum(1 for rid in held if rid not in changed)
        return cls(moved, dropped, placed, tuple(promoted), kept, seq)


@dataclass(frozen=True)
class RebalancePlan:
    """What the solver would change, before it is applied.

    Attributes
    ----------
    moved, dropped, placed, kept
        As in :class:`RebalanceOutcome`.
    stats
        The solver's figures.
    """

    moved: tuple[tuple[str, str, str], ...]
    dropped: tuple[tuple[str, str], ...]
    placed: tuple[tuple[str, str], ...]
    kept: int
    stats: dict[str, Any]

    def entries(self) -> list[Entry]:
        """The ``move``, ``drop`` and ``place`` rows, in that order."""
        rows: list[Entry] = [("move", {"request": r, "from": b, "to": a}) for r, b, a in self.moved]
        rows += [("drop", {"request": r, "from": b}) for r, b in self.dropped]
        rows += [("place", {"request": r, "to": a}) for r, a in self.placed]
        return rows


def solver_instance(
    start: Instance, state: Instance, sol: Solution, waiting: set[str], allow_drops: bool
) -> Instance:
    """The live requests (held and waitlisted) with the places held as unlocked bookings."""
    held = {a.request for a in sol.assignments}
    requests = [r for r in state.requests if r.id in held or r.id in waiting]
    bookings = [Booking(request=a.request, session=a.session) for a in sol.assignments]
    objective = start.objective
    if not allow_drops:
        # Make a drop cost more than any placement or move can gain, so an
        # optimiser never prefers one; the result is still checked below.
        obj = objective
        kids = sum(len(r.children) for r in requests)
        gain = kids * (obj.serve + 9 * obj.priority + 10 * obj.rank) + len(requests) * obj.move
        objective = Objective(
            serve=obj.serve,
            priority=obj.priority,
            rank=obj.rank,
            move=obj.move,
            drop=max(obj.drop, gain + 1),
        )
    return Instance.model_validate(
        {
            "format": start.format,
            "name": start.name,
            "policy": start.policy,
            "objective": objective,
            "sites": start.sites,
            "sessions": start.sessions,
            "children": state.children,
            "requests": tuple(requests),
            "bookings": tuple(bookings),
        }
    )


def plan_rebalance(
    problem: Instance,
    *,
    allow_drops: bool,
    method: str,
    time_limit: float | None,
    seed: int,
) -> RebalancePlan:
    """Solve :func:`solver_instance`'s problem and compare the result with the places held.

    Raises
    ------
    RebalanceRejectedError
        The solver found the state infeasible, or the result drops a held
        place without ``allow_drops``.
    ValueError
        An unknown method.
    """
    from slotalloc.solve import solve  # the batch path is not needed by plain bookings

    before = {b.request: b.session for b in problem.bookings}
    res = solve(problem, method=method, time_limit=time_limit, seed=seed, deterministic=True)  # type: ignore[arg-type]
    if res.status.value == "infeasible":
        raise RebalanceRejectedError("the solver found the current state infeasible")
    after = {a.request: a.session for a in res.assignments}
    moved, dropped, placed = [], [], []
    kept = 0
    for r in problem.requests:
        b, a = before.get(r.id), after.get(r.id)
        if b is not None and a is not None:
            if a == b:
                kept += 1
            else:
                moved.append((r.id, b, a))
        elif b is not None:
            dropped.append((r.id, b))
        elif a is not None:
            placed.append((r.id, a))
    if dropped and not allow_drops:
        raise RebalanceRejectedError(
            f"the result drops {len(dropped)} held place(s) (first: {dropped[0][0]}); "
            "pass allow_drops to accept drops"
        )
    return RebalancePlan(tuple(moved), tuple(dropped), tuple(placed), kept, res.stats.to_json())


def apply_entries(alloc: Allocator, rows: Sequence[Entry]) -> list[Placement]:
    """Apply explicit move/drop/place entries at once, then one full waitlist scan.

    Raises
    ------
    InvalidStateError
        An entry does not fit the state (not holding its ``from``, not
        waitlisted) or the places it leaves break a rule; nothing changed.
    BookingError
        An unknown request or session; nothing changed.
    """
    moves: list[tuple[str, str]] = []
    drops: list[str] = []
    places: list[tuple[str, str]] = []
    for kind, body in rows:
        rid = body["request"]
        if kind in ("move", "drop"):
            # The row says where the place was: check it, so a replay cannot drift.
            if alloc.status(rid).session != body["from"]:
                raise InvalidStateError(f"{kind} {rid}: it does not hold {body['from']!r}")
            if kind == "move":
                moves.append((rid, body["to"]))
            else:
                drops.append(rid)
        elif kind == "place":
            places.append((rid, body["to"]))
        else:
            raise InvalidStateError(f"unknown rebalance entry {kind!r}")
    return alloc.apply(moves, drops, places)
