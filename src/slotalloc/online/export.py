"""Export: the state as an instance and a solution (FORMAT §3 "State export").

The copy is taken under the lock in O(requests) with no models
(:meth:`Export._export_copy`); turning it into validated models, the slow
part, runs outside the lock (:meth:`Export._export_from`), so that bookings are
not held up by an export. The durable service uses the two halves itself.
"""

from __future__ import annotations

from typing import Any

from slotalloc.models import Assignment, Child, Instance, Request, Solution, Status
from slotalloc.online.core import EngineState
from slotalloc.online.records import HELD, Arc, Req

__all__ = ["Export", "ExportCopy"]

#: What :meth:`Export._export_copy` takes: the live records, the arc each holds
#: (or None), the declared children.
ExportCopy = tuple[list[Req], list[Arc | None], list[Child | dict[str, Any]]]


class Export(EngineState):
    """:meth:`export` (a mixin of :class:`~slotalloc.online.Allocator`)."""

    def export(self) -> tuple[Instance, Solution]:
        """The state as an instance and a solution (FORMAT §3 "State export").

        Returns
        -------
        tuple of Instance and Solution
            The starting instance with the accepted requests appended (in event
            order), the declared children appended, the cancelled requests
            removed and no bookings; and a ``feasible`` solution (bound null)
            assigning the places held, scored against that instance.

        Raises
        ------
        pydantic.ValidationError
            Never for a state this engine built (it would mean a bug).
        """
        with self._lock:
            copy = self._export_copy()
        return self._export_from(copy)

    def _export_copy(self) -> ExportCopy:
        """What :meth:`export` needs, copied (the caller holds the lock); O(requests), no models.

        The records' ``source`` and ``size`` never change once set, so the copy
        can be turned into models later, outside any lock (:meth:`_export_from`).
        """
        recs = list(self._live.values())
        # Copied under the lock: a cancellation running after it may move them.
        held = [r.arc if r.state == HELD else None for r in recs]
        return recs, held, list(self._new_children)

    def _export_from(
        self, copy: ExportCopy, *, only_used_children: bool = False
    ) -> tuple[Instance, Solution]:
        """The export of a copy taken by :meth:`_export_copy` (no lock needed).

        ``only_used_children`` keeps only the children some exported request
        names (the children of cancelled requests leave the export).
        """
        recs, held, new_children = copy
        inst = self._instance
        requests = [
            r.source if isinstance(r.source, Request) else Request.model_validate(r.source)
            for r in recs
        ]
        children = list(inst.children) + [
            c if isinstance(c, Child) else Child.model_validate(c) for c in new_children
        ]
        if only_used_children:
            used = {c for req in requests for c in req.children}
            children = [c for c in children if c.id in used]
        out = Instance(
            format=inst.format,
            name=inst.name,
            policy=inst.policy,
            objective=inst.objective,
            sites=inst.sites,
            sessions=inst.sessions,
            children=tuple(children),
            requests=tuple(requests),
            bookings=(),
        )
        return out, self._solution(recs, requests, held)

    def _solution(
        self, recs: list[Req], requests: list[Request], held: list[Arc | None]
    ) -> Solution:
        """The places held as a ``feasible`` solution, scored as FORMAT §2 scores it."""
        serve, w_priority, w_rank = self._w
        sid = self._session_ids
        score = 0
        assignments = []
        for r, req, arc in zip(recs, requests, held, strict=True):
            if arc is not None:
                score += r.size * (serve + w_priority * req.priority - w_rank * arc[2])
                assignments.append(Assignment(request=r.id, session=sid[arc[0]]))
        return Solution(
            instance=self._instance.name,
            status=Status.FEASIBLE,
            score=score,
            bound=None,
            assignments=tuple(assignments),
            stats={"engine": "online"},
        )
