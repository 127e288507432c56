"""Validated, frozen models of the slotalloc v1 formats (FORMAT.md).

Every model is strict: no coercion between kinds (a number given as a string, a
bool given as a number, a float for an integer). To keep the Python constructors
pleasant, dates and timestamps may be given as ISO strings and sequences as
lists; they are stored as :class:`datetime.date`, aware
:class:`datetime.datetime` and tuples.

FORMAT's general rules are built into the field types: :data:`Id` (1 to 64
code points, no control character), :data:`Text` (no lone surrogate, for every
other string), :data:`Count` and :data:`PositiveCount` (at most
:data:`MAX_COUNT`), :data:`Weight` (at most :data:`MAX_WEIGHT`); floats must be
finite. The reader (:mod:`slotalloc.io`) adds what only the JSON text shows: a
key given twice, ``NaN``, ``1e400``, over-long integers, deep nesting.

Validation happens here, once; the compiler, the solvers, the verifier and the
online engine trust a constructed :class:`Instance`.
"""

from __future__ import annotations

from slotalloc.models.common import (
    INSTANCE_FORMAT,
    MAX_COUNT,
    MAX_DEPTH,
    MAX_ID_LENGTH,
    MAX_PREFERENCES,
    MAX_WEIGHT,
    SOLUTION_FORMAT,
)

# Not in __all__, but importable from here as before: the field types named
# above, and the helpers the reader (slotalloc.io), the command line and the
# online replay use.
from slotalloc.models.common import Count as Count
from slotalloc.models.common import Id as Id
from slotalloc.models.common import PositiveCount as PositiveCount
from slotalloc.models.common import Text as Text
from slotalloc.models.common import Weight as Weight
from slotalloc.models.common import _Model as _Model
from slotalloc.models.common import _parse_date as _parse_date
from slotalloc.models.common import _parse_timestamp as _parse_timestamp
from slotalloc.models.common import control_character as control_character
from slotalloc.models.common import did_you_mean as did_you_mean
from slotalloc.models.common import lone_surrogate as lone_surrogate
from slotalloc.models.events import (
    BookDecision,
    BookEvent,
    CancelDecision,
    CancelEvent,
    Decision,
    ErrorDecision,
    Event,
)
from slotalloc.models.instance import (
    CN_2019,
    AgeGroup,
    Booking,
    Child,
    Fairness,
    Instance,
    Objective,
    Policy,
    Request,
    Session,
    Site,
)
from slotalloc.models.solution import Assignment, ConflictItem, Solution, Status

__all__ = [
    "CN_2019",
    "INSTANCE_FORMAT",
    "MAX_COUNT",
    "MAX_DEPTH",
    "MAX_ID_LENGTH",
    "MAX_PREFERENCES",
    "MAX_WEIGHT",
    "SOLUTION_FORMAT",
    "AgeGroup",
    "Assignment",
    "BookDecision",
    "BookEvent",
    "Booking",
    "CancelDecision",
    "CancelEvent",
    "Child",
    "ConflictItem",
    "Decision",
    "ErrorDecision",
    "Event",
    "Fairness",
    "Instance",
    "Objective",
    "Policy",
    "Request",
    "Session",
    "Site",
    "Solution",
    "Status",
]
