"""Replay of event lines: exact decision keys, malformed lines, the fast line check."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import sample_instance
from reference_online import reference_replay
from slotalloc.exceptions import InvalidStateError
from slotalloc.io import parse_event
from slotalloc.models import BookEvent, Instance
from slotalloc.online import replay
from slotalloc.online.replay import _DECODER, _fast_book

BOOK_KEYS = ["event", "request", "session", "waitlisted"]
CANCEL_KEYS = ["event", "request", "cancelled", "promoted"]


def _valid_book() -> dict[str, Any]:
    return {
        "op": "book",
        "request": {
            "id": "r-new",
            "children": ["k1", "k2"],
            "preferences": ["JI-001/2025-04-19-am", "XI-000/2025-04-19-am"],
            "priority": 3,
            "submitted_at": "2025-04-14T20:01:07+08:00",
        },
        "children": [
            {"id": "k1", "birth_date": "2024-01-30", "residency": "local", "household": "h"},
            {"id": "k2", "birth_date": "2023-03-31"},
        ],
    }


BAD_VALUES = [
    None, "", "x" * 65, "1", 1, 1.0, -1, 10, True, [], {}, ["a", "a"], ["a"] * 11,
    [1], "2024-02-30", "2024-1-01", "2025-04-14T20:01:07", "2025-04-14 20:01:07+08:00",
    "2025-13-14T20:01:07Z", float("nan"),
]  # fmt: skip
PATHS = [
    ("op",), ("request",), ("children",), ("extra",),
    ("request", "id"), ("request", "children"), ("request", "preferences"),
    ("request", "priority"), ("request", "submitted_at"), ("request", "extra"),
    ("children", 0), ("children", 0, "id"), ("children", 0, "birth_date"),
    ("children", 0, "residency"), ("children", 1, "household"), ("children", 1, "extra"),
]  # fmt: skip


@st.composite
def mutated_lines(draw: st.DrawFn) -> str:
    event = _valid_book()
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(PATHS))
        node: Any = event
        for key in path[:-1]:
            in_dict = isinstance(node, dict) and key in node
            in_list = isinstance(node, list) and isinstance(key, int) and key < len(node)
            if in_dict or in_list:
                node = node[key]
            else:
                node = None
                break
        last = path[-1]
        if isinstance(node, dict) and isinstance(last, str):
            if draw(st.booleans()):
                node.pop(last, None)
            else:
                node[last] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = copy.deepcopy(draw(st.sampled_from(BAD_VALUES)))
    return json.dumps(event)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_lines())
def test_fast_check_is_never_looser_than_the_models(line: str) -> None:
    raw = _DECODER.decode(line) if "NaN" not in line else None
    parts = _fast_book(raw) if isinstance(raw, dict) and raw.get("op") == "book" else None
    try:
        event = parse_event(line)
    except ValueError:
        assert parts is None, f"fast check accepted a line the models refuse: {line}"
        return
    assert isinstance(event, BookEvent)
    if parts is not None:
        rid, kids, prefs, declared, priority, _ = parts
        assert (rid, tuple(kids), tuple(prefs), priority) == (
            event.request.id,
            event.request.children,
            event.request.preferences,
            event.request.priority,
        )
        assert [(c, b) for c, b, _ in declared] == [
            (c.id, c.birth_date) for c in event.children or ()
        ]


def test_the_valid_line_takes_the_fast_path() -> None:
    assert _fast_book(_valid_book()) is not None


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(mutated_lines(), min_size=1, max_size=6))
def test_every_malformed_line_is_one_error_decision(lines: list[str]) -> None:
    inst = sample_instance("sample-events")
    got = list(replay(inst, lines))
    ref = list(reference_replay(inst, lines))
    assert len(got) == len(lines)
    for a, b in zip(got, ref, strict=True):
        if "error" in b:
            assert list(a) == ["event", "error"] and a["error"]
        else:
            assert a == b


def test_malformed_lines_and_blank_lines() -> None:
    inst = sample_instance("sample-events")
    known = inst.children[0].id
    session = inst.sessions[0].id
    ok = json.dumps(
        {"op": "book", "request": {"id": "n1", "children": [known], "preferences": [session]}}
    )
    lines = [
        "not json",
        "   ",
        "[1, 2]",
        '{"op": "book", "request": {"id": "n2", "children": ["k"], "preferences": [NaN]}}',
        '{"op": "cancel", "request": "n1", "extra": 1}',
        '{"op": "cancel", "request": 5}',
        '{"op": "launch"}',
        "",
        ok,
        ok,  # the id was used
        '{"op": "cancel", "request": "n1"}',
        '{"op": "cancel", "request": "n1"}',  # already cancelled
        json.dumps(
            {
                "op": "book",
                "request": {"id": "n3", "children": [known], "preferences": [session]},
                "children": None,
            }
        ),
    ]
    got = list(replay(inst, lines))
    assert [d["event"] for d in got] == list(range(11))
    kinds = ["error" if "error" in d else "cancel" if "cancelled" in d else "book" for d in got]
    assert kinds == ["error"] * 6 + ["book", "error", "cancel", "error", "book"]
    for d in got:
        if "error" in d:
            assert list(d) == ["event", "error"] and isinstance(d["error"], str)
        elif "cancelled" in d:
            assert list(d) == CANCEL_KEYS and d["cancelled"] is True
        else:
            assert list(d) == BOOK_KEYS


def test_invalid_starting_bookings_fail_before_any_decision() -> None:
    inst = sample_instance("sample-events")
    fields = {name: getattr(inst, name) for name in Instance.model_fields}
    # the same place booked past its capacity: copy one booking's session onto all
    target = inst.bookings[0].session
    bookings = []
    for r in inst.requests:
        if target in r.preferences:
            bookings.append({"request": r.id, "session": target})
    fields["bookings"] = bookings
    crowded = Instance.model_validate(fields)
    with pytest.raises(InvalidStateError, match=r"^bookings\[\d+\] \(request "):
        replay(crowded, ["{}"])
