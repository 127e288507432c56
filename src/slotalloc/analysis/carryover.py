"""Carry-over between weekends: a household that asked and got nothing goes up a little.

The rule (``docs/season.md``), for a previous weekend's instance and its
solution, and the next weekend's instance:

* a household **asked** last weekend when some child of some request of the
  previous instance has that ``household``;
* it **got nothing** when no request of the previous instance with a child of
  that household is assigned in the previous solution;
* every request of the next instance with a child of such a household has its
  priority raised by ``step``, to at most ``cap`` (and never above 9, the top
  of FORMAT's 0-9 scale). A priority is never lowered: a request already at or
  above the cap keeps its priority (it is counted as *capped*).

Households are matched by ``Child.household`` only. A child without a
household (``None``) is never matched: its requests are neither counted as
asking nor raised through it. A request whose children belong to several
households is raised when any one of them qualifies.

The rule is bounded: at most ``step`` per weekend and never above ``cap``, so
a household that keeps getting nothing climbs one step per weekend until it is
placed or reaches the cap, and drops back to its own priority the weekend
after it is placed (the next instance's own priority is the starting point
each weekend; nothing accumulates outside the files).

The explanation names requests and households by id, with the old and new
priorities; it carries no birth date and no other detail of a child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from slotalloc.models import Instance, Solution, Status

__all__ = ["MAX_PRIORITY", "CarryOver", "Raised", "carry_over"]

#: The highest priority FORMAT allows (priorities are 0-9).
MAX_PRIORITY = 9


@dataclass(frozen=True)
class Raised:
    """One request of the next instance that the rule applies to.

    Attributes
    ----------
    request
        The request's id in the next instance.
    households
        The households of its children that asked last weekend and got
        nothing (sorted; at least one).
    old_priority, new_priority
        Its priority before and after; equal when it was already at the cap.
    capped
        Whether the cap held it below ``old_priority + step``.
    reason
        One sentence saying why.
    """

    request: str
    households: tuple[str, ...]
    old_priority: int
    new_priority: int
    capped: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "request": self.request,
            "households": list(self.households),
            "old_priority": self.old_priority,
            "new_priority": self.new_priority,
            "capped": self.capped,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class CarryOver:
    """The next instance with the carried-over priorities, and why.

    Attributes
    ----------
    instance
        The next instance, validated, with the raised priorities (everything
        else unchanged).
    step, cap
        The rule's parameters.
    entries
        Every request of the next instance the rule applies to, in the next
        instance's request order: the raised ones and the capped ones.
    households_asked
        Households with a child in some request of the previous instance.
    households_unserved
        Of those, the households none of whose requests was assigned.
    requests_raised
        Requests of the next instance whose priority went up.
    requests_capped
        Requests of the next instance the rule applies to that the cap held
        below ``old + step`` (raised less, or not at all).
    requests_unmatched
        Requests of the next instance none of whose children has a household,
        which the rule can never apply to.
    """

    instance: Instance
    step: int
    cap: int
    entries: tuple[Raised, ...]
    households_asked: int
    households_unserved: int
    requests_raised: int
    requests_capped: int
    requests_unmatched: int

    def counts(self) -> dict[str, int]:
        """The counts, by name, in a fixed order."""
        return {
            "households_asked": self.households_asked,
            "households_unserved": self.households_unserved,
            "requests_raised": self.requests_raised,
            "requests_capped": self.requests_capped,
            "requests_unmatched": self.requests_unmatched,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: the rule, the counts and one entry per request."""
        return {
            "rule": {"step": self.step, "cap": self.cap},
            "counts": self.counts(),
            "requests": [e.to_dict() for e in self.entries],
        }


def _check(name: str, value: Any, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if not low <= value <= high:
        raise ValueError(f"{name} must be between {low} and {high}, got {value}")


def _households_of(instance: Instance, child_ids: tuple[str, ...]) -> set[str]:
    children, index = instance.children, instance.child_index
    out: set[str] = set()
    for cid in child_ids:
        h = children[index[cid]].household
        if h is not None:  # a child without a household is never matched
            out.add(h)
    return out


def carry_over(
    previous: Instance,
    previous_solution: Solution,
    next_instance: Instance,
    *,
    step: int = 1,
    cap: int = MAX_PRIORITY,
) -> CarryOver:
    """Raise the priority of the households that asked last weekend and got nothing.

    Parameters
    ----------
    previous
        The previous weekend's instance (as solved, carried-over priorities
        included).
    previous_solution
        Its solution; only which requests are assigned matters.
    next_instance
        The next weekend's instance.
    step
        How much a qualifying request's priority rises, 1 to 9 (default 1).
    cap
        The highest priority the rule may give, 0 to 9 (default 9). The rule
        never lowers a priority.

    Returns
    -------
    CarryOver
        The next instance with the raised priorities, the entries and the counts.

    Raises
    ------
    ValueError
        When ``step`` or ``cap`` is not an integer in range; when the previous
        solution is infeasible (no allocation was made, so there is nothing to
        carry over); when it assigns a request the previous instance does not
        have (the two files do not belong together).
    """
    _check("step", step, 1, MAX_PRIORITY)
    _check("cap", cap, 0, MAX_PRIORITY)
    if previous_solution.status is Status.INFEASIBLE:
        raise ValueError(
            "the previous solution is infeasible: no allocation was made, so nothing carries over"
        )
    assigned = {a.request for a in previous_solution.assignments}
    unknown = sorted(assigned - previous.request_index.keys())
    if unknown:
        raise ValueError(
            f"the previous solution assigns request {unknown[0]!r}, "
            "which the previous instance does not have"
        )

    asked: set[str] = set()
    served: set[str] = set()
    for r in previous.requests:
        hs = _households_of(previous, r.children)
        asked |= hs
        if r.id in assigned:
            served |= hs
    unserved = asked - served

    entries: list[Raised] = []
    unmatched = 0
    new_priority: dict[str, int] = {}
    for r in next_instance.requests:
        hs = _households_of(next_instance, r.children)
        if not hs:
            unmatched += 1
            continue
        due = sorted(hs & unserved)
        if not due:
            continue
        old = r.priority
        new = max(old, min(old + step, cap))
        capped = new < old + step
        who = f"household {due[0]}" if len(due) == 1 else "households " + ", ".join(due)
        reason = f"{who} asked on the previous weekend and got no place"
        if capped:
            reason += f"; priority {old} -> {new}, held by the cap {cap}."
        else:
            reason += f"; priority {old} -> {new}."
        entries.append(Raised(r.id, tuple(due), old, new, capped, reason))
        if new != old:
            new_priority[r.id] = new

    doc = next_instance.model_dump(mode="json")
    for req in doc["requests"]:
        if req["id"] in new_priority:
            req["priority"] = new_priority[req["id"]]
    raised_instance = Instance.model_validate(doc, strict=True) if new_priority else next_instance
    return CarryOver(
        instance=raised_instance,
        step=step,
        cap=cap,
        entries=tuple(entries),
        households_asked=len(asked),
        households_unserved=len(unserved),
        requests_raised=len(new_priority),
        requests_capped=sum(e.capped for e in entries),
        requests_unmatched=unmatched,
    )
