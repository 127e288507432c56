"""What a solve returns and reports: results, their figures, progress; arcs to a result."""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.compile import Compiled
from slotalloc.models import Assignment, ConflictItem, Solution, Status

__all__ = ["Progress", "Result", "SolveStats", "result_from_arcs", "score_of_arcs"]


def _gap(score: int, bound: int | None) -> float | None:
    return None if bound is None else (bound - score) / max(1, abs(bound))


@dataclass(frozen=True, slots=True)
class Progress:
    """One progress report of a solve: incumbent score, bound, gap and elapsed seconds.

    Attributes
    ----------
    score
        The best score found so far.
    bound
        A proven upper bound on the best score, or None while there is none.
    elapsed
        Wall seconds since the solve started.
    """

    score: int
    bound: int | None
    elapsed: float

    @property
    def gap(self) -> float | None:
        """Relative distance between score and bound, or None without a bound."""
        return _gap(self.score, self.bound)


#: The figures SolveStats holds as attributes, in the order the file writes them
#: around the solver's own figures (see :meth:`SolveStats.to_json`).
_HEAD = ("solver", "compile_seconds")
_TAIL = ("min_group_rate", "solve_seconds")
_TYPED = {
    "solver": (str,),
    "compile_seconds": (int, float),
    "min_group_rate": (str,),
    "solve_seconds": (int, float),
}


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class SolveStats:
    """Figures of one solve, for people and logs; wall-clock figures live only here.

    The solution file's ``stats`` object (FORMAT §2: free-form) is
    :meth:`to_json`. Reading the figures as a mapping (``stats["solver"]``,
    ``stats.get(...)``, ``dict(stats)``) still works but is deprecated: it warns
    with a :class:`DeprecationWarning`.

    Attributes
    ----------
    solver
        What answered: ``"fcfs"``, the optimiser (``"auto"`` or ``"cp-sat"``, as
        asked) or ``"distributed"``; None when not known.
    compile_seconds
        Wall seconds spent compiling the instance (None when not measured apart).
    solve_seconds
        Wall seconds spent solving, compiling excluded except by parts (where
        the whole call is counted).
    min_group_rate
        The opt-in fairness rate as an exact fraction (``"4/5"``), when it was on.
    figures
        The solver's own figures (LP bound, strategy, search steps, parts...),
        in the order it recorded them; free-form.
    """

    solver: str | None = None
    compile_seconds: float | None = None
    solve_seconds: float | None = None
    min_group_rate: str | None = None
    figures: Mapping[str, Any] = field(default_factory=_empty)

    def __post_init__(self) -> None:
        clash = sorted(k for k in self.figures if k in _TYPED and getattr(self, k) is not None)
        if clash:
            raise ValueError(f"figures and attributes both give {clash}")
        object.__setattr__(self, "figures", MappingProxyType(dict(self.figures)))

    @property
    def strategy(self) -> str | None:
        """How the optimiser searched: ``"whole-model"``, ``"lns"``, or None.

        None also when the rounding was already proven optimal, or for another solver.
        """
        value = self.figures.get("strategy")
        return value if isinstance(value, str) else None

    def to_json(self) -> dict[str, Any]:
        """The figures as the solution file writes them.

        ``solver`` and ``compile_seconds`` first, then the solver's figures,
        then ``min_group_rate`` and ``solve_seconds``; attributes that are None
        are left out.
        """
        out: dict[str, Any] = {k: getattr(self, k) for k in _HEAD if getattr(self, k) is not None}
        out.update(self.figures)
        out.update((k, getattr(self, k)) for k in _TAIL if getattr(self, k) is not None)
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SolveStats:
        """Read figures written by :meth:`to_json` (or any free-form mapping).

        Keys of the attributes become attributes when their values have the
        attribute's type; everything else (an attribute's key with a value of
        another type included) stays in :attr:`figures`, in order.
        """
        typed: dict[str, Any] = {
            k: v for k, v in doc.items() if k in _TYPED and isinstance(v, _TYPED[k])
        }
        return cls(figures={k: v for k, v in doc.items() if k not in typed}, **typed)

    # Mapping-style access, kept for one release.

    def _mapping(self, what: str) -> dict[str, Any]:
        warnings.warn(
            f"SolveStats.{what} (reading Result.stats as a mapping) is deprecated: read "
            "its attributes (solver, compile_seconds, solve_seconds, min_group_rate, "
            "strategy), its figures, or to_json()",
            DeprecationWarning,
            stacklevel=3,
        )
        return self.to_json()

    def __getitem__(self, key: str) -> Any:
        return self._mapping("__getitem__")[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Deprecated: a figure by name, as ``to_json().get(key, default)``."""
        return self._mapping("get").get(key, default)

    def keys(self) -> Any:
        """Deprecated: ``to_json().keys()``."""
        return self._mapping("keys").keys()

    def items(self) -> Any:
        """Deprecated: ``to_json().items()``."""
        return self._mapping("items").items()

    def values(self) -> Any:
        """Deprecated: ``to_json().values()``."""
        return self._mapping("values").values()

    def __contains__(self, key: object) -> bool:
        return key in self._mapping("__contains__")

    def __iter__(self) -> Iterator[str]:
        return iter(self._mapping("__iter__"))

    def __len__(self) -> int:
        return len(self._mapping("__len__"))


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
        The solve's figures (:class:`SolveStats`); wall-clock figures live only
        here. A mapping given here is read by :meth:`SolveStats.from_json`.
    instance_name
        The instance's name, written into the solution.
    """

    status: Status
    score: int | None
    bound: int | None
    assignments: tuple[Assignment, ...] = ()
    explanation: tuple[ConflictItem, ...] | None = None
    stats: SolveStats = field(default_factory=SolveStats)
    instance_name: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.stats, SolveStats):
            object.__setattr__(self, "stats", SolveStats.from_json(self.stats))

    @property
    def gap(self) -> float | None:
        """Relative distance between score and bound, or None without both."""
        return None if self.score is None else _gap(self.score, self.bound)

    def to_solution(self) -> Solution:
        """This result as a FORMAT §2 solution model."""
        return Solution(
            instance=self.instance_name,
            status=self.status,
            score=self.score,
            bound=self.bound,
            assignments=self.assignments,
            explanation=self.explanation,
            stats=self.stats.to_json(),
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
    stats: SolveStats | Mapping[str, Any],
    instance_name: str | None,
) -> Result:
    """Build a :class:`Result` from chosen arcs, listed in request order.

    ``stats`` may be a mapping of figures (read by :meth:`SolveStats.from_json`).
    """
    chosen: IntArray = np.sort(np.asarray(arcs, dtype=np.int64))
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
        stats=stats if isinstance(stats, SolveStats) else SolveStats.from_json(stats),
        instance_name=instance_name,
    )
