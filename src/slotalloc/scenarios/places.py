"""The Xiamen scenario's places: its districts, childcare points and their sessions.

Part of the generator (:mod:`slotalloc.scenarios.xiamen`, whose docstring and
``docs/generator.md`` describe the scenario). Every function draws from the
generator it is given, in a fixed order, so equal seeds give equal tables.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from slotalloc._typing import IntArray

__all__ = [
    "DISTRICTS",
    "WEEKEND",
    "District",
    "Sessions",
    "Sites",
    "distance_km",
    "make_sessions",
    "make_sites",
]

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

#: The two days of the scenario (Saturday, Sunday); sessions use offset +08:00.
WEEKEND: tuple[str, str] = ("2025-04-19", "2025-04-20")

OFFSET = "+08:00"
_M2_PER_CHILD = 3.0
SPAN = (6, 36)  # the cn-2019 groups' span [6, 36) months
KM_PER_DEG_LAT = 110.57
_NEIGHBOURS = 6  # sites a family considers: the ones nearest to its home area

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
# --overlap: the chance of each missing one-hour class time of a day, per site.
_OVERLAP_CLASS_P = 0.5


# ---------------------------------------------------------------- sites


class Sites(NamedTuple):
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


def distance_km(
    lat1: FloatArray, lon1: FloatArray, lat2: FloatArray, lon2: FloatArray
) -> FloatArray:
    """Equirectangular distance in km (plenty at city scale)."""
    cos = np.cos(np.radians((lat1 + lat2) / 2))
    dy = (lat1 - lat2) * KM_PER_DEG_LAT
    dx = (lon1 - lon2) * KM_PER_DEG_LAT * cos
    return np.asarray(np.hypot(dx, dy), dtype=np.float64)


def make_sites(rng: np.random.Generator, n: int) -> Sites:
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
    return Sites(
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
        dist = distance_km(lat[lo:hi, None], lon[lo:hi, None], lat[None, :], lon[None, :])
        dist[np.arange(hi - lo), np.arange(lo, hi)] = -1.0  # itself first, even on ties
        out[lo:hi] = np.argsort(dist, axis=1, kind="stable")[:, :k]
    return out


# ---------------------------------------------------------------- sessions


class Sessions(NamedTuple):
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


def make_sessions(
    rng: np.random.Generator, site_table: Sites, overlap_rng: np.random.Generator | None = None
) -> Sessions:
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
    kind: list[int] = []
    morning: list[bool] = []
    min_m: list[int] = []
    max_m: list[int] = []
    slots = np.full((n_sites, 2, n_slots), -1, dtype=np.int64)
    for s in range(n_sites):
        own_draws = iter(attr_u[s].tolist())
        picks = np.argsort(pick_u[s], kind="stable")[: int(n_extra[s])].tolist()
        templates: list[tuple[int, tuple[int, int, int], bool]] = [
            (d, _AM, False) for d in range(2)
        ]
        templates += [(d, _PM, False) for d in range(2)]
        templates += [(catalogue[p][0], _EXTRAS[catalogue[p][1]], False) for p in picks]
        if overlap_rng is not None:
            added_draws = iter(add_attr_u[s].tolist())
            have = {catalogue[p] for p in picks}
            templates += [
                (d, _EXTRAS[t], True)
                for d in range(2)
                for j, t in enumerate(class_times)
                if (d, t) not in have and add_u[s, d, j] < _OVERLAP_CLASS_P
            ]
        templates.sort(key=lambda x: (x[0], x[1][1], x[1][0]))
        used = [0, 0]
        for day, template, added in templates:
            draws = added_draws if added else own_draws
            doc, lo, hi = _session_document(
                site_table.ids[s], int(site_table.capacity[s]), day, template, draws
            )
            slots[s, day, used[day]] = len(docs)
            used[day] += 1
            docs.append(doc)
            kind.append(template[0])
            morning.append(template[1] < 12 * 60)
            min_m.append(lo)
            max_m.append(hi)
    return Sessions(
        documents=docs,
        ids=[d["id"] for d in docs],
        kind=np.array(kind, dtype=np.int64),
        morning=np.array(morning, dtype=np.bool_),
        min_months=np.array(min_m, dtype=np.int64),
        max_months=np.array(max_m, dtype=np.int64),
        capacity=np.array([d["capacity"] for d in docs], dtype=np.int64),
        slots=slots,
    )


def _session_document(
    site_id: str,
    site_cap: int,
    day: int,
    template: tuple[int, int, int],
    draws: Iterator[float],
) -> tuple[dict[str, Any], int, int]:
    """One session of a site from its template (kind, start, end minute), and its age range.

    Takes its uniform numbers from ``draws``, in a fixed order per kind.
    """
    k, start, end = template
    date = WEEKEND[day]
    is_am = start < 12 * 60
    doc: dict[str, Any] = {"id": "", "site": site_id}
    doc["start"] = f"{date}T{_clock(start)}:00{OFFSET}"
    doc["end"] = f"{date}T{_clock(end)}:00{OFFSET}"
    lo, hi = SPAN
    course: str | None = None
    if k == 0:
        suffix = "am" if is_am else "pm"
        # About one caregiver per six places, 2..5; afternoons thinner.
        staff = round(site_cap / 6 + 1.2 * (next(draws) - 0.5))
        if not is_am and next(draws) < 0.3:
            staff -= 1
        staff = min(5, max(2 if is_am else 1, staff))
        if next(draws) < 0.10:
            lo = 12  # no infant room
        doc.update(capacity=site_cap, caregivers=staff)
        if lo != SPAN[0]:
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
        if hi != SPAN[1]:
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
    return doc, lo, hi
