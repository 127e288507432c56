"""Online booking: FORMAT §3 decisions in microseconds, safe under concurrency.

:class:`Allocator` books and cancels one request at a time over a starting
instance (or over a batch result, :meth:`Allocator.from_result`), with a FIFO
waitlist; :func:`replay` turns an events file into decision dicts. Eligibility
comes from :func:`slotalloc.compile.group_of` and rules 3-5 from
:class:`slotalloc.rules.Occupancy`: the same code as the batch solvers. This
package never imports a MIP or CP solver.
"""

from __future__ import annotations

from slotalloc.online.allocator import (
    STATE_FORMAT,
    Allocator,
    Cancellation,
    Decision,
    GroupOccupancy,
    Placement,
    RequestStatus,
    SessionOccupancy,
)
from slotalloc.online.replay import replay
from slotalloc.online.workflow import held_as_bookings

__all__ = [
    "STATE_FORMAT",
    "Allocator",
    "Cancellation",
    "Decision",
    "GroupOccupancy",
    "Placement",
    "RequestStatus",
    "SessionOccupancy",
    "held_as_bookings",
    "replay",
]
