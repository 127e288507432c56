"""Solve a large instance as parts, on this machine or on a Ray cluster.

:func:`solve_distributed` decomposes the instance
(:mod:`slotalloc.distributed.decompose`), runs each part through
:func:`slotalloc.solver.entry.solve_single` where an executor puts it
(:mod:`slotalloc.distributed.executors`), and merges the parts into one valid
whole-instance :class:`~slotalloc.result.Result`:

1. independent components (sharing no session and no child) are solved
   apart, small ones packed together; their scores and bounds add up;
2. a component larger than ``part_requests`` is cut by site position into
   parts; a *bound task* solves its whole LP relaxation (the optimiser's LP,
   run through ``solve_single(..., deterministic=True, time_limit=0.01)``, which also
   returns an LP-rounded assignment used as a fallback) in parallel with the
   parts, because the parts' own bounds do not add up;
3. after the first cut, each large component is cut again along turned axes
   and every new part is re-optimised around the merged incumbent (borders
   of the first cut now lie inside parts); a part's answer replaces the
   incumbent only where it scores better, so the merged score never drops;
4. the merged assignment is re-checked against every rule on the whole
   instance and repaired (conflicting assignments dropped, lowest value
   first) before the result is built.

The modules: :mod:`~slotalloc.distributed.decompose` (components, geographic
cuts, the parts' instance documents), :mod:`~slotalloc.distributed.executors`
(where tasks run, and the task and answer types),
:mod:`~slotalloc.distributed.run` (the coordinator) and
:mod:`~slotalloc.distributed.merge` (the whole-instance repair).
"""

from __future__ import annotations

from slotalloc.distributed.executors import EXECUTORS, PartAnswer, PartTask
from slotalloc.distributed.run import DistributedParams, solve_distributed

__all__ = ["EXECUTORS", "DistributedParams", "PartAnswer", "PartTask", "solve_distributed"]
