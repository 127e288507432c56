"""The Xiamen scenario's variants: bookings, locks, caregiver cuts and the rest.

:class:`Variant` holds the options (``docs/generator.md``, "Variants"); the
functions here apply those that change a generated document after the plain
scenario is drawn. Each variant draws from its own random stream
(:func:`stream`), so the plain scenario's draws are untouched and, with no
variant, the output is exactly the plain scenario's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from slotalloc.models import Instance
from slotalloc.scenarios.families import (
    EXTRA_REQUEST_P,
    PRIORITY_P,
    SAME_DAY_HALF_P,
    SAME_DAY_HOURLY_P,
)

__all__ = ["TAG_OVERLAP", "Variant", "bookings_of", "cut_caregivers", "stream", "tight_caregivers"]

# Variants (docs/generator.md, "Variants"). Each draws from its own stream
# numpy.random.default_rng([seed, tag]), so the plain scenario's draws are untouched.
_TAG_BOOKINGS = 1
_TAG_LOCKED = 2
TAG_OVERLAP = 3
_PRIORITY_MIX_P = (0.60, 0.10, 0.10, 0.10, 0.10)  # --priorities mix
_OVERLAP_EXTRA_REQUEST_P = (0.55, 0.10, 0.30, 0.05)  # none, other day, same day, both
_OVERLAP_SAME_DAY_HALF_P = 0.1
_OVERLAP_SAME_DAY_HOURLY_P = 0.2
_TIGHT_SHARE = 0.6  # --tight: caregivers scaled to this share, rounded, at least 1
_PLAN_TIME_LIMIT = 2.0  # --bookings-from plan: deterministic work budget of the source plan


@dataclass(frozen=True)
class Variant:
    """The scenario variant of a generated instance (all defaults: the plain scenario).

    Every field is validated on construction. The meaning of each is
    specified in ``docs/generator.md`` ("Variants").

    Parameters
    ----------
    staffing
        ``"per_group"`` (default) or ``"pooled"``, written in the policy.
    bookings
        Share in [0, 1] of the source plan's placements that become bookings.
    bookings_from
        Source plan of the bookings: ``"fcfs"`` (first come, first served) or
        ``"plan"`` (a previous batch plan).
    locked
        Share in [0, 1] of the bookings that are locked; needs ``bookings > 0``
        when it is not 0.
    cut
        Number of the most booked sessions that lose one caregiver (>= 0);
        needs ``bookings > 0`` when it is not 0.
    overlap
        More one-hour classes overlapping the half-days, and more families
        asking for a class on the same day as a half-day.
    tight
        Every session's caregivers scaled to about 60 % (at least 1).
    priorities
        ``"default"`` or ``"mix"`` (60 % priority 0, 10 % each of 1, 3, 5, 9).

    Raises
    ------
    ValueError
        When a field is out of range, or ``locked`` or ``cut`` is set without
        bookings.
    """

    staffing: str = "per_group"
    bookings: float = 0.0
    bookings_from: str = "fcfs"
    locked: float = 0.0
    cut: int = 0
    overlap: bool = False
    tight: bool = False
    priorities: str = "default"

    def __post_init__(self) -> None:
        if self.staffing not in ("per_group", "pooled"):
            raise ValueError(f"staffing must be 'per_group' or 'pooled', got {self.staffing!r}")
        for name in ("bookings", "locked"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.number):
                raise ValueError(f"{name} must be a number between 0 and 1, got {value!r}")
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1, got {value!r}")
        if self.bookings_from not in ("fcfs", "plan"):
            raise ValueError(f"bookings_from must be 'fcfs' or 'plan', got {self.bookings_from!r}")
        if isinstance(self.cut, bool) or not isinstance(self.cut, int | np.integer):
            raise ValueError(f"cut must be an integer, got {self.cut!r}")
        if self.cut < 0:
            raise ValueError(f"cut must be >= 0, got {self.cut}")
        for name in ("overlap", "tight"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.priorities not in ("default", "mix"):
            raise ValueError(f"priorities must be 'default' or 'mix', got {self.priorities!r}")
        if self.bookings == 0 and self.locked > 0:
            raise ValueError("locked needs bookings > 0 (there are no bookings to lock)")
        if self.bookings == 0 and self.cut > 0:
            raise ValueError("cut needs bookings > 0 (it cuts at the most booked sessions)")

    @property
    def suffix(self) -> str:
        """What the instance ``name`` appends for this variant ("" for the plain scenario)."""
        parts = []
        if self.bookings > 0:
            parts.append(f"b{float(self.bookings):g}{self.bookings_from}")
        if self.locked > 0:
            parts.append(f"l{float(self.locked):g}")
        if self.cut > 0:
            parts.append(f"cut{self.cut}")
        if self.staffing == "pooled":
            parts.append("pooled")
        if self.overlap:
            parts.append("overlap")
        if self.tight:
            parts.append("tight")
        if self.priorities == "mix":
            parts.append("prio-mix")
        return "".join(f"-{p}" for p in parts)

    def family_draws(self) -> dict[str, tuple[float, ...]]:
        """The families' draw weights this variant sets (keywords of ``make_families``)."""
        return {
            "extra_p": _OVERLAP_EXTRA_REQUEST_P if self.overlap else EXTRA_REQUEST_P,
            "priority_p": _PRIORITY_MIX_P if self.priorities == "mix" else PRIORITY_P,
        }

    def request_draws(self) -> dict[str, float]:
        """The requests' draw shares this variant sets (keywords of ``make_requests``)."""
        return {
            "same_day_half_p": _OVERLAP_SAME_DAY_HALF_P if self.overlap else SAME_DAY_HALF_P,
            "same_day_hourly_p": _OVERLAP_SAME_DAY_HOURLY_P if self.overlap else SAME_DAY_HOURLY_P,
        }


