"""The fairness audit of FORMAT §4, for any solution: age groups against FCFS, justified envy.

Computed with the verifier's own plain first-come-first-served and measures
(:func:`slotalloc.verify.fcfs_assignment`, :func:`~slotalloc.verify.group_places`,
:func:`~slotalloc.verify.justified_envy`), so that the audit of a solver's
answer never trusts that solver.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from slotalloc.models import Instance
from slotalloc.verify import fcfs_assignment, group_places, justified_envy

__all__ = ["FairnessReport", "fairness_report"]


@dataclass(frozen=True)
class FairnessReport:
    """Child places by home group against first-come-first-served, and justified envy.

    Attributes
    ----------
    groups
        The policy's age groups, in order.
    places
        Child places per group (``P_g`` of FORMAT §4) of the solution.
    fcfs_places
        The same for first-come-first-served (in priority order when
        ``priority_order``); empty when the instance is infeasible.
    priority_order
        Whether the FCFS compared with is in priority order (rule 9 on).
    envy_pairs
        Justified-envy triples (request, lower-priority holder, session) of
        the solution, counted whether rule 9 is on or not.
    """

    groups: tuple[str, ...]
    places: dict[str, int]
    fcfs_places: dict[str, int]
    priority_order: bool
    envy_pairs: int

    @property
    def below_fcfs(self) -> tuple[str, ...]:
        """The groups served fewer child places than first-come-first-served."""
        return tuple(g for g in self.groups if self.places[g] < self.fcfs_places.get(g, 0))

    def to_dict(self) -> dict[str, object]:
        """Plain JSON data: per group the places, FCFS's and the difference."""
        return {
            "groups": [
                {
                    "group": g,
                    "places": self.places[g],
                    "fcfs_places": self.fcfs_places.get(g),
                    "difference": self.places[g] - self.fcfs_places.get(g, 0),
                }
                for g in self.groups
            ],
            "child_places": sum(self.places.values()),
            "fcfs_child_places": sum(self.fcfs_places.values()),
            "fcfs_order": "priority" if self.priority_order else "file",
            "below_fcfs": list(self.below_fcfs),
            "justified_envy_pairs": self.envy_pairs,
        }


def fairness_report(instance: Instance, pairs: Iterable[tuple[str, str]]) -> FairnessReport:
    """Audit a valid assignment (``(request, session)`` pairs) under FORMAT §4's measures.

    Parameters
    ----------
    instance
        The validated instance.
    pairs
        A valid assignment, e.g. ``[(a.request, a.session) for a in solution.assignments]``.

    Returns
    -------
    FairnessReport
        Whatever ``policy.fairness`` says: the measures are reported for every policy.
    """
    chosen = list(pairs)
    prio = instance.policy.envy_free
    fcfs = fcfs_assignment(instance, priority_order=prio)
    return FairnessReport(
        groups=tuple(g.name for g in instance.policy.groups),
        places=group_places(instance, chosen),
        fcfs_places={} if fcfs is None else group_places(instance, fcfs),
        priority_order=prio,
        envy_pairs=len(justified_envy(instance, chosen)),
    )
