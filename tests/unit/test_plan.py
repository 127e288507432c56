"""Capacity planning: known best changes on hand-made worlds; gains reproduce by re-solving.

Every gain is measured against a control (the unchanged instance re-solved on
the same footing); on instances solved to optimality it is the difference of
the two optima. Every solve ``plan`` makes is verified (an autouse fixture).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from functools import cache
from typing import Any

import pytest

import slotalloc.analysis.plan as plan_module
from slotalloc import Status, solve
from slotalloc.analysis.plan import (
    Change,
    PlanProgress,
    Recommendation,
    apply_change,
    hint_by_value,
    plan,
)
from slotalloc.cli import main
from slotalloc.models import Instance
from slotalloc.result import Result
from slotalloc.verify import verify

OLDER = "2022-10-01"  # 30 months on 2025-04-19: ratio 7
T = 1.0
from conftest import DATA  # noqa: E402


def checked(instance: Instance, res: Result) -> Result:
    """The result, once the independent verifier accepts it with the same score."""
    report = verify(instance, res.to_solution())
    assert report.accepted and report.score == res.score
    return res


class Solves:
    """Every ``solve`` call ``plan`` makes, each result verified.

    ``calls`` holds (instance, hint given, focus, score) per call.
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Instance, bool, tuple[str, ...] | None, int | None]] = []
        #: Report every result as not proven and found by neighbourhood search.
        self.disguise = False

    def __call__(self, instance: Instance, **kw: Any) -> Result:
        res = checked(instance, solve(instance, **kw))
        if self.disguise and res.status is Status.OPTIMAL:
            res = replace(res, status=Status.FEASIBLE, bound=None, stats={"strategy": "lns"})
            checked(instance, res)
        focus = kw.get("focus")
        hinted = kw.get("hint") is not None
        self.calls.append((instance, hinted, None if focus is None else tuple(focus), res.score))
        return res

    def controls(self, instance: Instance) -> list[tuple[str, ...] | None]:
        """Focus of each control: a hinted solve of the unchanged instance."""
        return [f for inst, hinted, f, _ in self.calls if inst is instance and hinted]

    def changed(self, instance: Instance) -> list[tuple[tuple[str, ...] | None, int | None]]:
        """(focus, score) of each re-solve of a changed instance."""
        return [(f, sc) for inst, _, f, sc in self.calls if inst is not instance]


@pytest.fixture(autouse=True)
def solves(monkeypatch: pytest.MonkeyPatch) -> Iterator[Solves]:
    rec = Solves()
    monkeypatch.setattr(plan_module, "solve", rec)
    yield rec


