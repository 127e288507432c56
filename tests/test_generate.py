"""Tests of the Xiamen scenario generator (slotalloc.generate)."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter
from types import MappingProxyType

import numpy as np
import pytest

from slotalloc.generate import (
    DISTRICTS,
    SIZES,
    WEEKEND,
    generate_xiamen,
    generate_xiamen_json,
)
from slotalloc.io import parse_instance
from slotalloc.models import Instance

CITY_REQUESTS, CITY_SITES = SIZES["city"]


def _months(born: dt.date, on: dt.date) -> int:
    """FORMAT §1 age in completed months."""
    return (on.year - born.year) * 12 + (on.month - born.month) - (1 if on.day < born.day else 0)


@pytest.fixture(scope="module")
def city_text() -> str:
    return generate_xiamen_json(2025, CITY_REQUESTS, CITY_SITES)


@pytest.fixture(scope="module")
def city(city_text: str) -> Instance:
    return parse_instance(json.loads(city_text))


# ---------------------------------------------------------------- determinism and validity


def test_same_seed_gives_identical_bytes() -> None:
    a = generate_xiamen_json(7, 500, 12)
    b = generate_xiamen_json(7, 500, 12)
    assert a == b
    assert a.encode("utf-8") == b.encode("utf-8")


def test_different_seed_gives_different_text() -> None:
    assert generate_xiamen_json(7, 500, 12) != generate_xiamen_json(8, 500, 12)


def test_json_round_trips_to_the_returned_instance() -> None:
    text = generate_xiamen_json(3, 300, 12, staffing="pooled")
    parsed = parse_instance(json.loads(text))
    direct = generate_xiamen(3, 300, 12, staffing="pooled")
    assert parsed == direct
    assert parsed.policy.staffing == "pooled"
    assert parsed.policy.preset == "cn-2019"
    assert parsed.policy.max_sessions_per_child == 2


def test_does_not_touch_global_random_state() -> None:
    before = repr(np.random.get_state())  # noqa: NPY002 (the legacy global state is the point)
    generate_xiamen(1, 50, 6)
    assert repr(np.random.get_state()) == before  # noqa: NPY002


@pytest.mark.parametrize(
    ("requests", "sites"), [(1, 1), (2, 1), (3, 2), (17, 5), (400, 6), (999, 13)]
)
def test_exact_request_count_and_valid_at_odd_sizes(requests: int, sites: int) -> None:
    inst = parse_instance(json.loads(generate_xiamen_json(11, requests, sites)))
    assert len(inst.requests) == requests
    assert len(inst.sites) == sites


@pytest.mark.parametrize(
    "kwargs",
    [
        {"seed": -1, "requests": 10},
        {"seed": 1, "requests": 0},
        {"seed": 1, "requests": 10, "sites": 0},
        {"seed": 1.5, "requests": 10},
        {"seed": 1, "requests": True},
        {"seed": 1, "requests": 10, "staffing": "shared"},
    ],
)
def test_bad_arguments_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        generate_xiamen(**kwargs)  # type: ignore[arg-type]


def test_sizes_is_a_read_only_mapping() -> None:
    assert isinstance(SIZES, MappingProxyType)
    assert SIZES["city"] == (25000, 91)
    assert set(SIZES) == {"district", "city", "ten-cities"}
    with pytest.raises(TypeError):
        SIZES["huge"] = (1, 1)  # type: ignore[index]


# ---------------------------------------------------------------- the city scenario


def test_city_sizes(city: Instance, city_text: str) -> None:
    assert len(city.requests) == CITY_REQUESTS
    assert len(city.sites) == CITY_SITES
    assert 400 <= len(city.sessions) <= 500
    assert 18_000 <= len(city.children) <= 24_000
    assert len(city_text.encode("utf-8")) <= 6_500_000


def test_ids_follow_the_samples_style(city: Instance) -> None:
    codes = "|".join(d.code for d in DISTRICTS)
    site_re = re.compile(rf"^({codes})-\d{{3}}$")
    assert all(site_re.match(s.id) for s in city.sites)
    session_re = re.compile(
        rf"^({codes})-\d{{3}}/2025-04-(19|20)-(am|pm|class-\d{{4}}|hourly-\d{{4}})$"
    )
    assert all(session_re.match(s.id) for s in city.sessions)
    assert all(s.id.startswith(s.site + "/") for s in city.sessions)
    assert all(re.match(r"^c\d{6}$", c.id) for c in city.children)
    assert all(re.match(r"^r\d{6}[bc]?$", r.id) for r in city.requests)
    assert city.requests[0].id == "r000000"
    assert city.children[0].id == "c000001"


def test_sites_spread_over_districts_by_population(city: Instance) -> None:
    total = sum(d.population for d in DISTRICTS)
    per_district = Counter(s.district for s in city.sites)
    assert set(per_district) == {d.name for d in DISTRICTS}
    for d in DISTRICTS:
        assert abs(per_district[d.name] - CITY_SITES * d.population / total) < 1
    for s in city.sites:
        d = next(x for x in DISTRICTS if x.name == s.district)
        assert s.id.startswith(d.code + "-")
        assert s.lat is not None and s.lon is not None
        assert abs(s.lat - d.lat) <= 2.5 * d.spread + 1e-9
    # Families live near the points of their district: the first choices follow population.
    site_of = {s.id: s.site for s in city.sessions}
    district_of = {s.id: s.district for s in city.sites}
    firsts = Counter(district_of[site_of[r.preferences[0]]] for r in city.requests)
    for d in DISTRICTS:
        assert abs(firsts[d.name] / len(city.requests) - d.population / total) < 0.03


def test_capacity_from_floor_area_and_staffing_bounds(city: Instance) -> None:
    area = {s.id: s.area_m2 for s in city.sites}
    for s in city.sessions:
        a = area[s.site]
        assert a is not None
        assert s.capacity * 3 <= a
        assert 1 <= s.caregivers <= 5
        if s.kind == "half_day":
            assert 10 <= s.capacity <= 30
            assert s.capacity == int(a // 3)
    kinds = Counter(s.kind for s in city.sessions)
    assert kinds["half_day"] == 4 * CITY_SITES
    assert kinds["experience_class"] > 0 and kinds["hourly"] > 0
    assert any(s.group_caps for s in city.sessions)
    classes = [s for s in city.sessions if s.kind == "experience_class"]
    assert {s.course for s in classes} == {
        "picture_book",
        "gross_motor",
        "music_social",
        "sensory_integration",
    }
    assert all(s.min_months is not None and s.min_months >= 12 for s in classes)


def test_sessions_are_on_the_weekend_and_some_overlap_half_days(city: Instance) -> None:
    days = {dt.date.fromisoformat(d) for d in WEEKEND}
    by_site: dict[str, list[tuple[dt.datetime, dt.datetime, str | None]]] = {}
    for s in city.sessions:
        assert s.start.date() in days
        assert s.start.utcoffset() == dt.timedelta(hours=8)
        by_site.setdefault(s.site, []).append((s.start, s.end, s.kind))
    overlapping = 0
    for sessions in by_site.values():
        halves = [(a, b) for a, b, k in sessions if k == "half_day"]
        for a, b, k in sessions:
            if k != "half_day" and any(a < hb and ha < b for ha, hb in halves):
                overlapping += 1
    assert overlapping >= 20


def test_siblings_are_about_ten_percent(city: Instance) -> None:
    sizes = Counter(len(r.children) for r in city.requests)
    share = (len(city.requests) - sizes[1]) / len(city.requests)
    assert 0.07 <= share <= 0.13
    assert sizes[3] > 0
    assert max(sizes) <= 3
    household = {c.id: c.household for c in city.children}
    for r in city.requests:
        assert len({household[c] for c in r.children}) == 1


def test_about_seventy_percent_prefer_mornings(city: Instance) -> None:
    start = {s.id: s.start for s in city.sessions}
    morning = sum(start[r.preferences[0]].hour < 12 for r in city.requests)
    assert 0.65 <= morning / len(city.requests) <= 0.75


def test_mornings_are_oversubscribed(city: Instance) -> None:
    by_id = {s.id: s for s in city.sessions}
    am_places = sum(s.capacity for s in city.sessions if s.start.hour < 12)
    pm_places = sum(s.capacity for s in city.sessions if s.start.hour >= 12)
    am_demand = sum(
        len(r.children) for r in city.requests if by_id[r.preferences[0]].start.hour < 12
    )
    pm_demand = sum(len(r.children) for r in city.requests) - am_demand
    assert am_demand > 3 * am_places
    assert am_demand / am_places > 1.5 * pm_demand / pm_places


def test_ages_mostly_in_range_some_outside(city: Instance) -> None:
    day = dt.date.fromisoformat(WEEKEND[0])
    ages = [_months(c.birth_date, day) for c in city.children]
    assert min(ages) >= 0 and max(ages) <= 40
    outside = sum(a < 6 or a >= 36 for a in ages) / len(ages)
    assert 0.02 <= outside <= 0.09
    assert {c.residency for c in city.children} == {"local", "non_local"}


def test_preferences_distinct_few_and_on_one_day(city: Instance) -> None:
    start = {s.id: s.start.date() for s in city.sessions}
    counts = Counter(len(r.preferences) for r in city.requests)
    assert set(counts) == {1, 2, 3, 4, 5}
    for r in city.requests:
        assert len(set(r.preferences)) == len(r.preferences)
        assert len({start[p] for p in r.preferences}) == 1


def test_priorities_and_submission_times(city: Instance) -> None:
    priorities = Counter(r.priority for r in city.requests)
    assert priorities[0] / len(city.requests) > 0.8
    assert set(priorities) - {0} and all(0 <= p <= 9 for p in priorities)
    opening = dt.datetime(2025, 4, 14, 8, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    close = dt.datetime(2025, 4, 19, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    times = [r.submitted_at for r in city.requests if r.submitted_at is not None]
    assert len(times) == len(city.requests)
    assert all(opening <= t < close for t in times)
    assert times == sorted(times)  # file order is first come, first served


def test_second_requests_repeat_the_children(city: Instance) -> None:
    by_id = {r.id: r for r in city.requests}
    start = {s.id: s.start.date() for s in city.sessions}
    seconds = [r for r in city.requests if r.id[-1] in "bc"]
    assert 0.10 <= len(seconds) / len(city.requests) <= 0.30
    other_day = 0
    for r in seconds:
        first = by_id[r.id[:-1]]
        assert r.children == first.children
        other_day += start[r.preferences[0]] != start[first.preferences[0]]
    assert 0.5 * len(seconds) < other_day < len(seconds)  # mostly the other day, some same day
    per_child = Counter(c for r in city.requests for c in r.children)
    assert max(per_child.values()) == 3  # the per-child cap of 2 binds for a few
