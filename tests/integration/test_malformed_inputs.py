"""Bad input: one clear line naming file, place and problem; exit 2; nothing written."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from slotalloc.cli import main
from slotalloc.exceptions import InputError
from slotalloc.io import load_instance

BASE: dict[str, Any] = {
    "format": "slotalloc.instance/1",
    "name": "tiny",
    "policy": {"preset": "cn-2019", "staffing": "per_group", "max_sessions_per_child": 2},
    "sites": [{"id": "A", "district": "Siming"}],
    "sessions": [
        {
            "id": "A/am",
            "site": "A",
            "start": "2025-04-19T08:30:00+08:00",
            "end": "2025-04-19T12:00:00+08:00",
            "capacity": 10,
            "caregivers": 2,
        },
        {
            "id": "A/pm",
            "site": "A",
            "start": "2025-04-19T14:30:00+08:00",
            "end": "2025-04-19T17:30:00+08:00",
            "capacity": 10,
            "caregivers": 2,
        },
    ],
    "children": [
        {"id": "c1", "birth_date": "2023-05-02"},
        {"id": "c2", "birth_date": "2024-01-31"},
    ],
    "requests": [
        {"id": "r1", "children": ["c1"], "preferences": ["A/am", "A/pm"]},
        {"id": "r2", "children": ["c2"], "preferences": ["A/pm"], "priority": 3},
    ],
    "bookings": [{"request": "r1", "session": "A/am", "locked": False}],
}

Edit = Callable[[dict[str, Any]], None]


def _set(path: str, value: Any) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split("/")
        node: Any = d
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return edit


def _append(key: str, value: Any) -> Edit:
    return lambda d: d[key].append(value)


def _delete(path: str) -> Edit:
    def edit(d: dict[str, Any]) -> None:
        *head, last = path.split("/")
        node: Any = d
        for part in head:
            node = node[int(part)] if part.isdigit() else node[part]
        del node[last]

    return edit


SESSION_C = {
    "id": "A/x",
    "site": "A",
    "start": "2025-04-19T08:30:00+08:00",
    "end": "2025-04-19T09:30:00+08:00",
    "capacity": 1,
    "caregivers": 1,
}

# (name, edit, expected location fragment, expected problem fragment)
CASES: list[tuple[str, Edit, str, str]] = [
    ("unknown top key", _set("colour", "red"), "", "unknown key 'colour'"),
    (
        "unknown session key",
        _set("sessions/0/room", 3),
        "sessions[0] (id 'A/am')",
        "unknown key 'room'",
    ),
    ("wrong format", _set("format", "slotalloc.instance/2"), "format", "slotalloc.instance/1"),
    ("missing sessions", _delete("sessions"), "", "required key 'sessions' is missing"),
    (
        "capacity as string",
        _set("sessions/0/capacity", "10"),
        "sessions[0] (id 'A/am').capacity",
        "valid integer",
    ),
    (
        "capacity as float",
        _set("sessions/0/capacity", 10.0),
        "sessions[0] (id 'A/am').capacity",
        "valid integer",
    ),
    (
        "caregivers as bool",
        _set("sessions/1/caregivers", True),
        "sessions[1] (id 'A/pm').caregivers",
        "valid integer",
    ),
    (
        "negative capacity",
        _set("sessions/0/capacity", -1),
        "sessions[0] (id 'A/am').capacity",
        "greater than or equal to 0",
    ),
    (
        "negative caregivers",
        _set("sessions/0/caregivers", -2),
        "sessions[0] (id 'A/am').caregivers",
        "greater than or equal to 0",
    ),
    (
        "start equals end",
        _set("sessions/0/end", "2025-04-19T08:30:00+08:00"),
        "sessions[0] (id 'A/am')",
        "start >= end",
    ),
    (
        "start after end across offsets",
        _set("sessions/0/end", "2025-04-19T00:15:00Z"),
        "sessions[0] (id 'A/am')",
        "start >= end",
    ),
    (
        "timestamp without offset",
        _set("sessions/0/start", "2025-04-19T08:30:00"),
        "sessions[0] (id 'A/am').start",
        "RFC 3339",
    ),
    (
        "bad birth date",
        _set("children/0/birth_date", "2023-02-30"),
        "children[0] (id 'c1').birth_date",
        "not a calendar date",
    ),
    (
        "birth date as number",
        _set("children/0/birth_date", 20230502),
        "children[0] (id 'c1').birth_date",
        "valid date",
    ),
    (
        "duplicate child id",
        _append("children", {"id": "c1", "birth_date": "2023-01-01"}),
        "children[2] (id 'c1')",
        "duplicate id 'c1'",
    ),
    (
        "duplicate session id",
        _append("sessions", dict(SESSION_C, id="A/am")),
        "sessions[2] (id 'A/am')",
        "duplicate id 'A/am'",
    ),
    (
        "duplicate request id",
        _append("requests", {"id": "r1", "children": ["c2"], "preferences": ["A/am"]}),
        "requests[2] (id 'r1')",
        "duplicate id 'r1'",
    ),
    (
        "unknown site",
        _append("sessions", dict(SESSION_C, site="Z")),
        "sessions[2] (id 'A/x')",
        "unknown site 'Z'",
    ),
    (
        "unknown child in request",
        _set("requests/0/children", ["c9"]),
        "requests[0] (id 'r1')",
        "unknown child 'c9'",
    ),
    (
        "unknown session in request",
        _set("requests/0/preferences", ["A/am", "B/am"]),
        "requests[0] (id 'r1')",
        "unknown session 'B/am'",
    ),
    (
        "preferences not distinct",
        _set("requests/1/preferences", ["A/pm", "A/pm"]),
        "requests[1] (id 'r2').preferences",
        "not distinct",
    ),
    (
        "eleven preferences",
        _set("requests/1/preferences", [f"s{i}" for i in range(11)]),
        "requests[1] (id 'r2').preferences",
        "11 preferences given",
    ),
    (
        "no preferences",
        _set("requests/1/preferences", []),
        "requests[1] (id 'r2').preferences",
        "0 preferences given",
    ),
    (
        "children not distinct",
        _set("requests/1/children", ["c2", "c2"]),
        "requests[1] (id 'r2').children",
        "not distinct",
    ),
    (
        "no children",
        _set("requests/1/children", []),
        "requests[1] (id 'r2').children",
        "at least one child",
    ),
    (
        "priority ten",
        _set("requests/1/priority", 10),
        "requests[1] (id 'r2').priority",
        "less than or equal to 9",
    ),
    (
        "priority negative",
        _set("requests/1/priority", -1),
        "requests[1] (id 'r2').priority",
        "greater than or equal to 0",
    ),
    (
        "booking not a preference",
        _set("bookings/0/session", "A/x"),
        "bookings[0]",
        "not one of the request's preferences",
    ),
    (
        "booking of unknown request",
        _set("bookings/0/request", "r9"),
        "bookings[0]",
        "unknown request 'r9'",
    ),
    (
        "two bookings for one request",
        _append("bookings", {"request": "r1", "session": "A/pm"}),
        "bookings[1]",
        "a second booking for 'r1'",
    ),
    ("locked as number", _set("bookings/0/locked", 1), "bookings[0].locked", "valid boolean"),
    ("id too long", _set("children/1/id", "c" * 65), "children[1]", "at most 64 characters"),
    ("empty id", _set("sites/0/id", ""), "sites[0]", "at least 1 character"),
    (
        "both preset and groups",
        _set(
            "policy/age_groups",
            [{"name": "all", "min_months": 0, "max_months": 36, "ratio": 5, "max_group_size": 10}],
        ),
        "policy",
        "exactly one of preset and age_groups",
    ),
    (
        "neither preset nor groups",
        _set("policy/preset", None),
        "policy",
        "exactly one of preset and age_groups",
    ),
    ("unknown preset", _set("policy/preset", "us-2020"), "policy.preset", "unknown preset"),
    (
        "empty age groups",
        lambda d: d.update(policy={"age_groups": []}),
        "policy.age_groups",
        "at least one group",
    ),
    (
        "overlapping age groups",
        lambda d: d.update(
            policy={
                "age_groups": [
                    {
                        "name": "a",
                        "min_months": 0,
                        "max_months": 13,
                        "ratio": 3,
                        "max_group_size": 10,
                    },
                    {
                        "name": "b",
                        "min_months": 12,
                        "max_months": 36,
                        "ratio": 5,
                        "max_group_size": 10,
                    },
                ]
            }
        ),
        "policy.age_groups",
        "overlap",
    ),
    (
        "empty age group range",
        lambda d: d.update(
            policy={
                "age_groups": [
                    {
                        "name": "a",
                        "min_months": 12,
                        "max_months": 12,
                        "ratio": 3,
                        "max_group_size": 10,
                    }
                ]
            }
        ),
        "policy.age_groups[0]",
        "min_months 12 >= max_months 12",
    ),
    (
        "unknown group cap",
        _set("sessions/0/group_caps", {"baby": 3}),
        "sessions[0] (id 'A/am')",
        "unknown age group 'baby'",
    ),
    (
        "session min above max",
        _set("sessions/0/min_months", 40),
        "sessions[0] (id 'A/am')",
        "min_months 40 >= max_months 36",
    ),
    ("staffing unknown", _set("policy/staffing", "shared"), "policy.staffing", "per_group"),
    (
        "per-child cap zero",
        _set("policy/max_sessions_per_child", 0),
        "policy.max_sessions_per_child",
        "greater than or equal to 1",
    ),
    (
        "negative objective weight",
        _set("objective", {"serve": -1}),
        "objective.serve",
        "greater than or equal to 0",
    ),
    ("area zero", _set("sites/0/area_m2", 0), "sites[0] (id 'A').area_m2", "greater than 0"),
    (
        "capacity over the count bound",
        _set("sessions/0/capacity", 1_000_001),
        "sessions[0] (id 'A/am').capacity",
        "less than or equal to 1000000",
    ),
    (
        "objective weight over its bound",
        _set("objective", {"drop": 1_000_000_001}),
        "objective.drop",
        "less than or equal to 1000000000",
    ),
    (
        "control character in an id",
        _set("children/1/id", "c\x1b[31m"),
        "children[1]",
        "an id must not hold a control character (U+001B)",
    ),
    (
        "misspelt optional key",
        _set("requests/1/prority", 3),
        "requests[1] (id 'r2')",
        "unknown key 'prority' (did you mean 'priority'?)",
    ),
]


def _write(tmp_path: Path, doc: Any, name: str = "inst.json") -> Path:
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


def test_base_instance_is_valid(tmp_path: Path) -> None:
    inst = load_instance(_write(tmp_path, BASE))
    assert len(inst.requests) == 2


@pytest.mark.parametrize(("name", "edit", "where", "problem"), CASES, ids=[c[0] for c in CASES])
def test_malformed_instance_is_refused_with_its_place_and_problem(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    edit: Edit,
    where: str,
    problem: str,
) -> None:
    doc = copy.deepcopy(BASE)
    edit(doc)
    path = _write(tmp_path, doc)
    with pytest.raises(InputError) as info:
        load_instance(path)
    assert info.value.source == str(path)
    assert where in info.value.location
    assert problem in info.value.problem

    out = tmp_path / "out.json"
    status = main(["solve", str(path), "-o", str(out), "--quiet", "--method", "fcfs"])
    err = capsys.readouterr().err
    assert status == 2
    assert not out.exists()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(str(path))
    assert problem in lines[0]
    assert "Traceback" not in err


def test_there_are_at_least_twenty_distinct_malformed_cases() -> None:
    assert len({c[3] for c in CASES}) >= 20


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (b"{not json", "Not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"\xff\xfe{}", "Not UTF-8"),
        (
            b'{"format": "slotalloc.instance/1", "sessions": [], "children": [], "requests": [],'
            b' "name": NaN}',
            "NaN is not a JSON number",
        ),
    ],
)
def test_unreadable_files_get_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes, problem: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    out = tmp_path / "out.json"
    assert main(["solve", str(path), "-o", str(out), "--quiet", "--method", "fcfs"]) == 2
    err = capsys.readouterr().err
    assert problem in err and str(path) in err and "Traceback" not in err
    assert not out.exists()


def test_missing_file_gets_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["solve", str(tmp_path / "none.json"), "-o", str(tmp_path / "o.json")]) == 2
    assert "No such file" in capsys.readouterr().err


def test_existing_output_is_not_touched_on_bad_input(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    out.write_text("precious", encoding="utf-8")
    doc = copy.deepcopy(BASE)
    doc["sessions"][0]["capacity"] = "ten"
    assert main(["solve", str(_write(tmp_path, doc)), "-o", str(out), "--quiet"]) == 2
    assert out.read_text(encoding="utf-8") == "precious"


def test_explicit_null_means_absent(tmp_path: Path) -> None:
    doc = copy.deepcopy(BASE)
    doc["requests"][0]["priority"] = None
    doc["bookings"][0]["locked"] = None
    doc["policy"]["staffing"] = None
    doc["objective"] = None
    doc["sites"][0]["name"] = None
    inst = load_instance(_write(tmp_path, doc))
    assert inst.requests[0].priority == 0
    assert inst.bookings[0].locked is False
    assert inst.policy.staffing == "per_group"
    assert inst.objective.drop == 100000
