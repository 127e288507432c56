"""Solvers over compiled instances: first-come-first-served and the batch optimiser.

:mod:`~slotalloc.solver.entry` is the way in (one solve in this process);
:mod:`~slotalloc.solver.optimizer` runs the optimiser's phases, tuned by
:mod:`~slotalloc.solver.params`, over the model that :mod:`~slotalloc.solver.build`
assembles from the rules' row blocks (``rows/``); ``bounds/`` prove upper bounds
and ``search/`` finds assignments.
"""
