"""The solution format (``slotalloc.solution/1``, FORMAT §2): status, assignments, explanation.

Part of :mod:`slotalloc.models`. Whether a solution is valid and accepted is
the verifier's job (:mod:`slotalloc.verify`); these models check its shape.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, field_validator, model_validator

from slotalloc.models.common import (
    MAX_DEPTH,
    SOLUTION_FORMAT,
    Id,
    IdTuple,
    Text,
    _Model,
    _to_tuple,
    lone_surrogate,
)

# ---------------------------------------------------------------- solution


class Status(enum.StrEnum):
    """Outcome of a solve, as written in a solution file."""

    OPTIMAL = "optimal"
    FEASIBLE = "feasible"
    INFEASIBLE = "infeasible"


class Assignment(_Model):
    """A request placed in a session."""

    request: Id
    session: Id


class ConflictItem(_Model):
    """One entry of an infeasibility explanation.

    ``bookings`` names the conflicting locked bookings by their request ids.
    """

    rule: Text
    message: Text
    sessions: IdTuple = ()
    bookings: IdTuple = ()
    children: IdTuple = ()


class Solution(_Model):
    """A solution file (``slotalloc.solution/1``).

    Raises
    ------
    pydantic.ValidationError
        When the file's shape is wrong (for example an infeasible status with a
        score). Whether the solution is valid and accepted is the verifier's job.
    """

    format: Literal["slotalloc.solution/1"] = SOLUTION_FORMAT
    instance: Text | None = None
    status: Status
    score: int | None = None
    bound: int | None = None
    assignments: Annotated[tuple[Assignment, ...], BeforeValidator(_to_tuple)] = ()
    explanation: Annotated[tuple[ConflictItem, ...] | None, BeforeValidator(_to_tuple)] = None
    stats: dict[str, Any] | None = None

    @field_validator("status", mode="before")
    @classmethod
    def _status_from_text(cls, value: Any) -> Any:
        # Strict enums refuse their own values given as text; the file gives text.
        return (
            Status(value)
            if isinstance(value, str) and value in Status._value2member_map_
            else value
        )

    @model_validator(mode="after")
    def _infeasible_has_no_score(self) -> Solution:
        if self.status is Status.INFEASIBLE:
            if self.score is not None or self.bound is not None or self.assignments:
                raise ValueError(
                    "an infeasible solution has null score and bound and no assignments"
                )
            if not self.explanation:
                raise ValueError("an infeasible solution needs an explanation")
        return self

    @model_validator(mode="after")
    def _stats_text_encodable(self) -> Solution:
        for path, node, _depth in _nodes(self.stats):
            bad = lone_surrogate(node) if isinstance(node, str) else None
            if bad is not None:
                raise ValueError(
                    f"stats{path} holds a lone surrogate (U+{ord(bad):04X}), "
                    "which cannot be written as UTF-8"
                )
        return self

    @model_validator(mode="after")
    def _stats_numbers_finite(self) -> Solution:
        for path, node, _depth in _nodes(self.stats):
            if isinstance(node, float) and not math.isfinite(node):
                raise ValueError(f"stats{path} is not a finite number")
        return self

    @model_validator(mode="after")
    def _stats_not_too_deep(self) -> Solution:
        for path, node, depth in _nodes(self.stats):
            # Levels of the file: the solution object is level 1, stats level 2.
            if isinstance(node, (Mapping, list, tuple)) and depth + 2 > MAX_DEPTH:
                raise ValueError(f"stats{path} is nested more than {MAX_DEPTH} levels deep")
        return self

    @model_validator(mode="after")
    def _feasible_has_score(self) -> Solution:
        if self.status is not Status.INFEASIBLE and self.score is None:
            raise ValueError(f"a {self.status.value} solution needs an integer score")
        return self


def _nodes(value: Any) -> Iterator[tuple[str, Any, int]]:
    """Every node of a JSON-shaped value (keys included) as (path, node, depth), depth first.

    Iterative, so that no nesting depth can exhaust the stack.
    """
    stack: list[tuple[str, Any, int]] = [("", value, 0)]
    while stack:
        path, node, depth = stack.pop()
        yield path, node, depth
        if isinstance(node, Mapping):
            items = list(node.items())
            for k, v in reversed(items):
                step = f".{k}" if isinstance(k, str) and k.isidentifier() else f"[{k!r}]"
                stack.append((path + step, v, depth + 1))
            for k, _v in items:
                yield path, k, depth + 1
        elif isinstance(node, (list, tuple)):
            for i in range(len(node) - 1, -1, -1):
                stack.append((f"{path}[{i}]", node[i], depth + 1))
