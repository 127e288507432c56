"""Synthetic but realistic instances: a weekend of childcare sessions in Xiamen.

The scenario (documented in ``docs/generator.md``): neighbourhood childcare
points spread over Xiamen's six districts in proportion to their population,
each offering Saturday and Sunday half-day sessions plus a few one-hour
experience classes and hourly drop-in sessions on the weekend of 2025-04-19/20;
families living near a point ask for places, mostly in the mornings, so the
mornings are oversubscribed and the afternoons are quieter.

Everything random goes through :func:`numpy.random.default_rng` seeded with the
caller's seed, so equal arguments give byte-identical files. Nothing random
happens at import time.

Scenario variants (:class:`Variant`: bookings from a source plan, locked
bookings, caregiver cuts, pooled staffing, more overlapping classes, scarce
caregivers, a heavier priority mix) are keyword-only options of the public
functions; with none of them the output is exactly the plain scenario's.

Examples
--------
>>> from slotalloc.scenarios.xiamen import SIZES, generate_xiamen
>>> n_requests, n_sites = SIZES["district"]
>>> instance = generate_xiamen(seed=1, requests=n_requests, sites=n_sites)
>>> len(instance.requests)
3000
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from slotalloc.models import Instance

__all__ = [
    "DISTRICTS",
    "SIZES",
    "WEEKEND",
    "District",
    "Variant",
    "generate_xiamen",
    "generate_xiamen_document",
    "generate_xiamen_json",
]

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


class District(NamedTuple):
    """One of Xiamen's six districts, as the generator models it.

    Attributes
    ----------
    name
        English (pinyin) name, as written in ``site.district``.
    code
        Two-letter prefix of the district's site ids (as in the sample files).
    population
        Approximate resident population of the 2020 (seventh) national census.
    lat, lon
        Approximate centre of the district's built-up area, in degrees.
    spread
        Standard deviation, in degrees, of site positions around the centre.
    local_share
        Share of families with a local household registration (illustrative).
    capacity_range
        Inclusive range of places of the district's points (older, denser
        districts have smaller rooms).
    subdistricts
        Sub-district (street / town) names used to name the points.
    """

    name: str
    code: str
    population: int
    lat: float
    lon: float
    spread: float
    local_share: float
    capacity_range: tuple[int, int]
    subdistricts: tuple[str, ...]


#: Xiamen's districts. Populations: 2020 census, rounded (approximate).
DISTRICTS: tuple[District, ...] = (
    District(
        "Siming", "SI", 1_070_000, 24.470, 118.110, 0.018, 0.60, (10, 24),
        ("Lianqian", "Jialian", "Binhai", "Zhonghua", "Xiagang", "Kaiyuan", "Lujiang",
         "Zengcuoan"),
    ),
    District(
        "Huli", "HU", 1_040_000, 24.515, 118.135, 0.016, 0.45, (10, 26),
        ("Huli", "Dianqian", "Heshan", "Jiangtou", "Jinshan", "Hecuo"),
    ),
    District(
        "Jimei", "JI", 1_040_000, 24.610, 118.060, 0.025, 0.40, (14, 30),
        ("Jimei", "Qiaoying", "Xinglin", "Guankou", "Houxi", "Xingbin"),
    ),
    District(
        "Haicang", "HA", 580_000, 24.490, 117.995, 0.020, 0.40, (14, 30),
        ("Haicang", "Xinyang", "Songyu", "Dongfu"),
    ),
    District(
        "Tong'an", "TO", 860_000, 24.725, 118.150, 0.025, 0.50, (14, 30),
        ("Datong", "Xiangping", "Xinmin", "Wuxian", "Xike", "Hongtang", "Tingxi"),
    ),
    District(
        "Xiang'an", "XI", 570_000, 24.620, 118.245, 0.025, 0.55, (14, 30),
        ("Xinyu", "Xindian", "Maxiang", "Neicuo", "Dadeng"),
    ),
)  # fmt: skip

#: Named sizes for the command line: name -> (requests, sites).
SIZES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {"district": (3000, 12), "city": (25000, 91), "ten-cities": (250000, 910)}
)

#: The two days of the scenario (Saturday, Sunday); sessions use offset +08:00.
WEEKEND: tuple[str, str] = ("2025-04-19", "2025-04-20")

_OFFSET = "+08:00"
_M2_PER_CHILD = 3.0
_SPAN = (6, 36)  # the cn-2019 groups' span [6, 36) months
_KM_PER_DEG_LAT = 110.57
_NEIGHBOURS = 6  # sites a family considers: the ones nearest to its home area
_MAX_KM = 8.0  # ... if they are at most this far from home (the home site always is)

# Session templates: (kind, start minute, end minute). Kinds are coded
# 0 half_day, 1 experience_class, 2 hourly.
_KINDS = ("half_day", "experience_class", "hourly")
_COURSES = ("picture_book", "gross_motor", "music_social", "sensory_integration")
# Youngest age (months) each course is offered for.
_COURSE_MIN_MONTHS = (18, 12, 12, 24)
_AM = (0, 8 * 60 + 30, 12 * 60)
_PM = (0, 14 * 60 + 30, 17 * 60 + 30)
_EXTRAS: tuple[tuple[int, int, int], ...] = (
    (1, 9 * 60, 10 * 60),
    (1, 10 * 60, 11 * 60),
    (1, 15 * 60, 16 * 60),
    (1, 16 * 60, 17 * 60),
    (2, 9 * 60, 11 * 60),
    (2, 10 * 60, 11 * 60),
    (2, 13 * 60 + 30, 14 * 60 + 30),  # touches the afternoon half-day: no overlap
    (2, 15 * 60 + 30, 16 * 60 + 30),
    (2, 17 * 60 + 30, 18 * 60 + 30),  # touches the afternoon half-day: no overlap
)
_MAX_EXTRAS = 3  # per site, over both days
_SLOTS = 2 + _MAX_EXTRAS  # sessions of a site on one day, at most

# Request mix. A family makes 1 request (one day), or adds a request for the
# other day, or one for a class / hourly session / the other half of the same
# day, or both (three requests; the per-child cap of 2 then binds).
_EXTRA_REQUEST_P = (0.78, 0.15, 0.05, 0.02)  # none, other day, same day, both
_SIBLINGS_P = (0.90, 0.095, 0.005)  # 1, 2, 3 children
_MORNING_P = 0.70
_SATURDAY_P = 0.55
_KIND_P = (0.75, 0.15, 0.10)  # preferred kind of session
_N_PREFS_P = (0.20, 0.30, 0.25, 0.15, 0.10)  # 1..5 preferences
_PRIORITIES = (0, 1, 3, 5, 9)
_PRIORITY_P = (0.88, 0.05, 0.035, 0.01, 0.025)

# Variants (docs/generator.md, "Variants"). Each draws from its own stream
# numpy.random.default_rng([seed, tag]), so the plain scenario's draws are untouched.
_TAG_BOOKINGS = 1
_TAG_LOCKED = 2
_TAG_OVERLAP = 3
_PRIORITY_MIX_P = (0.60, 0.10, 0.10, 0.10, 0.10)  # --priorities mix
_OVERLAP_CLASS_P = 0.5  # --overlap: each missing one-hour class time of a day, per site
_OVERLAP_EXTRA_REQUEST_P = (0.55, 0.10, 0.30, 0.05)  # none, other day, same day, both
_SAME_DAY_HALF_P = 0.3  # same-day request: the other half-day (else a class / hourly)
_SAME_DAY_HOURLY_P = 0.5  # ... and among the rest, hourly (else a class)
_OVERLAP_SAME_DAY_HALF_P = 0.1
_OVERLAP_SAME_DAY_HOURLY_P = 0.2
_TIGHT_SHARE = 0.6  # --tight: caregivers scaled to this share, rounded, at least 1
_PLAN_TIME_LIMIT = 2.0  # --bookings-from plan: deterministic work budget of the source plan

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


# ---------------------------------------------------------------- public API


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


def generate_xiamen(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> Instance:
    """Generate a validated Xiamen weekend instance.

    Parameters
    ----------
    seed
        Non-negative integer seed of :func:`numpy.random.default_rng`.
    requests
        Exact number of requests (second and third requests of a family
        included), at least 1.
    sites
        Number of childcare points, at least 1, spread over the six districts
        in proportion to their population (91 for the city scenario).
    staffing
        ``"per_group"`` or ``"pooled"``, written in the policy.
    bookings
        Share in [0, 1] of the placements of a source plan (computed on the
        same instance without bookings) that become ``bookings`` (default 0:
        none).
    bookings_from
        The source plan: ``"fcfs"`` (first come, first served, default) or
        ``"plan"`` (``slotalloc.solve`` with a 2-unit deterministic budget).
    locked
        Share in [0, 1] of the bookings marked ``"locked": true`` (default 0).
    cut
        One caregiver less at the ``cut`` sessions holding the most booked
        children, skipping sessions where the locked bookings would no longer
        fit (default 0).
    overlap
        More one-hour classes overlapping the half-days and more same-day
        class requests, so that the overlap rule binds often.
    tight
        Scarce caregivers: every session's caregivers scaled to about 60 %
        (at least 1).
    priorities
        ``"default"`` or ``"mix"`` (a heavier priority mix).

    Returns
    -------
    Instance
        The validated instance; equal arguments give equal instances. Its
        locked bookings are consistent, so it is feasible.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.

    See Also
    --------
    Variant : the variant options, validated together.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    return Instance.model_validate(_document(seed, requests, sites, v), strict=True)


