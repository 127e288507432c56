"""What a solve returns, and how a set of chosen arcs becomes one."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc.compile import Compiled
from slotalloc.models import Assignment, ConflictItem, Solution, Status

__all__ = ["Result", "result_from_arcs", "score_of_arcs"]


@dataclass(frozen=True)
class Result:
    """The outcome of :func:`slotalloc.solve`.

    Attributes
    ----------
    status
        ``OPTIMAL`` only when proven; ``FEASIBLE``; or ``INFEASIBLE`` exactly when
        the locked bookings alone break a rule.
    score
        The FORMAT §2 score of ``assignments`` (None when infeasible).
    bound
        A proven integer upper bound on the best score, or None.
    assignments
        The places, in the instance's request order.
    explanation
        What conflicts, when infeasible.
    stats
        Free-form figures (solver name, times); wall-clock figures live only here.
    """

    status: Status
    score: int | None
    bound: int | None
    assignments: tuple[Assignment, ...] = ()
    explanation: tuple[ConflictItem, ...] | None = None
    stats: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    instance_name: str | None = None

    @property
    def gap(self) -> float | None:
        """Relative distance between score and bound, or None without both."""
        if self.score is None or self.bound is None:
            return None
        return (self.bound - self.score) / max(1, abs(self.bound))

    def to_solution(self) -> Solution:
        """This result as a FORMAT §2 solution model."""
        return Solution(
            instance=self.instance_name,
            status=self.status,
            score=self.score,
            bound=self.bound,
            assignments=self.assignments,
            explanation=self.explanation,
            stats=dict(self.stats),
        )


def score_of_arcs(compiled: Compiled, arcs: npt.ArrayLike) -> int:
    """The FORMAT §2 score of choosing these candidate arcs (one per request at most)."""
    chosen = np.asarray(arcs, dtype=np.int64)
    placed = np.zeros(compiled.n_requests, dtype=np.bool_)
    placed[compiled.arc_req[chosen]] = True
    return int(compiled.arc_coef[chosen].sum()) - int(compiled.drop_cost[~placed].sum())


def result_from_arcs(
    compiled: Compiled,
    arcs: npt.ArrayLike,
    *,
    status: Status,
    bound: int | None,
    stats: Mapping[str, Any],
    instance_name: str | None,
) -> Result:
    """Build a :class:`Result` from chosen arcs, listed in request order."""
    chosen = np.sort(np.asarray(arcs, dtype=np.int64))
    rid, sid = compiled.request_ids, compiled.session_ids
    assignments = tuple(
        Assignment(request=rid[r], session=sid[s])
        for r, s in zip(
            compiled.arc_req[chosen].tolist(), compiled.arc_sess[chosen].tolist(), strict=True
        )
    )
    return Result(
        status=status,
        score=score_of_arcs(compiled, chosen),
        bound=bound,
        assignments=assignments,
        explanation=None,
        stats=MappingProxyType(dict(stats)),
        instance_name=instance_name,
    )
