"""Capacity planning: known best changes on hand-made worlds; gains reproduce by re-solving."""

from __future__ import annotations

import json
from typing import Any

import pytest

from slotalloc import Status, solve
from slotalloc.cli import main
from slotalloc.models import Instance
from slotalloc.plan import Change, Recommendation, apply_change, plan
from slotalloc.verify import verify

OLDER = "2022-10-01"  # 30 months on 2025-04-19: ratio 7
T = 1.0


def world(sessions: list[tuple[str, str, int, int, int]], wants: dict[str, int]) -> Instance:
    """Sessions (id, site, start hour, capacity, caregivers); ``wants[s]`` one-child requests."""
    doc: dict[str, Any] = {
        "format": "slotalloc.instance/1",
        "name": "plan",
        "sessions": [
            {
                "id": sid,
                "site": site,
                "start": f"2025-04-19T{h:02d}:30:00+08:00",
                "end": f"2025-04-19T{h + 3:02d}:00:00+08:00",
                "capacity": cap,
                "caregivers": cg,
            }
            for sid, site, h, cap, cg in sessions
        ],
        "children": [],
        "requests": [],
    }
    for sid, n in wants.items():
        for i in range(n):
            rid = f"{sid}-{i}"
            doc["children"].append({"id": f"c-{rid}", "birth_date": OLDER})
            doc["requests"].append({"id": rid, "children": [f"c-{rid}"], "preferences": [sid]})
    return Instance.model_validate(doc)


def reproduce(instance: Instance, rec: Recommendation) -> None:
    """Re-solving the changed instance as documented gives back the claimed gain."""
    base = solve(instance, time_limit=T, seed=0, deterministic=True)
    changed = apply_change(instance, rec.change)
    again = solve(
        changed, time_limit=T, seed=0, deterministic=True, hint=base, focus=rec.change.sessions
    )
    for inst, res in ((instance, base), (changed, again)):
        report = verify(inst, res.to_solution())
        assert report.accepted and report.score == res.score
    assert base.score is not None and again.score is not None
    assert again.score - base.score == rec.score
    assert len(again.assignments) - len(base.assignments) == rec.children


def test_one_more_caregiver_where_staffing_binds() -> None:
    # A: 10 older children want it, 1 caregiver holds 7; B is not short of anything.
    inst = world([("A", "X", 8, 20, 1), ("B", "Y", 8, 20, 2)], {"A": 10, "B": 3})
    recs = plan(inst, top=3, time_limit=T)
    best = recs[0]
    assert best.change == Change("add_caregiver", "A")
    assert (best.children, best.score) == (3, 3000)
    assert all(r.change.session == "A" for r in recs)
    reproduce(inst, best)


def test_more_places_where_capacity_binds() -> None:
    # A: capacity 5 with staff for 21; 8 want it -> +5 places serve 3 more.
    inst = world([("A", "X", 8, 5, 3)], {"A": 8})
    recs = plan(inst, top=2, time_limit=T, places=5)
    assert recs[0].change == Change("add_places", "A", 5)
    assert (recs[0].children, recs[0].score) == (3, 3000)
    assert recs[0].to_dict() == {
        "action": "add_places",
        "session": "A",
        "places": 5,
        "estimate": 3,
        "gain": {"children": 3, "score": 3000},
    }
    reproduce(inst, recs[0])


def test_move_a_caregiver_from_an_idle_afternoon() -> None:
    # Morning short of one caregiver (10 want, 7 held); afternoon has 2 for 2 children.
    inst = world([("am", "X", 8, 20, 1), ("pm", "X", 14, 20, 2)], {"am": 10, "pm": 2})
    recs = plan(inst, top=5, time_limit=T)
    moves = [r for r in recs if r.change.action == "move_caregiver"]
    assert len(moves) == 1
    move = moves[0]
    assert move.change == Change("move_caregiver", "am", 1, "pm")
    assert (move.children, move.score) == (3, 3000)
    assert move.to_dict()["from"] == "pm"
    reproduce(inst, move)


def test_harmful_move_is_not_recommended() -> None:
    # The afternoon needs both its caregivers (14 children): moving one loses 7, gains 3.
    inst = world([("am", "X", 8, 20, 1), ("pm", "X", 14, 20, 2)], {"am": 10, "pm": 14})
    recs = plan(inst, top=10, time_limit=T)
    assert recs and all(r.change.action != "move_caregiver" for r in recs)
    assert all(r.score > 0 and r.children > 0 for r in recs)


def test_nothing_to_plan_when_everyone_is_served() -> None:
    inst = world([("A", "X", 8, 20, 3)], {"A": 5})
    assert plan(inst, time_limit=T) == []


def test_apply_change_rejects_unknown_things() -> None:
    inst = world([("A", "X", 8, 20, 1)], {"A": 1})
    with pytest.raises(ValueError):
        apply_change(inst, Change("add_caregiver", "nope"))
    with pytest.raises(ValueError):
        apply_change(inst, Change("paint_walls", "A"))


def test_cli_plan_json_feeds_the_report(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    inst = world([("A", "X", 8, 20, 1), ("B", "Y", 8, 20, 2)], {"A": 10, "B": 3})
    path = tmp_path / "inst.json"
    path.write_text(inst.model_dump_json(exclude_none=True))
    assert main(["plan", str(path), "--top", "2", "--json", "--time-limit", str(T)]) == 0
    recs = json.loads(capsys.readouterr().out)
    assert recs[0]["action"] == "add_caregiver" and recs[0]["session"] == "A"
    assert recs[0]["gain"] == {"children": 3, "score": 3000}
    assert main(["solve", str(path), "-o", str(tmp_path / "s.json"), "--quiet"]) == 0
    sol = json.loads((tmp_path / "s.json").read_text())
    assert sol["status"] in {s.value for s in Status}