@cache
def short_staffed() -> Instance:
    """tests/data/sample-small.json with every session's caregivers halved (at least 1).

    Small enough that the optimiser proves the base and every changed instance
    optimal within T, and short enough of staff that changes serve children.
    """
    doc = json.loads((DATA / "sample-small.json").read_text())
    for s in doc["sessions"]:
        s["caregivers"] = max(1, s["caregivers"] // 2)
    return Instance.model_validate(doc)


def children(instance: Instance, res: Result) -> int:
    size = {r.id: len(r.children) for r in instance.requests}
    return sum(size[a.request] for a in res.assignments)


def documented(instance: Instance, base: Result, change: Change) -> tuple[Result, Result]:
    """The changed re-solve and its control, exactly as the module docstring gives them."""
    kw: dict[str, Any] = {"time_limit": T, "seed": 0, "deterministic": True}
    hint = hint_by_value(instance, base)
    changed_inst = apply_change(instance, change)
    changed = checked(changed_inst, solve(changed_inst, hint=hint, focus=change.sessions, **kw))
    control = checked(instance, solve(instance, hint=hint, focus=change.sessions, **kw))
    return changed, control


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
    """Re-solving the changed and the unchanged instance as documented gives back the gain."""
    base = checked(instance, solve(instance, time_limit=T, seed=0, deterministic=True))
    changed, control = documented(instance, base, rec.change)
    assert changed.score is not None and control.score is not None
    assert (rec.changed_score, rec.control_score) == (changed.score, control.score)
    assert rec.score == changed.score - control.score
    changed_inst = apply_change(instance, rec.change)
    assert rec.children == children(changed_inst, changed) - children(instance, control)


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


# ------------------------------------------------- measured against a control


def test_gain_is_the_difference_of_proven_optima(solves: Solves) -> None:
    inst = short_staffed()
    recs = plan(inst, top=3, time_limit=T)
    assert len(recs) == 3
    opt_base = checked(inst, solve(inst, time_limit=T, seed=0, deterministic=True))
    assert opt_base.status is Status.OPTIMAL and opt_base.score is not None
    # A proven-optimal base is its own control: no control is solved.
    assert solves.controls(inst) == []
    for rec in recs:
        changed_inst = apply_change(inst, rec.change)
        opt = checked(changed_inst, solve(changed_inst, time_limit=T, seed=0, deterministic=True))
        assert opt.status is Status.OPTIMAL and opt.score is not None
        assert rec.score == opt.score - opt_base.score
        assert rec.control_score == opt_base.score
        reproduce(inst, rec)
    assert recs[0].change == Change("add_caregiver", "SI-001/2025-04-20-am")
    assert (recs[0].children, recs[0].score) == (3, 3340)


def test_control_takes_out_what_the_search_improves_on_its_own(solves: Solves) -> None:
    # A poor base: first-come-first-served. A hinted re-solve of the unchanged
    # instance improves it by itself; that must not count as the change's gain.
    inst = short_staffed()
    poor = checked(inst, solve(inst, method="fcfs"))
    assert poor.score is not None
    recs = plan(inst, top=3, time_limit=T, base=poor)
    assert recs
    opt_base = checked(inst, solve(inst, time_limit=T, seed=0, deterministic=True))
    assert opt_base.status is Status.OPTIMAL and opt_base.score is not None
    for rec in recs:
        changed, control = documented(inst, poor, rec.change)
        assert changed.score is not None and control.score is not None
        assert control.score > poor.score  # the search's own improvement
        assert (rec.changed_score, rec.control_score) == (changed.score, control.score)
        assert rec.score == changed.score - control.score
        assert rec.score < changed.score - poor.score
        changed_inst = apply_change(inst, rec.change)
        assert rec.children == children(changed_inst, changed) - children(inst, control)
        # Both reach the optimum here, so the gain is the change's exact value.
        opt = checked(changed_inst, solve(changed_inst, time_limit=T, seed=0, deterministic=True))
        assert opt.status is Status.OPTIMAL and opt.score is not None
        assert rec.score == opt.score - opt_base.score
    # Solved whole (focus unused): one control serves every change.
    assert len(solves.controls(inst)) == 1


def test_one_control_per_focus_when_the_search_reads_it(solves: Solves) -> None:
    # As if no control were proven optimal and the search read its focus (a
    # large instance): one control per focus, each solved once, and only for
    # a change whose re-solve beats the base.
    inst = short_staffed()
    poor = checked(inst, solve(inst, method="fcfs"))
    assert poor.score is not None
    shared = plan(inst, top=20, time_limit=T, base=poor)
    assert len(solves.controls(inst)) == 1  # solved whole: one for all
    solves.calls.clear()
    solves.disguise = True
    recs = plan(inst, top=20, time_limit=T, base=poor)
    # Focus is not read on this model, so every control scores the same.
    assert [(r.change, r.score, r.children) for r in recs] == [
        (r.change, r.score, r.children) for r in shared
    ]
    focuses = solves.controls(inst)
    changed = solves.changed(inst)
    assert len(focuses) == len(set(focuses)) > 1
    assert set(focuses) == {f for f, sc in changed if sc is not None and sc > poor.score}


def test_no_control_for_a_change_out_of_reach_of_the_top(solves: Solves) -> None:
    # A good base not proven optimal: controls are solved, and a change whose
    # re-solve beats the base by no more than the top gains found cannot enter
    # the list, so it gets none. The list is the one every control gives.
    inst = short_staffed()
    solves.disguise = True
    good = plan_module.solve(inst, time_limit=T, seed=0, deterministic=True)
    assert good.status is Status.FEASIBLE
    full = plan(inst, top=20, time_limit=T, base=good)
    n_full = len(solves.controls(inst))
    assert n_full > 1
    solves.calls.clear()
    top1 = plan(inst, top=1, time_limit=T, base=good, shortlist=2 * 20 + 5)
    assert top1 == full[:1]
    assert len(solves.controls(inst)) < n_full


def test_progress_after_each_measured_candidate(solves: Solves) -> None:
    inst = short_staffed()
    seen: list[PlanProgress] = []
    recs = plan(inst, top=2, time_limit=T, shortlist=6, on_progress=seen.append)
    assert seen, "there are candidates to measure"
    total = seen[0].total
    assert total <= 6
    assert [p.done for p in seen] == list(range(1, total + 1))
    assert all(p.total == total for p in seen)
    # One changed re-solve per measured candidate (the base is optimal: no control).
    assert len([c for c in solves.calls if c[0] is not inst]) == total
    elapsed = [p.elapsed for p in seen]
    assert elapsed == sorted(elapsed) and elapsed[0] >= 0
    gains = [p.best_gain for p in seen]
    known = [g for g in gains if g is not None]
    assert known == sorted(known) and gains[: len(gains) - len(known)] == [None] * (
        len(gains) - len(known)
    )
    assert seen[-1].best_gain == recs[0].score
    with pytest.raises(AttributeError):
        seen[0].done = 0  # type: ignore[misc]


def test_no_progress_calls_without_candidates() -> None:
    inst = world([("A", "X", 8, 20, 3)], {"A": 5})
    seen: list[PlanProgress] = []
    assert plan(inst, time_limit=T, on_progress=seen.append) == []
    assert seen == []


def test_hint_by_value_rejects_a_foreign_base() -> None:
    inst = world([("A", "X", 8, 20, 1)], {"A": 2})
    other = world([("B", "X", 8, 20, 1)], {"B": 2})
    foreign = checked(other, solve(other, time_limit=T, seed=0, deterministic=True))
    assert foreign.assignments
    with pytest.raises(ValueError):
        hint_by_value(inst, foreign)
    own = checked(inst, solve(inst, time_limit=T, seed=0, deterministic=True))
    assert sorted(hint_by_value(inst, own), key=lambda a: a.request) == sorted(
        own.assignments, key=lambda a: a.request
    )
