"""Tests of the Xiamen scenario generator (slotalloc.scenarios.xiamen)."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import importlib
import json
import math
import re
from collections import Counter
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest

from slotalloc import solve
from slotalloc.cli import main
from slotalloc.compile import compile_instance
from slotalloc.io import parse_instance
from slotalloc.models import Instance
from slotalloc.scenarios.xiamen import (
    DISTRICTS,
    SIZES,
    WEEKEND,
    Variant,
    generate_xiamen,
    generate_xiamen_document,
    generate_xiamen_json,
)
from slotalloc.solver.infeasibility import locked_conflicts
from slotalloc.verify import verify

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


# ---------------------------------------------------------------- scenario variants

# sha256 of generate_xiamen_json(seed, requests, sites), computed with the generator as it
# was before the variants were added: the plain scenario must never change.
PLAIN_SHA256 = {
    (1, 400, 4): "ad089d2fe24d3fd1dfa5debe061287a323c71b303c128c4daeda587c14a2438a",
    (3, 3000, 12): "ee7f415834572545b8f07d0d0e958ddd985ea145a84e17ba8c6d41c748135f41",
    (11, 600, 5): "66a9d127a731c8ff80a70c96c5704e64e478c2ea6e7c2d365c3613dadabd7a4e",
    (2, 1, 1): "c037d71c4966a4df5a2a710781c88a2ff5332b4b42df9c7db6e23aa9519cb5a8",
}
BASE = (5, 400, 4)  # seed, requests, sites of the variant tests


def _doc(**kwargs: object) -> dict[str, Any]:
    return json.loads(generate_xiamen_json(*BASE, **kwargs))  # type: ignore[arg-type]


def _half_up(share: float, n: int) -> int:
    return math.floor(share * n + 0.5)


@pytest.mark.parametrize(("seed", "requests", "sites"), sorted(PLAIN_SHA256))
def test_plain_scenario_is_byte_identical_to_before_the_variants(
    seed: int, requests: int, sites: int
) -> None:
    text = generate_xiamen_json(seed, requests, sites)
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == PLAIN_SHA256[seed, requests, sites]


def test_explicit_default_variant_is_the_plain_scenario() -> None:
    explicit = generate_xiamen_json(
        1,
        400,
        4,
        staffing="per_group",
        bookings=0.0,
        bookings_from="plan",
        locked=0.0,
        cut=0,
        overlap=False,
        tight=False,
        priorities="default",
    )
    assert explicit == generate_xiamen_json(1, 400, 4)
    assert generate_xiamen_document(1, 400, 4) == json.loads(explicit)
    assert "bookings" not in json.loads(explicit)


def test_variant_with_bookings_locked_and_cut_gives_identical_bytes() -> None:
    kwargs: dict[str, Any] = {"bookings": 0.6, "locked": 0.3, "cut": 3, "tight": True}
    a = generate_xiamen_json(*BASE, **kwargs)
    b = generate_xiamen_json(*BASE, **kwargs)
    assert a.encode("utf-8") == b.encode("utf-8")
    name = json.loads(a)["name"]
    assert name == "xiamen-weekend-2025-04-19-seed5-400r-4s-b0.6fcfs-l0.3-cut3-tight"
    assert generate_xiamen_json(6, 400, 4, **kwargs) != a


def test_variant_names() -> None:
    assert Variant().suffix == ""
    v = Variant(
        staffing="pooled",
        bookings=0.2,
        bookings_from="plan",
        locked=0.1,
        cut=4,
        overlap=True,
        tight=True,
        priorities="mix",
    )
    assert v.suffix == "-b0.2plan-l0.1-cut4-pooled-overlap-tight-prio-mix"
    assert _doc(priorities="mix")["name"].endswith("-4s-prio-mix")


def test_bookings_are_a_seeded_share_of_the_fcfs_placements() -> None:
    plain = generate_xiamen(*BASE)
    placed = [(a.request, a.session) for a in solve(plain, method="fcfs").assignments]
    inst = generate_xiamen(*BASE, bookings=0.3)
    got = [(b.request, b.session) for b in inst.bookings]
    assert len(got) == _half_up(0.3, len(placed)) > 20
    position = {p: i for i, p in enumerate(placed)}
    assert all(g in position for g in got)
    assert [position[g] for g in got] == sorted(position[g] for g in got)  # plan order
    assert not any(b.locked for b in inst.bookings)
    # Everything but the bookings (and the name) is the plain instance.
    assert inst.model_copy(update={"bookings": (), "name": plain.name}) == plain
    everything = generate_xiamen(*BASE, bookings=1.0)
    assert [(b.request, b.session) for b in everything.bookings] == placed
    assert generate_xiamen(*BASE, bookings=0.3) == inst


def test_bookings_from_plan_take_the_batch_plans_placements(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    solve_module = importlib.import_module("slotalloc.solve")
    real = solve_module.solve
    calls: list[dict[str, Any]] = []

    def quick(instance: Instance, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real(instance, **{**kwargs, "time_limit": 0.3})  # keep the test fast

    monkeypatch.setattr(solve_module, "solve", quick)
    inst = generate_xiamen(3, 200, 2, bookings=0.5, bookings_from="plan", locked=0.2)
    assert calls == [{"time_limit": 2.0, "deterministic": True, "seed": 3}]
    plain = generate_xiamen(3, 200, 2)
    plan = real(plain, time_limit=0.3, deterministic=True, seed=3)
    placed = {(a.request, a.session) for a in plan.assignments}
    got = {(b.request, b.session) for b in inst.bookings}
    assert got <= placed
    assert len(got) == _half_up(0.5, len(placed))
    assert inst.name is not None and inst.name.endswith("-b0.5plan-l0.2")


def test_locked_is_a_seeded_share_of_the_bookings() -> None:
    inst = generate_xiamen(*BASE, bookings=0.5, locked=0.25)
    n_locked = sum(b.locked for b in inst.bookings)
    assert n_locked == _half_up(0.25, len(inst.bookings)) > 5
    unlocked = generate_xiamen(*BASE, bookings=0.5)
    assert [(b.request, b.session) for b in inst.bookings] == [
        (b.request, b.session) for b in unlocked.bookings
    ]
    assert locked_conflicts(compile_instance(inst)) == ()
    everything = generate_xiamen(*BASE, bookings=0.5, locked=1.0)
    assert all(b.locked for b in everything.bookings)


def _booked_children(doc: dict[str, Any]) -> Counter[str]:
    size = {r["id"]: len(r["children"]) for r in doc["requests"]}
    out: Counter[str] = Counter()
    for b in doc["bookings"]:
        out[b["session"]] += size[b["request"]]
    return out


@pytest.mark.parametrize(("bookings", "locked", "cut"), [(0.6, 0.3, 4), (1.0, 1.0, 6)])
def test_cut_removes_one_caregiver_at_the_most_booked_sessions(
    bookings: float, locked: float, cut: int
) -> None:
    before = _doc(bookings=bookings, locked=locked)
    after = _doc(bookings=bookings, locked=locked, cut=cut)
    assert after["bookings"] == before["bookings"]
    old = {s["id"]: s["caregivers"] for s in before["sessions"]}
    new = {s["id"]: s["caregivers"] for s in after["sessions"]}
    changed = [sid for sid in old if new[sid] != old[sid]]
    assert all(new[sid] == old[sid] - 1 for sid in changed)
    # The cut sessions are the most booked ones, except those whose locked bookings
    # need every caregiver (skipped); fewer than asked only when too few qualify.
    booked = _booked_children(before)
    ranked = sorted((s for s in booked if old[s] >= 1), key=lambda s: (-booked[s], s))
    assert 1 <= len(changed) <= cut
    last = max(ranked.index(s) for s in changed) if len(changed) == cut else len(ranked)
    skipped = [s for s in ranked[:last] if s not in changed]
    for sid in skipped:
        trial = json.loads(json.dumps(before))
        next(s for s in trial["sessions"] if s["id"] == sid)["caregivers"] -= 1
        assert locked_conflicts(compile_instance(parse_instance(trial))) != ()
    inst = parse_instance(after)
    assert locked_conflicts(compile_instance(inst)) == ()
    assert set(changed) | set(skipped) == set(ranked[: last + 1])
    if locked < 1.0:
        assert len(changed) == cut
    else:
        assert skipped  # with every booking locked, full sessions are skipped
    res = solve(inst, method="fcfs")
    assert verify(inst, res.to_solution()).accepted


def test_pooled_staffing_variant() -> None:
    doc = _doc(staffing="pooled", bookings=0.2, locked=0.1)
    assert doc["policy"]["staffing"] == "pooled"
    assert doc["name"].endswith("-b0.2fcfs-l0.1-pooled")
    plain = _doc()
    assert doc["sessions"] == plain["sessions"] and doc["requests"] == plain["requests"]


def test_tight_scales_caregivers_to_about_sixty_percent() -> None:
    plain = _doc()
    tight = _doc(tight=True)
    assert tight["name"].endswith("-tight")
    assert len(tight["sessions"]) == len(plain["sessions"])
    for p, t in zip(plain["sessions"], tight["sessions"], strict=True):
        assert {**t, "caregivers": p["caregivers"]} == p
        assert 1 <= t["caregivers"] <= math.ceil(0.6 * p["caregivers"])
        assert t["caregivers"] == max(1, math.floor(0.6 * p["caregivers"] + 0.5))
    assert sum(s["caregivers"] for s in tight["sessions"]) <= 0.65 * sum(
        s["caregivers"] for s in plain["sessions"]
    )
    assert tight["requests"] == plain["requests"]
    served = {
        name: len(solve(parse_instance(d), method="fcfs").assignments)
        for name, d in (("plain", plain), ("tight", tight))
    }
    assert served["tight"] < 0.8 * served["plain"]


def test_priority_mix() -> None:
    plain = _doc()
    mix = _doc(priorities="mix")
    n = len(mix["requests"])
    share = Counter(r.get("priority", 0) for r in mix["requests"])
    assert set(share) == {0, 1, 3, 5, 9}
    assert abs(share[0] / n - 0.6) < 0.08
    assert all(abs(share[p] / n - 0.1) < 0.05 for p in (1, 3, 5, 9))
    plain_share = Counter(r.get("priority", 0) for r in plain["requests"])
    assert plain_share[0] / n > 0.8
    # Only the priorities change: same requests, preferences and children.
    strip = [{k: v for k, v in r.items() if k != "priority"} for r in mix["requests"]]
    assert strip == [{k: v for k, v in r.items() if k != "priority"} for r in plain["requests"]]


def _overlapping_pairs(inst: Instance) -> int:
    """Pairs (session of one request, session of another) sharing a child and overlapping."""
    by_id = {s.id: s for s in inst.sessions}
    requests_of: dict[str, list[Any]] = {}
    for r in inst.requests:
        for c in r.children:
            requests_of.setdefault(c, []).append(r)
    n = 0
    for rs in requests_of.values():
        for i, a in enumerate(rs):
            for b in rs[i + 1 :]:
                for p in a.preferences:
                    for q in b.preferences:
                        s, t = by_id[p], by_id[q]
                        n += s.start < t.end and t.start < s.end
    return n


def test_overlap_adds_classes_and_overlapping_choices() -> None:
    plain = generate_xiamen(*BASE)
    over = generate_xiamen(*BASE, overlap=True)
    assert over.name is not None and over.name.endswith("-overlap")
    kinds = Counter(s.kind for s in over.sessions)
    plain_kinds = Counter(s.kind for s in plain.sessions)
    assert kinds["experience_class"] >= plain_kinds["experience_class"] + 2 * BASE[2]
    assert kinds["half_day"] == plain_kinds["half_day"]
    plain_ids = {s.id for s in plain.sessions}
    by_id = {s.id: s for s in over.sessions}
    assert all(by_id[s.id] == s for s in plain.sessions)  # the plain sessions are all kept
    halves = [s for s in over.sessions if s.kind == "half_day"]
    for s in (s for s in over.sessions if s.id not in plain_ids):
        assert s.kind == "experience_class" and s.end - s.start == dt.timedelta(hours=1)
        assert any(h.site == s.site and h.start < s.end and s.start < h.end for h in halves)
    assert _overlapping_pairs(over) > 3 * _overlapping_pairs(plain)
    same_day = sum(r.id.endswith(("b", "c")) for r in over.requests)
    assert same_day > 1.3 * sum(r.id.endswith(("b", "c")) for r in plain.requests)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"bookings": -0.1},
        {"bookings": 1.5},
        {"bookings": float("nan")},
        {"bookings": True},
        {"bookings": "0.2"},
        {"bookings": 0.2, "locked": 1.01},
        {"locked": 0.5},
        {"cut": 2},
        {"bookings": 0.2, "cut": -1},
        {"bookings": 0.2, "cut": 1.5},
        {"bookings": 0.2, "bookings_from": "random"},
        {"priorities": "heavy"},
        {"overlap": 1},
        {"staffing": "shared", "bookings": 0.2},
    ],
)
def test_bad_variant_values_are_refused_in_one_sentence(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as info:
        generate_xiamen_json(*BASE, **kwargs)
    message = str(info.value)
    assert "\n" not in message and message.count(". ") == 0


def test_cli_generate_variant(tmp_path: Path) -> None:
    out = tmp_path / "v.json"
    args = ["generate", "xiamen", "--seed", "5", "--requests", "400", "--sites", "4"]
    flags = ["--bookings", "0.6", "--locked", "0.3", "--cut", "3", "--tight", "--overlap"]
    flags += ["--staffing", "pooled", "--priorities", "mix"]
    assert main([*args, *flags, "-o", str(out)]) == 0
    expected = generate_xiamen_json(
        *BASE,
        staffing="pooled",
        bookings=0.6,
        locked=0.3,
        cut=3,
        overlap=True,
        tight=True,
        priorities="mix",
    )
    assert out.read_text(encoding="utf-8") == expected
    plain = tmp_path / "plain.json"
    assert main(["generate", "xiamen", "--seed", "1", "--requests", "400", "--sites", "4",
                 "-o", str(plain)]) == 0  # fmt: skip
    assert hashlib.sha256(plain.read_bytes()).hexdigest() == PLAIN_SHA256[1, 400, 4]


@pytest.mark.parametrize(
    "flags", [["--cut", "2"], ["--bookings", "1.5"], ["--bookings", "0.2", "--cut", "-1"]]
)
def test_cli_generate_bad_variant_exits_2_with_one_line(
    tmp_path: Path, flags: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "v.json"
    args = ["generate", "xiamen", "--seed", "5", "--requests", "400", "--sites", "4"]
    assert main([*args, *flags, "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("slotalloc generate: ") and err.count("\n") == 1
    assert "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("module", ["xiamen", "places", "families", "variants"])
def test_generator_modules_import_no_solver(module: str) -> None:
    gen = importlib.import_module(f"slotalloc.scenarios.{module}")
    tree = ast.parse(Path(str(gen.__file__)).read_text(encoding="utf-8"))
    top = {
        alias.name if isinstance(node, ast.Import) else node.module
        for node in tree.body
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    assert not {m for m in top if m and m.startswith(("slotalloc.solve", "ortools"))}
