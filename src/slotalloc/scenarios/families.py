"""The Xiamen scenario's families: their homes, children and requests.

Part of the generator (:mod:`slotalloc.scenarios.xiamen`, whose docstring and
``docs/generator.md`` describe the scenario). Every function draws from the
generator it is given, in a fixed order, so equal seeds give equal tables.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray
from slotalloc.rules import age_months
from slotalloc.scenarios.places import (
    DISTRICTS,
    KM_PER_DEG_LAT,
    OFFSET,
    SPAN,
    WEEKEND,
    Sessions,
    Sites,
    distance_km,
)

__all__ = [
    "EXTRA_REQUEST_P",
    "PRIORITY_P",
    "SAME_DAY_HALF_P",
    "SAME_DAY_HOURLY_P",
    "Families",
    "Requests",
    "make_families",
    "make_requests",
]

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

# Request mix. A family makes 1 request (one day), or adds a request for the
# other day, or one for a class / hourly session / the other half of the same
# day, or both (three requests; the per-child cap of 2 then binds).
EXTRA_REQUEST_P = (0.78, 0.15, 0.05, 0.02)  # none, other day, same day, both
_SIBLINGS_P = (0.90, 0.095, 0.005)  # 1, 2, 3 children
_MORNING_P = 0.70
_SATURDAY_P = 0.55
_KIND_P = (0.75, 0.15, 0.10)  # preferred kind of session
_N_PREFS_P = (0.20, 0.30, 0.25, 0.15, 0.10)  # 1..5 preferences
_PRIORITIES = (0, 1, 3, 5, 9)
PRIORITY_P = (0.88, 0.05, 0.035, 0.01, 0.025)
SAME_DAY_HALF_P = 0.3  # same-day request: the other half-day (else a class / hourly)
SAME_DAY_HOURLY_P = 0.5  # ... and among the rest, hourly (else a class)

_MAX_KM = 8.0  # a family considers the nearest sites this far from home (its own always)

# Preference scoring (lower is better), Gumbel noise added.
_W_KM = 0.5
_W_PERIOD = 2.0
_W_KIND = 1.2
_W_INELIGIBLE = 2.5
_NOISE = 0.6

# Registration opens Monday 2025-04-14 08:00 and closes Friday 20:00.
_OPENING = np.datetime64("2025-04-14T08:00:00", "s")
_WINDOW_S = (4 * 24 + 12) * 3600
_RUSH_P = 0.40
_RUSH_MEAN_S = 25 * 60
_HOUR_WEIGHTS = np.array(
    [0, 0, 0, 0, 0, 0, 1, 3, 5, 6, 6, 6, 7, 6, 5, 5, 5, 5, 6, 8, 10, 9, 6, 2], dtype=np.float64
)


# ---------------------------------------------------------------- families and children


class Families(NamedTuple):
    n: int
    extra: IntArray  # index into EXTRA_REQUEST_P
    anchor: IntArray  # site the home is drawn around
    home_lat: FloatArray
    home_lon: FloatArray
    n_children: IntArray
    birth_days: IntArray  # (families, 3): days before WEEKEND[0], -1 where no child
    local: BoolArray
    day: IntArray  # 0 Saturday, 1 Sunday
    morning: BoolArray
    kind: IntArray
    priority: IntArray
    submitted: list[str]

    def child_documents(self) -> list[dict[str, Any]]:
        mask = self.birth_days >= 0
        family_of = np.nonzero(mask)[0]
        births = np.datetime64(WEEKEND[0], "D") - self.birth_days[mask].astype("timedelta64[D]")
        dates = np.datetime_as_string(births, unit="D").tolist()
        width = _width(self.n)
        c_width = _width(len(dates) + 1)  # children are numbered from 1, as in the samples
        residency = np.where(self.local, "local", "non_local")[family_of].tolist()
        return [
            {"id": f"c{i + 1:0{c_width}d}", "birth_date": b, "residency": r,
             "household": f"h{f:0{width}d}"}
            for i, (b, r, f) in enumerate(zip(dates, residency, family_of.tolist(), strict=True))
        ]  # fmt: skip

    def child_ids(self) -> list[list[str]]:
        counts = self.n_children.tolist()
        width = _width(int(self.n_children.sum()) + 1)
        out: list[list[str]] = []
        next_id = 1
        for c in counts:
            out.append([f"c{next_id + j:0{width}d}" for j in range(c)])
            next_id += c
        return out


def _width(n: int) -> int:
    return max(6, len(str(max(0, n - 1))))


def _age_days(rng: np.random.Generator, size: int) -> IntArray:
    """Ages in days at WEEKEND[0]: mostly in [6, 36) months, a few % either side."""
    group = rng.choice(5, size=size, p=(0.02, 0.19, 0.39, 0.38, 0.02))
    # Day ranges safely inside the month bands (1-5, 6-11, 12-23, 24-35, 36-39 months).
    low = np.array([45, 186, 370, 735, 1100])[group]
    high = np.array([170, 360, 725, 1090, 1215])[group]
    return rng.integers(low, high + 1).astype(np.int64)


def make_families(
    rng: np.random.Generator,
    n_requests: int,
    site_table: Sites,
    *,
    extra_p: tuple[float, ...] = EXTRA_REQUEST_P,
    priority_p: tuple[float, ...] = PRIORITY_P,
) -> Families:
    """Families making exactly ``n_requests`` requests, numbered in submission order.

    The draws follow one fixed order (request counts, homes, children, the
    family's wishes, submission times), so equal generators give equal tables.
    """
    extra = _request_counts(rng, n_requests, extra_p)
    n = int(extra.shape[0])
    district, anchor, home_lat, home_lon = _homes(rng, n, site_table)
    n_children, birth = _children(rng, n)
    local_share = np.array([d.local_share for d in DISTRICTS])[district]
    local = rng.random(n) < local_share
    day = (rng.random(n) >= _SATURDAY_P).astype(np.int64)
    morning = rng.random(n) < _MORNING_P
    kind = rng.choice(3, size=n, p=_KIND_P).astype(np.int64)
    priority = np.asarray(_PRIORITIES, dtype=np.int64)[rng.choice(5, size=n, p=priority_p)]
    seconds = _submission_seconds(rng, n)
    # Families are numbered in submission order (file order is first come, first served).
    order = np.argsort(seconds, kind="stable")
    stamps = _OPENING + np.sort(seconds).astype("timedelta64[s]")
    submitted = [f"{t}{OFFSET}" for t in np.datetime_as_string(stamps, unit="s").tolist()]
    return Families(
        n=n,
        extra=extra[order],
        anchor=anchor[order],
        home_lat=home_lat[order],
        home_lon=home_lon[order],
        n_children=n_children[order],
        birth_days=birth[order],
        local=local[order],
        day=day[order],
        morning=morning[order],
        kind=kind[order],
        priority=priority[order],
        submitted=submitted,
    )


def _request_counts(
    rng: np.random.Generator, n_requests: int, extra_p: tuple[float, ...]
) -> IntArray:
    """Each family's extra requests (an index into ``extra_p``), cut so the total is exact."""
    extra = rng.choice(4, size=n_requests, p=extra_p).astype(np.int64)
    per_family = 1 + (extra > 0) + (extra == 3)
    total = np.cumsum(per_family)
    n = int(np.searchsorted(total, n_requests)) + 1
    extra = extra[:n].copy()
    over = int(total[n - 1]) - n_requests
    if over:
        extra[-1] = 1 if (extra[-1] == 3 and over == 1) else 0
    return extra


def _homes(
    rng: np.random.Generator, n: int, site_table: Sites
) -> tuple[IntArray, IntArray, FloatArray, FloatArray]:
    """Home district by population, then a site of it by popularity, then a home nearby.

    Returns the district, the site the home is drawn around, and the home's
    latitude and longitude.
    """
    n_districts = len(DISTRICTS)
    has_sites = np.bincount(site_table.district, minlength=n_districts) > 0
    pops = np.array([d.population for d in DISTRICTS], dtype=np.float64) * has_sites
    district = rng.choice(n_districts, size=n, p=pops / pops.sum())
    anchor = np.empty(n, dtype=np.int64)
    u = rng.random(n)
    for d in range(n_districts):
        members = np.nonzero(district == d)[0]
        if members.size == 0:
            continue
        candidates = np.nonzero(site_table.district == d)[0]
        cdf = np.cumsum(site_table.popularity[candidates])
        pick = np.searchsorted(cdf, u[members] * cdf[-1], side="right")
        anchor[members] = candidates[np.minimum(pick, candidates.size - 1)]
    jitter = rng.standard_normal((n, 2)) * 1.0  # km
    home_lat = site_table.lat[anchor] + jitter[:, 0] / KM_PER_DEG_LAT
    home_lon = site_table.lon[anchor] + jitter[:, 1] / (
        KM_PER_DEG_LAT * np.cos(np.radians(site_table.lat[anchor]))
    )
    return district, anchor, home_lat, home_lon


def _children(rng: np.random.Generator, n: int) -> tuple[IntArray, IntArray]:
    """Children per family and their ages in days (``-1`` where there is no child).

    Siblings are twins or 10-30 months apart.
    """
    n_children = 1 + rng.choice(3, size=n, p=_SIBLINGS_P).astype(np.int64)
    birth = np.full((n, 3), -1, dtype=np.int64)
    birth[:, 0] = _age_days(rng, n)
    twins = rng.random((n, 2)) < 0.15
    gaps = rng.integers(300, 915, size=(n, 2))
    for j in (1, 2):
        has = n_children > j
        prev = birth[:, j - 1]
        younger = np.where(twins[:, j - 1], prev, prev - gaps[:, j - 1])
        younger = np.where(younger < 30, prev, younger)  # not yet born: make them twins
        birth[:, j] = np.where(has, younger, -1)
    return n_children, birth


def _submission_seconds(rng: np.random.Generator, n: int) -> IntArray:
    """Seconds after opening: a rush after opening, then the rest of the week by hour of day."""
    rush = rng.random(n) < _RUSH_P
    rush_s = np.minimum(rng.exponential(_RUSH_MEAN_S, n), 6 * 3600)
    weekday = rng.integers(0, 5, n)
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    within = rng.integers(0, 3600, n)
    later_s = weekday * 86400 + (hour - 8) * 3600 + within
    later_s = np.clip(later_s, 0, _WINDOW_S - 1)
    return np.asarray(np.where(rush, rush_s.astype(np.int64), later_s).astype(np.int64))


# ---------------------------------------------------------------- requests and preferences


class Requests(NamedTuple):
    family: IntArray
    suffix: IntArray  # 0 "", 1 "b", 2 "c"
    prefs: IntArray  # (requests, 5): session indices, -1 padded

    def documents(self, families: Families, sessions: Sessions) -> list[dict[str, Any]]:
        children = families.child_ids()
        width = _width(families.n)
        letters = ("", "b", "c")
        sids = sessions.ids
        priority = families.priority.tolist()
        submitted = families.submitted
        out: list[dict[str, Any]] = []
        for f, k, row in zip(
            self.family.tolist(), self.suffix.tolist(), self.prefs.tolist(), strict=True
        ):
            doc: dict[str, Any] = {
                "id": f"r{f:0{width}d}{letters[k]}",
                "children": children[f],
                "preferences": [sids[p] for p in row if p >= 0],
            }
            if priority[f]:  # 0 is the default: left out to keep files small
                doc["priority"] = priority[f]
            doc["submitted_at"] = submitted[f]
            out.append(doc)
        return out


def _months(birth_days: IntArray, date: str) -> IntArray:
    """Completed months (FORMAT §1) at ``date`` of children born ``birth_days`` before the 19th."""
    born = np.datetime64(WEEKEND[0], "D") - birth_days.astype("timedelta64[D]")
    b_month = born.astype("datetime64[M]")
    on = dt.date.fromisoformat(date)
    return np.asarray(
        age_months(
            b_month.astype("datetime64[Y]").astype(np.int64) + 1970,
            b_month.astype(np.int64) % 12 + 1,
            (born - b_month).astype(np.int64) + 1,
            on.year,
            on.month,
            on.day,
        ),
        dtype=np.int64,
    )


def make_requests(
    rng: np.random.Generator,
    families: Families,
    site_table: Sites,
    sessions: Sessions,
    *,
    same_day_half_p: float = SAME_DAY_HALF_P,
    same_day_hourly_p: float = SAME_DAY_HOURLY_P,
) -> Requests:
    n_req = 1 + (families.extra > 0) + (families.extra == 3)
    family = np.repeat(np.arange(families.n, dtype=np.int64), n_req)
    first = np.cumsum(n_req) - n_req
    suffix = np.arange(family.size, dtype=np.int64) - first[family]
    # Variant: 0 the family's own request, 1 the other day, 2 the same day again.
    extra = families.extra[family]
    variant = np.where(suffix == 0, 0, np.where((extra == 2) | (suffix == 2), 2, 1))
    r = family.size

    day = families.day[family]
    day = np.where(variant == 1, 1 - day, day)
    morning = families.morning[family].copy()
    # The other day's period is the same one, or in 20% of cases drawn afresh.
    redraw = (variant == 1) & (rng.random(r) < 0.2)
    morning[redraw] = (rng.random(r) < _MORNING_P)[redraw]
    kind = families.kind[family].copy()
    period_weight = np.full(r, _W_PERIOD)
    second = variant == 2
    # Same day again: a class or an hourly session at any time, or the other half-day.
    wants_half = rng.random(r) < same_day_half_p
    same_kind = 1 + (rng.random(r) < same_day_hourly_p).astype(np.int64)
    kind[second] = np.where(wants_half, 0, same_kind)[second]
    morning[second & wants_half] = ~morning[second & wants_half]
    period_weight[second & ~wants_half] = 0.0
    n_prefs = 1 + rng.choice(5, size=r, p=_N_PREFS_P)

    # Candidate sessions: those of the day at the sites nearest the home area.
    near = site_table.neighbours[families.anchor[family]]  # (r, k)
    h_lat = families.home_lat[family][:, None]
    h_lon = families.home_lon[family][:, None]
    km = distance_km(h_lat, h_lon, site_table.lat[near], site_table.lon[near])
    cand = sessions.slots[near, day[:, None], :].reshape(r, -1)  # (r, k * slots)
    # Too far to travel with a toddler, unless it is the home site itself.
    reachable = (km <= _MAX_KM) | (np.arange(near.shape[1]) == 0)[None, :]
    n_slots = sessions.slots.shape[2]
    valid = (cand >= 0) & np.repeat(reachable, n_slots, axis=1)
    idx = np.where(valid, cand, 0)
    score = np.repeat(km, n_slots, axis=1) * _W_KM
    score += period_weight[:, None] * (sessions.morning[idx] != morning[:, None])
    score += _W_KIND * (sessions.kind[idx] != kind[:, None])
    eligible = np.ones(idx.shape, dtype=np.bool_)
    ages = [_months(families.birth_days, date) for date in WEEKEND]
    lo, hi = sessions.min_months[idx], sessions.max_months[idx]
    for j in range(3):
        has = (families.birth_days[:, j] >= 0)[family]
        age = np.where(day == 0, ages[0][:, j][family], ages[1][:, j][family])[:, None]
        ok = (lo <= age) & (age < hi) & (SPAN[0] <= age) & (age < SPAN[1])
        eligible &= ok | ~has[:, None]
    score += _W_INELIGIBLE * ~eligible
    score += rng.gumbel(0.0, _NOISE, size=score.shape)
    score[~valid] = np.inf
    order = np.argsort(score, axis=1, kind="stable")[:, : len(_N_PREFS_P)]
    prefs = np.take_along_axis(cand, order, axis=1)
    n_prefs = np.minimum(n_prefs, valid.sum(axis=1))
    prefs[np.arange(prefs.shape[1])[None, :] >= n_prefs[:, None]] = -1
    return Requests(family=family, suffix=suffix, prefs=prefs)