def generate_xiamen_json(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> str:
    """Generate a Xiamen weekend instance as the exact text of its file.

    The text is compact JSON (UTF-8 safe, no ASCII escaping) ending in a
    newline. It is validated as an :class:`~slotalloc.models.Instance` before
    it is returned.

    Parameters
    ----------
    seed, requests, sites
        As for :func:`generate_xiamen`.
    staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities
        The variant, as for :func:`generate_xiamen`.

    Returns
    -------
    str
        The file's text; equal arguments give identical text.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    doc = _document(seed, requests, sites, v)
    Instance.model_validate(doc, strict=True)
    return json.dumps(doc, ensure_ascii=False, separators=(",", ":")) + "\n"


def generate_xiamen_document(
    seed: int,
    requests: int,
    sites: int = 91,
    *,
    staffing: str = "per_group",
    bookings: float = 0.0,
    bookings_from: str = "fcfs",
    locked: float = 0.0,
    cut: int = 0,
    overlap: bool = False,
    tight: bool = False,
    priorities: str = "default",
) -> dict[str, Any]:
    """Generate a Xiamen weekend instance as a plain JSON document (not validated).

    Optional keys whose value would be the default are left out, to keep the
    files small. (With bookings, the instance without them is validated to
    compute the source plan.)

    Parameters
    ----------
    seed, requests, sites
        As for :func:`generate_xiamen`.
    staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities
        The variant, as for :func:`generate_xiamen`.

    Returns
    -------
    dict
        A JSON-ready document following ``slotalloc.instance/1``.

    Raises
    ------
    ValueError
        When an argument is out of range, or ``locked`` or ``cut`` is set
        without bookings.
    """
    v = Variant(staffing, bookings, bookings_from, locked, cut, overlap, tight, priorities)
    return _document(seed, requests, sites, v)


def _document(seed: int, requests: int, sites: int, v: Variant) -> dict[str, Any]:
    _check_args(seed, requests, sites, v.staffing)
    site_rng, family_rng = np.random.default_rng(seed).spawn(2)
    site_table = _make_sites(site_rng, sites)
    overlap_rng = _stream(seed, _TAG_OVERLAP) if v.overlap else None
    session_table = _make_sessions(site_rng, site_table, overlap_rng)
    families = _make_families(
        family_rng,
        requests,
        site_table,
        extra_p=_OVERLAP_EXTRA_REQUEST_P if v.overlap else _EXTRA_REQUEST_P,
        priority_p=_PRIORITY_MIX_P if v.priorities == "mix" else _PRIORITY_P,
    )
    rows = _make_requests(
        family_rng,
        families,
        site_table,
        session_table,
        same_day_half_p=_OVERLAP_SAME_DAY_HALF_P if v.overlap else _SAME_DAY_HALF_P,
        same_day_hourly_p=_OVERLAP_SAME_DAY_HOURLY_P if v.overlap else _SAME_DAY_HOURLY_P,
    )
    session_docs = session_table.documents
    if v.tight:
        for doc in session_docs:
            doc["caregivers"] = _tight(doc["caregivers"])
    out: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "name": f"xiamen-weekend-{WEEKEND[0]}-seed{seed}-{requests}r-{sites}s{v.suffix}",
        "policy": {"preset": "cn-2019", "staffing": v.staffing, "max_sessions_per_child": 2},
        "sites": site_table.documents(),
        "sessions": session_docs,
        "children": families.child_documents(),
        "requests": rows.documents(families, session_table),
    }
    if v.bookings > 0:
        out["bookings"] = _bookings(out, seed, v)
        if v.cut > 0:
            _cut_caregivers(out, v.cut)
    return out


# ---------------------------------------------------------------- arguments


def _check_args(seed: Any, requests: Any, sites: Any, staffing: Any) -> None:
    for name, value, low in (("seed", seed, 0), ("requests", requests, 1), ("sites", sites, 1)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer):
            raise ValueError(f"{name} must be an integer, got {value!r}")
        if value < low:
            raise ValueError(f"{name} must be >= {low}, got {value}")
    if staffing not in ("per_group", "pooled"):
        raise ValueError(f"staffing must be 'per_group' or 'pooled', got {staffing!r}")


def _stream(seed: int, tag: int) -> np.random.Generator:
    """A variant's own random stream, independent of the plain scenario's."""
    return np.random.default_rng([int(seed), tag])


# ---------------------------------------------------------------- variants


def _tight(caregivers: int) -> int:
    """About 60 % of ``caregivers`` (rounded half up), at least 1."""
    return max(1, math.floor(_TIGHT_SHARE * caregivers + 0.5))


def _share(n: int, share: float) -> int:
    """``round(share * n)``, halves up (not to even)."""
    return min(n, math.floor(float(share) * n + 0.5))


def _bookings(doc: dict[str, Any], seed: int, v: Variant) -> list[dict[str, Any]]:
    """Bookings drawn from the placements of a source plan of ``doc`` (no bookings yet)."""
    from slotalloc.solve import solve  # only here: importing the generator loads no solver

    base = Instance.model_validate(doc, strict=True)
    if v.bookings_from == "fcfs":
        plan = solve(base, method="fcfs")
    else:
        plan = solve(base, time_limit=_PLAN_TIME_LIMIT, deterministic=True, seed=seed)
    placed = plan.assignments  # in request order
    n = len(placed)
    chosen = np.sort(_stream(seed, _TAG_BOOKINGS).permutation(n)[: _share(n, v.bookings)])
    k = int(chosen.size)
    lock = np.zeros(k, dtype=np.bool_)
    lock[_stream(seed, _TAG_LOCKED).permutation(k)[: _share(k, v.locked)]] = True
    out: list[dict[str, Any]] = []
    for i, is_locked in zip(chosen.tolist(), lock.tolist(), strict=True):
        b: dict[str, Any] = {"request": placed[i].request, "session": placed[i].session}
        if is_locked:  # false is the default: left out
            b["locked"] = True
        out.append(b)
    return out


def _cut_caregivers(doc: dict[str, Any], k: int) -> list[str]:
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


# ---------------------------------------------------------------- sites


class _Sites(NamedTuple):
    ids: list[str]
    district: IntArray
    lat: FloatArray
    lon: FloatArray
    capacity: IntArray
    area: FloatArray
    names: list[str]
    popularity: FloatArray
    neighbours: IntArray  # (sites, k): nearest sites, the site itself first

    def documents(self) -> list[dict[str, Any]]:
        return [
            {"id": sid, "name": name, "district": DISTRICTS[d].name, "lat": la, "lon": lo,
             "area_m2": a}
            for sid, name, d, la, lo, a in zip(
                self.ids, self.names, self.district.tolist(), self.lat.tolist(),
                self.lon.tolist(), self.area.tolist(), strict=True,
            )
        ]  # fmt: skip


def _allocate(total: int, weights: FloatArray) -> IntArray:
    """Split ``total`` in proportion to ``weights`` (largest remainders, ties to the first)."""
    exact = total * weights / weights.sum()
    counts = np.floor(exact).astype(np.int64)
    short = total - int(counts.sum())
    order = np.argsort(-(exact - counts), kind="stable")
    counts[order[:short]] += 1
    return counts


def _km(lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray) -> FloatArray:
    """Equirectangular distance in km (plenty at city scale)."""
    cos = np.cos(np.radians((lat1 + lat2) / 2))
    dy = (lat1 - lat2) * _KM_PER_DEG_LAT
    dx = (lon1 - lon2) * _KM_PER_DEG_LAT * cos
    return np.asarray(np.hypot(dx, dy), dtype=np.float64)


def _make_sites(rng: np.random.Generator, n: int) -> _Sites:
    pops = np.array([d.population for d in DISTRICTS], dtype=np.float64)
    per_district = _allocate(n, pops)
    district = np.repeat(np.arange(len(DISTRICTS), dtype=np.int64), per_district)
    centre_lat = np.array([d.lat for d in DISTRICTS])[district]
    centre_lon = np.array([d.lon for d in DISTRICTS])[district]
    spread = np.array([d.spread for d in DISTRICTS])[district]
    offsets = np.clip(rng.standard_normal((n, 2)), -2.5, 2.5) * spread[:, None]
    lat = np.round(centre_lat + offsets[:, 0], 5)
    lon = np.round(centre_lon + offsets[:, 1] / np.cos(np.radians(centre_lat)), 5)
    low = np.array([d.capacity_range[0] for d in DISTRICTS])[district]
    high = np.array([d.capacity_range[1] for d in DISTRICTS])[district]
    capacity = rng.integers(low, high + 1).astype(np.int64)
    # Floor area at >= 3 m2 per place, with up to 2.9 m2 to spare: floor(area / 3) == capacity.
    area = np.round(capacity * _M2_PER_CHILD + rng.uniform(0.0, 2.9, n), 1)
    popularity = rng.gamma(4.0, 0.25, n)
    width = max(3, len(str(n - 1)))
    ids = [f"{DISTRICTS[d].code}-{i:0{width}d}" for i, d in enumerate(district.tolist())]
    sub = rng.integers(0, 1 << 30, n)
    names = []
    seen: dict[str, int] = {}
    for d, s in zip(district.tolist(), sub.tolist(), strict=True):
        subs = DISTRICTS[d].subdistricts
        place = subs[s % len(subs)]
        seen[place] = seen.get(place, 0) + 1
        names.append(f"{place} community childcare point {seen[place]}")
    return _Sites(
        ids=ids,
        district=district,
        lat=lat,
        lon=lon,
        capacity=capacity,
        area=area,
        names=names,
        popularity=popularity,
        neighbours=_nearest(lat, lon, min(_NEIGHBOURS, n)),
    )


def _nearest(lat: FloatArray, lon: FloatArray, k: int) -> IntArray:
    """For each site, the ``k`` nearest sites by distance (itself first), in blocks."""
    n = len(lat)
    out = np.empty((n, k), dtype=np.int64)
    block = 512
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        dist = _km(lat[lo:hi, None], lon[lo:hi, None], lat[None, :], lon[None, :])
        dist[np.arange(hi - lo), np.arange(lo, hi)] = -1.0  # itself first, even on ties
        out[lo:hi] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return out


# ---------------------------------------------------------------- sessions


class _Sessions(NamedTuple):
    documents: list[dict[str, Any]]
    ids: list[str]
    kind: IntArray
    morning: BoolArray
    min_months: IntArray
    max_months: IntArray
    capacity: IntArray
    slots: IntArray  # (sites, 2 days, _SLOTS): session index or -1


def _clock(minute: int) -> str:
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _make_sessions(
    rng: np.random.Generator, site_table: _Sites, overlap_rng: np.random.Generator | None = None
) -> _Sessions:
    """Sessions of every site; ``overlap_rng`` (``--overlap``) adds one-hour classes.

    The added classes take their draws from ``overlap_rng`` only, so the other
    sessions are the plain scenario's.
    """
    n_sites = len(site_table.ids)
    n_extra = rng.choice(_MAX_EXTRAS + 1, size=n_sites, p=(0.30, 0.45, 0.20, 0.05))
    catalogue = [(day, t) for day in range(2) for t in range(len(_EXTRAS))]
    pick_u = rng.random((n_sites, len(catalogue)))
    # Uniform numbers drawn in bulk, consumed site by site in a fixed order (<= 6 a session).
    attr_u = rng.random((n_sites, 6 * (4 + _MAX_EXTRAS)))
    class_times = [t for t, (k, _, _) in enumerate(_EXTRAS) if k == 1]
    n_slots = _SLOTS
    if overlap_rng is not None:
        add_u = overlap_rng.random((n_sites, 2, len(class_times)))
        add_attr_u = overlap_rng.random((n_sites, 6 * 2 * len(class_times)))
        n_slots += len(class_times)
    docs: list[dict[str, Any]] = []
    ids: list[str] = []
    kind: list[int] = []
    morning: list[bool] = []
    min_m: list[int] = []
    max_m: list[int] = []
    cap: list[int] = []
    slots = np.full((n_sites, 2, n_slots), -1, dtype=np.int64)
    for s in range(n_sites):
        own_draws = iter(attr_u[s].tolist())
        site_id = site_table.ids[s]
        site_cap = int(site_table.capacity[s])
        picks = np.argsort(pick_u[s], kind="stable")[: int(n_extra[s])]
        templates: list[tuple[int, tuple[int, int, int], bool]] = [
            (d, _AM, False) for d in range(2)
        ]
        templates += [(d, _PM, False) for d in range(2)]
        templates += [(catalogue[p][0], _EXTRAS[catalogue[p][1]], False) for p in picks.tolist()]
        if overlap_rng is not None:
            added_draws = iter(add_attr_u[s].tolist())
            have = {catalogue[p] for p in picks.tolist()}
            templates += [
                (d, _EXTRAS[t], True)
                for d in range(2)
                for j, t in enumerate(class_times)
                if (d, t) not in have and add_u[s, d, j] < _OVERLAP_CLASS_P
            ]
        templates.sort(key=lambda x: (x[0], x[1][1], x[1][0]))
        used = [0, 0]
        for day, (k, start, end), added in templates:
            draws = added_draws if added else own_draws
            date = WEEKEND[day]
            is_am = start < 12 * 60
            doc: dict[str, Any] = {"id": "", "site": site_id}
            doc["start"] = f"{date}T{_clock(start)}:00{_OFFSET}"
            doc["end"] = f"{date}T{_clock(end)}:00{_OFFSET}"
            lo, hi = _SPAN
            course: str | None = None
            if k == 0:
                suffix = "am" if is_am else "pm"
                capacity = site_cap
                # About one caregiver per six places, 2..5; afternoons thinner.
                staff = round(site_cap / 6 + 1.2 * (next(draws) - 0.5))
                if not is_am and next(draws) < 0.3:
                    staff -= 1
                staff = min(5, max(2 if is_am else 1, staff))
                if next(draws) < 0.10:
                    lo = 12  # no infant room
                doc.update(capacity=capacity, caregivers=staff)
                if lo != _SPAN[0]:
                    doc["min_months"] = lo
                if lo < 12 and next(draws) < 0.30:
                    doc["group_caps"] = {"infant": 4 + int(next(draws) * 5)}
            elif k == 1:
                c = int(next(draws) * len(_COURSES))
                course = _COURSES[c]
                suffix = f"class-{start // 60:02d}{start % 60:02d}"
                lo = _COURSE_MIN_MONTHS[c]
                if next(draws) < 0.25:
                    hi = lo + 12
                capacity = min(site_cap, 6 + int(next(draws) * 7))
                staff = 1 + int(next(draws) < 0.5)
                doc.update(capacity=capacity, caregivers=staff, min_months=lo)
                if hi != _SPAN[1]:
                    doc["max_months"] = hi
            else:
                suffix = f"hourly-{start // 60:02d}{start % 60:02d}"
                capacity = min(site_cap, 8 + int(next(draws) * 8))
                staff = 1 + int(next(draws) * 3)
                doc.update(capacity=capacity, caregivers=staff)
                if next(draws) < 0.30:
                    doc["group_caps"] = {"infant": 2 + int(next(draws) * 3)}
            doc["kind"] = _KINDS[k]
            if course is not None:
                doc["course"] = course
            doc["id"] = f"{site_id}/{date}-{suffix}"
            slots[s, day, used[day]] = len(ids)
            used[day] += 1
            docs.append(doc)
            ids.append(doc["id"])
            kind.append(k)
            morning.append(is_am)
            min_m.append(lo)
            max_m.append(hi)
            cap.append(capacity)
    return _Sessions(
        documents=docs,
        ids=ids,
        kind=np.array(kind, dtype=np.int64),
        morning=np.array(morning, dtype=np.bool_),
        min_months=np.array(min_m, dtype=np.int64),
        max_months=np.array(max_m, dtype=np.int64),
        capacity=np.array(cap, dtype=np.int64),
        slots=slots,
    )


# ---------------------------------------------------------------- families and children


class _Families(NamedTuple):
    n: int
    extra: IntArray  # index into _EXTRA_REQUEST_P
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


def _make_families(
    rng: np.random.Generator,
    n_requests: int,
    site_table: _Sites,
    *,
    extra_p: tuple[float, ...] = _EXTRA_REQUEST_P,
    priority_p: tuple[float, ...] = _PRIORITY_P,
) -> _Families:
    # How many requests each family makes; cut so that the total is exact.
    extra = rng.choice(4, size=n_requests, p=extra_p).astype(np.int64)
    per_family = 1 + (extra > 0) + (extra == 3)
    total = np.cumsum(per_family)
    n = int(np.searchsorted(total, n_requests)) + 1
    extra = extra[:n].copy()
    over = int(total[n - 1]) - n_requests
    if over:
        extra[-1] = 1 if (extra[-1] == 3 and over == 1) else 0

    # Home district by population, then a site of it by popularity, then a home nearby.
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
    home_lat = site_table.lat[anchor] + jitter[:, 0] / _KM_PER_DEG_LAT
    home_lon = site_table.lon[anchor] + jitter[:, 1] / (
        _KM_PER_DEG_LAT * np.cos(np.radians(site_table.lat[anchor]))
    )

    # Children: siblings are twins or 10-30 months apart.
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

    local_share = np.array([d.local_share for d in DISTRICTS])[district]
    local = rng.random(n) < local_share
    day = (rng.random(n) >= _SATURDAY_P).astype(np.int64)
    morning = rng.random(n) < _MORNING_P
    kind = rng.choice(3, size=n, p=_KIND_P).astype(np.int64)
    priority = np.asarray(_PRIORITIES, dtype=np.int64)[rng.choice(5, size=n, p=priority_p)]

    # Submission times: a rush after opening, then the rest of the week by hour of day.
    rush = rng.random(n) < _RUSH_P
    rush_s = np.minimum(rng.exponential(_RUSH_MEAN_S, n), 6 * 3600)
    weekday = rng.integers(0, 5, n)
    hour = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
    within = rng.integers(0, 3600, n)
    later_s = weekday * 86400 + (hour - 8) * 3600 + within
    later_s = np.clip(later_s, 0, _WINDOW_S - 1)
    seconds = np.where(rush, rush_s.astype(np.int64), later_s).astype(np.int64)
    # Families are numbered in submission order (file order is first come, first served).
    order = np.argsort(seconds, kind="stable")
    stamps = _OPENING + np.sort(seconds).astype("timedelta64[s]")
    submitted = [f"{t}{_OFFSET}" for t in np.datetime_as_string(stamps, unit="s").tolist()]
    return _Families(
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


# ---------------------------------------------------------------- requests and preferences


class _Requests(NamedTuple):
    family: IntArray
    suffix: IntArray  # 0 "", 1 "b", 2 "c"
    prefs: IntArray  # (requests, 5): session indices, -1 padded

    def documents(self, families: _Families, sessions: _Sessions) -> list[dict[str, Any]]:
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
    on = np.datetime64(date, "D")
    b_month = born.astype("datetime64[M]")
    b_day = (born - b_month).astype(np.int64) + 1
    o_month = on.astype("datetime64[M]")
    o_day = int((on - o_month).astype(np.int64)) + 1
    months = (o_month - b_month).astype(np.int64)
    return np.asarray(months - (o_day < b_day), dtype=np.int64)


def _make_requests(
    rng: np.random.Generator,
    families: _Families,
    site_table: _Sites,
    sessions: _Sessions,
    *,
    same_day_half_p: float = _SAME_DAY_HALF_P,
    same_day_hourly_p: float = _SAME_DAY_HOURLY_P,
) -> _Requests:
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
    km = _km(h_lat, h_lon, site_table.lat[near], site_table.lon[near])
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
        ok = (lo <= age) & (age < hi) & (_SPAN[0] <= age) & (age < _SPAN[1])
        eligible &= ok | ~has[:, None]
    score += _W_INELIGIBLE * ~eligible
    score += rng.gumbel(0.0, _NOISE, size=score.shape)
    score[~valid] = np.inf
    order = np.argsort(score, axis=1, kind="stable")[:, : len(_N_PREFS_P)]
    prefs = np.take_along_axis(cand, order, axis=1)
    n_prefs = np.minimum(n_prefs, valid.sum(axis=1))
    prefs[np.arange(prefs.shape[1])[None, :] >= n_prefs[:, None]] = -1
    return _Requests(family=family, suffix=suffix, prefs=prefs)
