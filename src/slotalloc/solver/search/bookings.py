"""The booked requests alone, arranged by HiGHS: the fewest drops, then moves.

A drop costs as much as a hundred children served, and undoing one takes a
chain of moves through other bookings, which small neighbourhoods rarely
hold. The bookings alone (every unbooked request left out) make a small
model that HiGHS solves exactly in about a second on a city; its answer is
the start around which the unbooked requests are then filled in. Every rule
being monotone, that arrangement is valid in the full model too.

HiGHS runs in a child process (:class:`~slotalloc.solver.mip.MipProcess`): it
may write to stderr, nothing below the CLI prints, and the caller can go on
(the fair path solves its LP meanwhile) and end it at any moment. HiGHS has no
deterministic budget, so a deterministic run arranges the same model with
CP-SAT instead (:func:`arrange_bookings_deterministic`).
"""

from __future__ import annotations

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.solver.formulation import Formulation, LinearModel
from slotalloc.solver.mip import MipProcess
from slotalloc.solver.search.cpsat_run import run_cpsat
from slotalloc.solver.search.neighbourhood import Restrictor, free_variables

__all__ = [
    "BookingsArrangement",
    "arrange_bookings",
    "arrange_bookings_deterministic",
    "keeps_bookings",
]


def keeps_bookings(c: Compiled, arcs: IntArray) -> bool:
    """Whether every booked request sits at its booked session in ``arcs``."""
    booked = c.booked_session >= 0
    at = np.full(c.n_requests, -1, dtype=np.int64)
    at[c.arc_req[arcs]] = c.arc_sess[arcs]
    return bool(np.all(at[booked] == c.booked_session[booked]))


class BookingsArrangement:
    """The bookings alone being arranged by HiGHS in a child process.

    Parameters
    ----------
    f
        The formulation, without the group-fairness rows (the bookings alone
        cannot meet a floor).
    start
        A valid assignment; its bookings give the hint.
    time_limit
        Wall seconds for HiGHS.
    """

    def __init__(self, f: Formulation, start: IntArray, *, time_limit: float) -> None:
        self._limit = time_limit
        self._model = _BookingsModel(f, start)
        m = self._model
        self._job = MipProcess(m.sub, time_limit=time_limit, hint=m.hint)

    def stop(self) -> None:
        """End the child now (e.g. when the caller fails meanwhile)."""
        self._job.stop()

    def result(self, timeout: float | None = None) -> IntArray | None:
        """The arrangement's arcs (sorted), or None without one.

        Waits at most ``timeout`` seconds (default: the time limit and half a
        second), then ends the child.
        """
        wait = self._limit + 0.5 if timeout is None else timeout
        return self._model.arcs(self._job.result(timeout=wait).values)


def arrange_bookings(f: Formulation, start: IntArray, *, time_limit: float) -> IntArray | None:
    """The best arrangement of the booked requests alone, by HiGHS; None without one."""
    return BookingsArrangement(f, start, time_limit=time_limit).result()


def arrange_bookings_deterministic(
    f: Formulation, start: IntArray, *, dtime: float, seed: int = 0
) -> tuple[IntArray | None, float]:
    """The same arrangement by one CP-SAT worker in ``dtime`` deterministic units.

    Returns the arcs (None without a solution) and the deterministic time spent.
    """
    m = _BookingsModel(f, start)
    run = run_cpsat(m.sub, hint=m.hint, max_dtime=dtime, seed=seed)
    return m.arcs(run.values), run.deterministic_time


class _BookingsModel:
    """The model over the movable bookings' variables, everything else left out."""

    def __init__(self, f: Formulation, start: IntArray) -> None:
        c = f.c
        booked = c.drop_cost > 0
        self._n_arcs = c.n_arcs
        # Unbooked requests are at 0 and locked bookings at their session.
        self._values = f.values_of_arcs(np.flatnonzero(c.locked[c.arc_req]))
        free = free_variables(f, np.flatnonzero(booked & ~c.locked))
        self.sub: LinearModel
        self.sub, self._idx = Restrictor(f)(free, self._values)
        mine = start[booked[c.arc_req[start]]]
        self.hint: IntArray = f.values_of_arcs(mine)[self._idx]

    def arcs(self, sub_values: IntArray | None) -> IntArray | None:
        """The full model's arcs (sorted) of a sub-model solution, or None."""
        if sub_values is None:
            return None
        values = self._values.copy()
        values[self._idx] = sub_values
        return np.flatnonzero(values[: self._n_arcs]).astype(np.int64)
