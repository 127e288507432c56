"""The booked requests alone, arranged: the fewest drops, then moves.

A drop costs as much as a hundred children served, and undoing one takes a
chain of moves through other bookings, which small neighbourhoods rarely
hold. The bookings alone (every unbooked request left out) make a small
model that HiGHS or one CP-SAT worker solves exactly in under a second on a
city; its answer is the start around which the unbooked requests are then
filled in. Every rule being monotone, that arrangement is valid in the full
model too.

Both the plain optimiser and rule 8's city path ask one CP-SAT worker
(:func:`arrange_bookings_cpsat`), in a thread beside their LP
(:class:`ArrangingThread`): on six cities it found HiGHS's arrangement in
0.1-0.55 s against HiGHS's 0.53-0.9 s, and with a deterministic budget it
repeats, which HiGHS, having none, cannot. :func:`arrange_bookings` (HiGHS
in a child process, :class:`~slotalloc.solver.mip.MipProcess`) is kept as
the peer the tests and benchmarks check CP-SAT's arrangement against."""

from __future__ import annotations

import threading
import time

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.solver.formulation import Formulation, LinearModel
from slotalloc.solver.mip import MipProcess
from slotalloc.solver.search.cpsat_run import run_cpsat
from slotalloc.solver.search.neighbourhood import Restrictor, free_variables

__all__ = [
    "ArrangingThread",
    "arrange_bookings",
    "arrange_bookings_cpsat",
    "drops",
    "keeps_bookings",
]


def keeps_bookings(c: Compiled, arcs: IntArray) -> bool:
    """Whether every booked request sits at its booked session in ``arcs``."""
    booked = c.booked_session >= 0
    at = np.full(c.n_requests, -1, dtype=np.int64)
    at[c.arc_req[arcs]] = c.arc_sess[arcs]
    return bool(np.all(at[booked] == c.booked_session[booked]))


def drops(c: Compiled, arcs: IntArray) -> int:
    """How many booked requests ``arcs`` leaves unplaced."""
    placed = np.zeros(c.n_requests, dtype=np.bool_)
    placed[c.arc_req[arcs]] = True
    return int(((c.booked_session >= 0) & ~placed).sum())


def arrange_bookings(f: Formulation, start: IntArray, *, time_limit: float) -> IntArray | None:
    """The best arrangement of the booked requests alone, by HiGHS; None without one.

    ``f`` is the formulation without the group-fairness rows (the bookings
    alone cannot meet a floor); ``start``'s bookings give the hint. HiGHS gets
    ``time_limit`` wall seconds; a child still running half a second later is
    ended.
    """
    m = _BookingsModel(f, start)
    job = MipProcess(m.sub, time_limit=time_limit, hint=m.hint)
    return m.arcs(job.result(timeout=time_limit + 0.5).values)


def arrange_bookings_cpsat(
    f: Formulation,
    start: IntArray,
    *,
    time_limit: float | None = None,
    dtime: float | None = None,
    seed: int = 0,
    stop: threading.Event | None = None,
) -> tuple[IntArray | None, float]:
    """The same arrangement by one CP-SAT worker, in wall seconds or deterministic units.

    Returns the arcs (None without a solution) and the deterministic time spent.
    """
    m = _BookingsModel(f, start)
    run = run_cpsat(m.sub, hint=m.hint, max_time=time_limit, max_dtime=dtime, seed=seed, stop=stop)
    return m.arcs(run.values), run.deterministic_time


class ArrangingThread:
    """The bookings alone being arranged by :func:`arrange_bookings_cpsat` in a thread.

    CP-SAT releases the GIL, so the caller's LP runs meanwhile on the other
    core. With ``dtime`` (and no ``time_limit``) the answer does not depend
    on timing.
    """

    def __init__(
        self,
        f: Formulation,
        start: IntArray,
        *,
        time_limit: float | None = None,
        dtime: float | None = None,
        seed: int = 0,
    ) -> None:
        self._stop = threading.Event()
        #: When its wall-clock limit ends (None: a deterministic budget).
        self.ends_at = None if time_limit is None else time.perf_counter() + time_limit
        self._out: tuple[IntArray | None, float] = (None, 0.0)
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._run,
            args=(f, start, time_limit, dtime, seed),
            name="slotalloc-bookings",
            daemon=True,
        )
        self._thread.start()

    def _run(
        self,
        f: Formulation,
        start: IntArray,
        time_limit: float | None,
        dtime: float | None,
        seed: int,
    ) -> None:
        try:
            self._out = arrange_bookings_cpsat(
                f, start, time_limit=time_limit, dtime=dtime, seed=seed, stop=self._stop
            )
        except BaseException as e:  # handed to the caller in result()
            self._error = e

    def done(self) -> bool:
        """Whether the search has ended (else the caller would wait for it)."""
        return not self._thread.is_alive()

    def stop(self) -> None:
        """End the search now and wait for the thread (e.g. when the caller fails meanwhile)."""
        self._stop.set()
        self._thread.join()

    def result(self) -> tuple[IntArray | None, float]:
        """The arcs (None without a solution) and the deterministic time spent, once done."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out


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
