"""Rule 2 for the engine: a child's age group per session, kept per birth date.

``group_of`` reads a session only through its start date and its age range, so
sessions sharing those form one *eligibility class*: a child's group is
computed once per class (on a representative session), not once per session.
A city has hundreds of sessions but a handful of classes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np

from slotalloc.compile import Compiled, _groups_vectorised

__all__ = ["SessionClasses"]


class SessionClasses:
    """The eligibility classes of a compiled instance's sessions.

    Parameters
    ----------
    compiled
        The compiled instance.

    Attributes
    ----------
    class_of
        Per session, its class.
    rep
        Per class, its representative session (the first of the class).
    """

    __slots__ = ("_compiled", "_rep_date", "_rep_hi", "_rep_lo", "class_of", "rep")

    def __init__(self, compiled: Compiled) -> None:
        c = compiled
        self._compiled = c
        classes: dict[tuple[int, ...], int] = {}
        self.class_of: list[int] = []
        self.rep: list[int] = []
        keys = zip(c.sess_date.tolist(), c.min_months.tolist(), c.max_months.tolist(), strict=True)
        for s, (date, lo, hi) in enumerate(keys):
            k = classes.setdefault((*date, lo, hi), len(classes))
            if k == len(self.rep):
                self.rep.append(s)
            self.class_of.append(k)
        rep = np.asarray(self.rep, dtype=np.int64)
        self._rep_date = c.sess_date[rep]
        self._rep_lo = c.min_months[rep]
        self._rep_hi = c.max_months[rep]

    def rows(self, dates: Sequence[dt.date]) -> list[list[int]]:
        """Per birth date, its age group in each class, or -1 (``group_of``).

        Computed by the compiler's own vectorised formula, one numpy pass for
        all the dates, when a birth date is first seen: the starting children's
        at construction (about 1 ms for a city's thousand-odd birth dates), a
        new one when a book declares it (about 12 µs). Calling ``group_of``
        lazily on the booking path instead cost about 5 µs per (birth date,
        class) pair, paid again by every fresh allocator.

        Parameters
        ----------
        dates
            Birth dates.

        Returns
        -------
        list of list of int
            One row per date, one entry per class.
        """
        n, k = len(dates), len(self.rep)
        births = np.array([(d.year, d.month, d.day) for d in dates], dtype=np.int64)
        groups = _groups_vectorised(
            np.repeat(births.reshape(n, 3), k, axis=0),
            np.tile(self._rep_date, (n, 1)),
            np.tile(self._rep_lo, n),
            np.tile(self._rep_hi, n),
            self._compiled.month_group,
        )
        rows: list[list[int]] = groups.reshape(n, k).tolist()
        return rows
