"""Array aliases shared by the modules that pass compiled arrays around.

Every index, count and score inside the library is an ``int64`` (the models'
integers, compiled); fractional values appear only in the LP's point and duals.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["BoolArray", "FloatArray", "IntArray"]

#: Indices, counts and integer values (arcs, requests, sessions, scores).
IntArray = npt.NDArray[np.int64]
#: Per-item flags (a request movable, a session busy).
BoolArray = npt.NDArray[np.bool_]
#: Fractional values: an LP point, its duals, Lagrangian multipliers.
FloatArray = npt.NDArray[np.float64]