def stream(seed: int, tag: int) -> np.random.Generator:
    """A variant's own random stream, independent of the plain scenario's."""
    return np.random.default_rng([int(seed), tag])


def tight_caregivers(caregivers: int) -> int:
    """About 60 % of ``caregivers`` (rounded half up), at least 1."""
    return max(1, math.floor(_TIGHT_SHARE * caregivers + 0.5))


def _share(n: int, share: float) -> int:
    """``round(share * n)``, halves up (not to even)."""
    return min(n, math.floor(float(share) * n + 0.5))


def bookings_of(doc: dict[str, Any], seed: int, v: Variant) -> list[dict[str, Any]]:
    """Bookings drawn from the placements of a source plan of ``doc`` (no bookings yet)."""
    from slotalloc.solve import solve  # only here: importing the generator loads no solver

    base = Instance.model_validate(doc, strict=True)
    if v.bookings_from == "fcfs":
        plan = solve(base, method="fcfs")
    else:
        plan = solve(base, time_limit=_PLAN_TIME_LIMIT, deterministic=True, seed=seed)
    placed = plan.assignments  # in request order
    n = len(placed)
    chosen = np.sort(stream(seed, _TAG_BOOKINGS).permutation(n)[: _share(n, v.bookings)])
    k = int(chosen.size)
    lock = np.zeros(k, dtype=np.bool_)
    lock[stream(seed, _TAG_LOCKED).permutation(k)[: _share(k, v.locked)]] = True
    out: list[dict[str, Any]] = []
    for i, is_locked in zip(chosen.tolist(), lock.tolist(), strict=True):
        b: dict[str, Any] = {"request": placed[i].request, "session": placed[i].session}
        if is_locked:  # false is the default: left out
            b["locked"] = True
        out.append(b)
    return out


def cut_caregivers(doc: dict[str, Any], k: int) -> list[str]:
    """One caregiver less at the ``k`` most booked sessions the locked bookings allow.

    Sessions are ranked by booked children (most first, ties by id) among
    those with a booking and at least one caregiver; a session is skipped
    when, with one caregiver less, the locked bookings alone would break a
    rule (:func:`slotalloc.solver.infeasibility.locked_conflicts`). Returns the
    ids of the sessions cut (fewer than ``k`` if too few qualify).
    """
    from dataclasses import replace

    from slotalloc.compile import compile_instance
    from slotalloc.solver.infeasibility import locked_conflicts

    size = {r["id"]: len(r["children"]) for r in doc["requests"]}
    booked: dict[str, int] = {}
    for b in doc["bookings"]:
        booked[b["session"]] = booked.get(b["session"], 0) + size[b["request"]]
    by_id = {s["id"]: s for s in doc["sessions"]}
    ranked = sorted(
        (sid for sid in booked if by_id[sid]["caregivers"] >= 1),
        key=lambda sid: (-booked[sid], sid),
    )
    compiled = compile_instance(Instance.model_validate(doc, strict=True))
    index = {sid: i for i, sid in enumerate(compiled.session_ids)}
    caregivers = compiled.caregivers.copy()
    cut: list[str] = []
    for sid in ranked:
        if len(cut) == k:
            break
        caregivers[index[sid]] -= 1
        if locked_conflicts(replace(compiled, caregivers=caregivers)):
            caregivers[index[sid]] += 1  # the locked bookings need every caregiver here
            continue
        by_id[sid]["caregivers"] -= 1
        cut.append(sid)
    return cut
