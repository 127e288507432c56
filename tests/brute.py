"""Best score by plain enumeration: the ground truth tiny instances are checked against."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import Instance
from slotalloc.rules import Occupancy

__all__ = ["brute_force", "valid_assignments"]


def valid_assignments(c: Compiled) -> Iterator[tuple[list[int], int]]:
    """Every valid assignment (rules 1-7) of a tiny compiled instance, with its score.

    Yields the chosen arcs (a list reused between yields: copy it to keep it).
    """
    occ = Occupancy(c)
    groups = [[(g, k) for g, k in enumerate(row) if k] for row in c.arc_groups.tolist()]
    ptr = c.req_arc_ptr.tolist()
    chosen: list[int] = []

    def kids(r: int) -> list[int]:
        return c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()

    def go(r: int, total: int) -> Iterator[tuple[list[int], int]]:
        if r == c.n_requests:
            yield chosen, total
            return
        size = int(c.req_size[r])
        for a in range(ptr[r], ptr[r + 1]):
            s = int(c.arc_sess[a])
            if occ.fits(s, size, groups[a], kids(r)):
                occ.add(s, size, groups[a], kids(r))
                chosen.append(a)
                yield from go(r + 1, total + int(c.arc_coef[a]))
                chosen.pop()
                occ.remove(s, size, groups[a], kids(r))
        if not c.locked[r]:
            yield from go(r + 1, total - int(c.drop_cost[r]))

    yield from go(0, 0)


def brute_force(
    instance: Instance, accept: Callable[[list[tuple[str, str]]], bool] | None = None
) -> int | None:
    """Best score by depth-first enumeration of valid assignments; None if infeasible.

    ``accept`` filters the complete assignments (``(request, session)`` pairs),
    e.g. by the verifier's fairness rules.
    """
    c = compile_instance(instance)
    best: int | None = None
    for chosen, total in valid_assignments(c):
        if best is not None and total <= best:
            continue
        if accept is not None:
            pairs = [
                (c.request_ids[int(c.arc_req[a])], c.session_ids[int(c.arc_sess[a])])
                for a in chosen
            ]
            if not accept(pairs):
                continue
        best = total
    return best
