"""The optimiser's tuning constants, each with the measurement that chose it.

Kept apart from :mod:`slotalloc.solver.optimizer` so that the solve-by-parts
coordinator (:mod:`slotalloc.distributed`) can read the LP's speed and the
default budget without loading a solver.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DEFAULT_TIME_LIMIT", "PARAMS", "OptimizerParams"]

#: Budget when the caller gives none: wall seconds, or CP-SAT deterministic-time
#: units when deterministic.
DEFAULT_TIME_LIMIT = 10.0


@dataclass(frozen=True)
class OptimizerParams:
    """Tuning constants of the batch optimiser, each with the measurement that chose it.

    Measured on the project's machine kind (2 cores) with ``benchmarks/quality/quality.py``
    and ``benchmarks/quality/matrix.py``; see ``benchmarks/RESULTS.md``.
    """

    #: Models up to this many arcs are solved whole by CP-SAT.
    whole_model_arcs: int = 2500
    #: Share of a wall-clock budget kept back for building the result.
    reserve: float = 0.04
    #: Share of the budget kept for the Lagrangian multiplier search at the end.
    #: Measured on the district (10 s): 5 % -> bound 0.21 % above the score, 15 % ->
    #: 0.08 %, 25 % -> 0.07 %, the score unchanged (its search has converged by then).
    bound_share: float = 0.15
    #: Fewest multiplier steps worth running: the first few rarely lower the bound
    #: (measured on the city: no gain after 3 steps, 0.04 % after 6, 0.15 % after 19,
    #: for 0.02-0.05 % of score given up by the search), and below that the search
    #: makes better use of the time.
    bound_min_steps: int = 10
    #: Most multiplier steps (past ~100 the bound barely moves, measured on a district).
    bound_steps_max: int = 200
    #: Deterministic runs count multiplier steps in place of seconds: one step costs
    #: about this much per session (measured on the city: 0.068 s for 449 sessions).
    seconds_per_session: float = 1.5e-4
    #: The plain optimiser, when some bookings cannot all be kept (a caregiver
    #: cut): the most one CP-SAT worker may spend arranging the bookings alone,
    #: beside the LP, as a share of the budget (deterministic units, or wall
    #: seconds). It usually ends far sooner (cities: 0.002-0.25 units), but on a
    #: city where every placement is booked it found no arrangement at all and
    #: spent whatever it was given (b1 of ``benchmarks/quality/floor_bookings.py``,
    #: 10 units: 57 drops at 0.05 and 0.1, 58 at 0.2, 67 at 0.6, the share of
    #: session 17). On the test district where every placement is booked the
    #: final score was 70 360 at 0.05-0.2 and 70 260 at 0.6 (3 units), 70 360 at
    #: every share (10 units); on six other cities nothing changed. Those runs
    #: had no hint (lost until session 19); with it, b1's worker returns its
    #: hint unimproved, and 0.3 gave the same 57 drops (b2 the same answer).
    rebalance_share: float = 0.1
    #: The same cap in wall-clock runs, as a share of the seconds left (HiGHS's
    #: cap before session 18). Beside GLOP, CP-SAT is slower: at 0.1 of the
    #: budget (1 s) it found no arrangement on b2 (0.09 units done; it needs
    #: 0.25) and the runs ended with 2-3 drops against HiGHS's 0.
    rebalance_wall_share: float = 0.5
    #: The plain optimiser, when the greedy start drops a booking that could
    #: move: dropped bookings are re-seated by chains of moves
    #: (:mod:`slotalloc.solver.search.reseat`), in the start while the bookings'
    #: arrangement still runs and in the search's answer. For the latter a
    #: wall-clock search ends early by ``reseat_seconds_per_drop`` for each drop
    #: of its start, at most ``reseat_share`` of the budget (measured: 8-15 ms a
    #: drop on three fully booked cities; a flat 5 % cost cities with few drops
    #: 0.2-0.6 points). Each run stops after ``reseat_max_checks`` occupancy
    #: checks (deterministic runs: that cap alone). See ``benchmarks/RESULTS.md``
    #: (session 20).
    reseat_share: float = 0.1
    reseat_seconds_per_drop: float = 0.015
    reseat_max_checks: int = 2_000_000
    #: Models up to this many arcs also go to HiGHS's branch-and-cut, in a child
    #: process beside the search (wall-clock runs only: HiGHS has no deterministic
    #: budget).
    mip_max_arcs: int = 20000
    #: Larger models up to ``mip_window_max_arcs``: one search lane hands
    #: neighbourhoods of ``mip_window_arcs`` arcs to HiGHS, at most
    #: ``mip_window_seconds`` each (0 turns it off). Measured at 10 s against two
    #: CP-SAT lanes: 10k requests / 40 sites (24.7k arcs) +0.7 % of score; cities
    #: (50k arcs) -1.0 % to +0.1 % (a 6k-arc window is too small a share of a city
    #: to pay for the lane), so cities keep both CP-SAT lanes.
    mip_window_arcs: int = 6000
    #: Rule 9 on models up to this many arcs: after the optimiser, CP-SAT on the
    #: whole model with lazy rows for the incumbents' justified envy
    #: (:mod:`slotalloc.solver.fair`); larger models resolve the optimiser's
    #: answer only. Set to ``whole_model_arcs``: above it the optimiser's search
    #: uses the whole budget, so the loop would get none. The loop is exact but
    #: slow: tiny models (hypothesis, <= 6 requests) converge at once, while a
    #: 300-request district (635 arcs) needed 7 rounds and ~170 s to prove its
    #: optimum (320 520, against 313 090 from resolving the optimiser's answer).
    envy_lazy_max_arcs: int = 2500
    #: Rule 9 above ``envy_lazy_max_arcs`` (wall-clock runs): seconds per arc kept
    #: back from the search for finding and resolving its answer's envy (at most
    #: 30 % of the budget). Measured on the city (50 208 arcs): 0.53 s to find
    #: 4 515 triples, 1.44 s to resolve them; without it both rules took 11.3 s
    #: of a 10-s budget.
    envy_resolve_seconds_per_arc: float = 4.0e-5
    #: Both rules on cities, whose answer keeps the higher priorities at FCFS's
    #: places (:mod:`slotalloc.solver.search.priority_fix`): seconds per arc kept
    #: back instead, for checking that answer and resolving the little envy left.
    #: Measured: 0.27 s to find no triple on 64 437 arcs; 0.36 s to find 24 and
    #: 0.52 s to resolve them on 54 968 arcs (1.6e-5 s per arc).
    envy_fixed_seconds_per_arc: float = 1.6e-5
    #: ... and, on those with unlocked bookings, for mending a floor the resolve
    #: broke (``envy_mend_rounds``). Measured: 1.45 s on seed 13 (20k requests,
    #: 20 % booked, 30 cuts) and 0.69 s on u61 (18k, 20 % booked, pooled).
    envy_fixed_mend_seconds_per_arc: float = 3.0e-5
    #: Both rules on cities: the share of the time left that the LP bound over
    #: the whole city may take (it returns when solved). At 0.25 (about 2.2 s of
    #: 10) it timed out on seed 13 in one run of five (1.7 s in another), and
    #: the city fell back to FCFS in priority order (8 496 520 against 9 126 830).
    both_rules_bound_share: float = 0.4
    #: Both rules on districts (up to ``mip_max_arcs``): when resolving the envy
    #: breaks a floor, rounds of a repair that makes room only with requests of at
    #: most the entrant's priority, each resolved again; and the seconds per arc
    #: kept back for them (measured on 12 352 arcs: 2 rounds, 1.4 s).
    envy_mend_rounds: int = 4
    envy_mend_seconds_per_arc: float = 1.2e-4
    #: CP-SAT workers for each solve of the loop: on that district, 200 s, one
    #: worker ran 5 rounds (bound 320 520), two workers 1 round (bound 322 670).
    envy_workers: int = 1
    #: Rule 8 on cities: the repair of the rounded LP point inserts first the
    #: arcs worth more than this in the LP under the floors (1 turns it off).
    floor_prefer_value: float = 1e-6
    #: Rule 8 on districts (``whole_model_arcs`` to ``mip_max_arcs`` arcs, wall-clock
    #: runs): share of the budget for HiGHS on the model cut down to the LP's
    #: support, whose answer starts the optimiser (0 turns it off).
    floor_support_share: float = 0.25
    #: Rule 8 on cities: arcs of the neighbourhoods one search lane hands to HiGHS
    #: (as ``mip_window_arcs``; 0: both lanes CP-SAT). Measured at 10 s, 6 000
    #: against 0: seed 21 97.87 % of the bound against 98.10 %, seed 33 99.06 %
    #: against 99.04 %; so off.
    floor_mip_window: int = 0
    #: Rule 8 on cities: the repaired start is re-solved on the requests where it and
    #: the LP under the floors disagree (:func:`slotalloc.solver.fair._rins`), first
    #: freeing only the arcs that disagree (False), then every arc of those requests
    #: (True), each for at most ``floor_rins_share`` of the budget, before the search.
    #: Measured at 10 s on the five cities of ``benchmarks/quality/floor_city.py``
    #: (% of the bound, without -> narrow then wide): 97.90 -> 98.21, 99.13 -> 99.07,
    #: 97.30 -> 98.44, 97.52 -> 98.57, 96.71 -> 97.81; wide alone lost on the pooled
    #: city (97.05: CP-SAT found no answer in 3 s from the repaired start), narrow
    #: alone gained less (98.01, 99.09, 98.23, 98.39, 96.36), a third round nothing.
    #: The share was 0.3 until session 16: from the start around the arranged
    #: bookings (``floor_bookings_share``) t505's wide round ran to that cap
    #: (3.1 s); at 0.2, 10 s, runs 0.3/0.2/0.2/0.3: t505 96.24/96.31/96.86/96.28,
    #: seed 8 (whose wide round takes 2.1-2.4 s) 98.69/98.74/98.74/98.72; t303,
    #: t404, g6 and c3 (rounds under 0.7 s) within their noise.
    floor_rins: tuple[bool, ...] = (False, True)
    floor_rins_share: float = 0.2
    #: A round is skipped when less than this share of the budget is left before the
    #: bound's share: the narrow sub-model took 0.2-1.3 s to solve on those cities.
    floor_rins_min_share: float = 0.05
    #: CP-SAT workers of a round: two (a portfolio) lost on every city measured,
    #: 10 s, `optimize_fair` direct: seed 21 97.20 % against 98.07 %, seed 5 97.59 %
    #: against 98.28 %, seed 13 92.52 % against 97.62 % (the rounds ran 3-10 times
    #: longer and left the search no time).
    floor_rins_workers: int = 1
    #: Rule 8 on cities: share of the budget for the multiplier search at the end
    #: (``bound_share`` elsewhere). The bound is the LP's duals' Lagrangian: 20, 60
    #: and 200 steps from them lowered it by at most 0.012 % on seeds 21 and 13
    #: (session 10), while the 1.5 s they take at 10 s is a third of the search.
    floor_bound_share: float = 0.0
    #: Rule 8 on cities: CP-SAT's ``cp_model_probing_level`` in RINS and in the
    #: search's neighbourhoods (None: CP-SAT's default, 2). On the 104
    #: neighbourhoods one 10 s run on seeds 21 and 13 solved, each re-solved alone
    #: with its limit: 0 took 9.2-9.4 s in all and proved 97, the default
    #: 11.5-12.3 s and 92. RINS's wide round on seed 8: 2.0-2.1 s instead of its
    #: 3.0 s cap, for the same answer.
    floor_probing_level: int | None = 0
    #: Rule 8 on cities: CP-SAT's ``max_presolve_iterations`` in RINS and in the
    #: search's neighbourhoods (None: CP-SAT's default, 3). Replayed on 63
    #: neighbourhoods of seed 21, 1 gained 10 897 a second against 10 140. Live
    #: (session 17, 10 s, runs default/1/1/default per city, % of the bound, mean
    #: of two): g6 97.28 -> 97.68, c3 96.42 -> 96.67, t303 97.80 -> 97.95, s13
    #: 98.26 -> 98.35; c4 99.31 -> 99.24, c1 98.27 -> 98.23; eight more cities
    #: within 0.04. Mean over the 14: +0.06 points.
    floor_presolve_iterations: int | None = 1
    #: Rule 8 on cities: each neighbourhood may bank up to this many children above
    #: a floor, priced at the floor's LP dual (:class:`~slotalloc.solver.search.lns.FloorBank`);
    #: 0 turns it off. At the end of a 10 s run the short groups sit exactly on their
    #: floors, so without it no neighbourhood can give up one of their places. Measured
    #: (session 13, 10 s, runs 0/3/3/0 per city, % of the bound, mean of two): 3 against
    #: 0 ahead on 11 of 14 cities, by -0.02 to +0.17 (seed 21 98.57 / 98.47, u90
    #: 98.43 / 98.36, t505 96.77 / 96.65); seed 13 98.28 / 98.14 over three more pairs
    #: after one run of 96.86. Not tuned: 3 was the first cap tried (8 on seed 21:
    #: 98.68 and 98.47 against 98.58 and 98.45).
    floor_bank_cap: int = 3
    #: Rule 8 on cities where FCFS drops a booking that could move: share of the
    #: budget (wall seconds, or deterministic units taken from the search's) for
    #: arranging the bookings alone, on the other core while the LP is solved;
    #: the rounding then places them first (0 turns it off). Since session 17 one
    #: CP-SAT worker in a thread arranges them (0.1-0.55 s alone, the same
    #: arrangement as HiGHS in its child process; beside it, 10 s, two runs each
    #: on 8 cities: mean +0.03 points, n3 -0.15 to s13 +0.16). With HiGHS,
    #: measured at 10 s, old beside new, two runs each, on the
    #: eight cities of ``benchmarks/quality/floor_bookings.py`` where FCFS drops
    #: bookings (% of the bound): g6 90.05/84.88 -> 97.10/97.09 (the rounding
    #: without it fell back to FCFS), c3 94.89/95.31 -> 96.58/96.39, t505
    #: 96.72/96.75 -> 96.37/96.07 (its wide RINS round then ran to its 3 s cap),
    #: s13 98.33/98.25 -> 98.16/98.09, u90, c1, c2, c4 within 0.1. HiGHS took
    #: 1.2-2.2 s beside an LP of 1-2 s. Not tuned: 0.2 was the first share tried.
    floor_bookings_share: float = 0.2
    mip_window_seconds: float = 3.0
    mip_window_max_arcs: int = 30000
    #: GLOP's dual simplex with cost perturbation, measured against its default primal
    #: simplex (the same optimum): ten-city LP 14.8 s against 29.3 s, city 0.45 s
    #: against 0.76 s, and with the group-fairness rows 2.5 s against 8.5 s.
    glop_parameters: str = "use_dual_simplex:true,perturb_costs_in_dual_simplex:true"
    #: Wall seconds of the whole LP per arc, for budgets that must leave it room:
    #: measured, the LP of 626k arcs (ten-city) takes ~46 s on one core.
    lp_seconds_per_arc: float = 46.0 / 626_545


PARAMS = OptimizerParams()
