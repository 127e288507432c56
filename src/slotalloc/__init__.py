"""slotalloc: allocate young children to childcare sessions.

Validated frozen models -> compiled integer arrays -> solvers -> results, with an
independent verifier. See the README for the command line.
"""

from __future__ import annotations

import logging

from slotalloc.compile import Compiled, compile_instance
from slotalloc.exceptions import (
    BookingError,
    ChildConflictError,
    DuplicateRequestError,
    InputError,
    InvalidStateError,
    SlotallocError,
    UnknownChildError,
    UnknownRequestError,
    UnknownSessionError,
)
from slotalloc.io import load_instance, load_solution
from slotalloc.models import (
    AgeGroup,
    Assignment,
    Booking,
    Child,
    ConflictItem,
    Instance,
    Objective,
    Policy,
    Request,
    Session,
    Site,
    Solution,
    Status,
)
from slotalloc.online import Allocator, Cancellation, Decision, Placement
from slotalloc.result import Progress, Result, SolveStats
from slotalloc.solve import ExecutorConfig, solve
from slotalloc.verify import VerificationReport, Violation, verify

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

__all__ = [
    "AgeGroup",
    "Allocator",
    "Assignment",
    "Booking",
    "BookingError",
    "Cancellation",
    "Child",
    "ChildConflictError",
    "Compiled",
    "ConflictItem",
    "Decision",
    "DuplicateRequestError",
    "ExecutorConfig",
    "InputError",
    "Instance",
    "InvalidStateError",
    "Objective",
    "Placement",
    "Policy",
    "Progress",
    "Request",
    "Result",
    "Session",
    "Site",
    "SlotallocError",
    "Solution",
    "SolveStats",
    "Status",
    "UnknownChildError",
    "UnknownRequestError",
    "UnknownSessionError",
    "VerificationReport",
    "Violation",
    "__version__",
    "compile_instance",
    "load_instance",
    "load_solution",
    "solve",
    "verify",
]
