"""Who moves where, who is dropped and who is newly placed between two solutions."""

from __future__ import annotations

from dataclasses import dataclass

from slotalloc.models import Instance, Solution

__all__ = ["SolutionDiff", "diff_solutions"]


@dataclass(frozen=True)
class SolutionDiff:
    """Changes from ``old`` to ``new``, each in the instance's request order.

    ``moved`` holds (request, old session, new session); ``dropped`` (request,
    old session); ``placed`` (request, new session); ``kept`` counts requests in
    the same session in both.
    """

    moved: tuple[tuple[str, str, str], ...]
    dropped: tuple[tuple[str, str], ...]
    placed: tuple[tuple[str, str], ...]
    kept: int

    def counts(self) -> dict[str, int]:
        """How many requests moved, were dropped, newly placed and kept."""
        return {
            "moved": len(self.moved),
            "dropped": len(self.dropped),
            "placed": len(self.placed),
            "kept": self.kept,
        }


def diff_solutions(instance: Instance, old: Solution, new: Solution) -> SolutionDiff:
    """Compare two solutions of the same instance.

    Raises
    ------
    KeyError
        When a solution names a request the instance does not have.
    """
    before = {a.request: a.session for a in old.assignments}
    after = {a.request: a.session for a in new.assignments}
    order = instance.request_index
    moved, dropped, placed = [], [], []
    kept = 0
    for rid in sorted(before.keys() | after.keys(), key=lambda r: order[r]):
        b, a = before.get(rid), after.get(rid)
        if b is not None and a is not None:
            if a == b:
                kept += 1
            else:
                moved.append((rid, b, a))
        elif b is not None:
            dropped.append((rid, b))
        elif a is not None:
            placed.append((rid, a))
    return SolutionDiff(tuple(moved), tuple(dropped), tuple(placed), kept)
