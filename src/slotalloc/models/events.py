"""The online formats (FORMAT §3): book and cancel events, and their decisions.

Part of :mod:`slotalloc.models`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BeforeValidator, Field

from slotalloc.models.common import Id, NonNegInt, Text, _Model, _to_tuple
from slotalloc.models.instance import Child, Request
from slotalloc.models.solution import Assignment

# ---------------------------------------------------------------- online events and decisions


class BookEvent(_Model):
    """``{"op": "book", "request": {...}, "children": [...]}``."""

    op: Literal["book"]
    request: Request
    children: Annotated[tuple[Child, ...] | None, BeforeValidator(_to_tuple)] = None


class CancelEvent(_Model):
    """``{"op": "cancel", "request": "r-9"}``."""

    op: Literal["cancel"]
    request: Id


Event = Annotated[BookEvent | CancelEvent, Field(discriminator="op")]


class BookDecision(_Model):
    """The outcome of a book event."""

    event: NonNegInt
    request: Id
    session: Id | None
    waitlisted: bool


class CancelDecision(_Model):
    """The outcome of a cancel event."""

    event: NonNegInt
    request: Id
    cancelled: Literal[True] = True
    promoted: Annotated[tuple[Assignment, ...], BeforeValidator(_to_tuple)] = ()


class ErrorDecision(_Model):
    """An event that was refused; nothing changed."""

    event: NonNegInt
    error: Text


Decision = BookDecision | CancelDecision | ErrorDecision
