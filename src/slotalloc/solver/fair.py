"""The optimiser under the fairness rules of FORMAT §4 (``policy.fairness``).

* Rule 8 (``group_floor: "fcfs"``) is linear: one row per age group over the
  home-group child counts, ``P_g(A) >= P_g(F)``, with ``F`` the solver's own
  first-come-first-served (in priority order when rule 9 is on too). The rows
  join the shared formulation (:mod:`slotalloc.solver.rows.group_fairness`),
  so the LP bound, CP-SAT and the neighbourhood search all keep them.
* Rule 9 (``priority: "no_justified_envy"``) is not linear. The incumbent is
  checked (:func:`slotalloc.solver.envy.envy_triples`) and every triple is
  resolved by the swap it names (:func:`slotalloc.solver.envy.resolve_envy`);
  the result must still meet rule 8, else the best of it and ``F`` (which
  meets both rules) is kept.

The bound is the optimiser's bound under rule 8 alone: a valid bound under
both rules (their feasible set is smaller).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.models import Policy
from slotalloc.result import score_of_arcs
from slotalloc.solver.envy import envy_triples, resolve_envy
from slotalloc.solver.fcfs import first_come_first_served
from slotalloc.solver.rows.group_fairness import GroupFairness, group_floor

__all__ = ["FairOptimum", "optimize_fair"]


@dataclass(frozen=True)
class FairOptimum:
    """The optimiser's answer under the fairness rules that are on."""

    arcs: IntArray
    bound: int | None
    optimal: bool
    stats: dict[str, object] = field(default_factory=dict)


def optimize_fair(
    c: Compiled,
    policy: Policy,
    optimize: Callable[..., Any],
    *,
    rate_rule: GroupFairness | None = None,
    **kwargs: Any,
) -> FairOptimum:
    """Solve under ``policy.fairness`` with the optimiser ``optimize`` (see the module notes).

    Parameters
    ----------
    c
        The compiled instance (locked bookings consistent).
    policy
        The instance's policy; ``policy.fairness`` says which rules are on.
    optimize
        :func:`slotalloc.solver.optimizer.optimize`.
    rate_rule
        ``min_group_rate``'s rows, kept beside rule 8's.
    **kwargs
        Passed to ``optimize`` (time limit, seed, deterministic, ...).

    Raises
    ------
    ValueError
        When the rules cannot be met together with the locked bookings (not
        possible for rules 8 and 9, which first-come-first-served meets).
    """
    envy_free = policy.envy_free
    start = first_come_first_served(c, priority_order=envy_free)
    assert start is not None  # the caller checked the locked bookings
    rule = rate_rule
    if policy.group_floor:
        rule = group_floor(c, start, also=rate_rule)
    hint = kwargs.pop("hint", None)
    # FCFS meets every rule that is on: it is the first candidate (a better hint after it).
    first = start if hint is None else np.concatenate([start, np.asarray(hint, dtype=np.int64)])
    try:
        opt = optimize(c, fairness=rule, hint=first, **kwargs)
    except ValueError:
        # No candidate met the rows (a repair failed): FCFS meets them; start there.
        opt = optimize(c, fairness=rule, hint=start, **kwargs)
    stats: dict[str, object] = dict(opt.stats)
    arcs, optimal = opt.arcs, opt.optimal
    if envy_free:
        triples = envy_triples(c, arcs)
        stats["envy_triples_found"] = len(triples)
        if triples:
            arcs, optimal = resolve_envy(c, arcs), False
            if (rule is not None and not rule.satisfied(arcs)) or score_of_arcs(
                c, start
            ) > score_of_arcs(c, arcs):
                arcs = start
    return FairOptimum(
        arcs=np.asarray(arcs, dtype=np.int64), bound=opt.bound, optimal=optimal, stats=stats
    )
