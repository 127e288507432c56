"""FORMAT §4: the fairness rules in the verifier, from its own plain first-come-first-served.

Tiny hand-made instances where each rule changes the answer; the verifier
rejects a solution that breaks each rule (exit 1 from the CLI, the rule named);
its plain FCFS agrees with the solver's, and in priority order meets both rules.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from conftest import sample_instance
from slotalloc import solve
from slotalloc.cli import main
from slotalloc.models import Instance, Solution
from slotalloc.verify import (
    fcfs_assignment,
    group_places,
    home_groups,
    justified_envy,
    score_of,
    verify,
)
from strategies import instances

DAY = "2025-04-19"
INFANT, OLDER = "2024-08-01", "2022-12-01"


def sess(sid: str, h0: int = 9, h1: int = 10, **kw: Any) -> dict[str, Any]:
    return {
        "id": sid,
        "site": "A",
        "start": f"{DAY}T{h0:02d}:00:00+08:00",
        "end": f"{DAY}T{h1:02d}:00:00+08:00",
        "capacity": kw.pop("cap", 10),
        "caregivers": kw.pop("carers", 5),
        **kw,
    }


def world(
    sessions: list[dict[str, Any]],
    children: dict[str, str],
    requests: list[tuple[str, list[str], list[str], int]],
    fairness: dict[str, str] | None = None,
    bookings: list[dict[str, Any]] | None = None,
) -> Instance:
    policy: dict[str, Any] = {"preset": "cn-2019"}
    if fairness is not None:
        policy["fairness"] = fairness
    return Instance(
        name="tiny",
        policy=policy,
        sessions=sessions,
        children=[{"id": k, "birth_date": v} for k, v in children.items()],
        requests=[
            {"id": r, "children": c, "preferences": p, "priority": pr} for r, c, p, pr in requests
        ],
        bookings=bookings or [],
    )


def solution(inst: Instance, pairs: list[tuple[str, str]]) -> Solution:
    return Solution(
        instance=inst.name,
        status="feasible",
        score=score_of(inst, pairs),
        bound=None,
        assignments=[{"request": r, "session": s} for r, s in pairs],
    )


# ---------------------------------------------------------------- rule 9


def envy_world(fairness: dict[str, str] | None) -> Instance:
    # One place; the low-priority family asked first.
    return world(
        [sess("s1", cap=1)],
        {"c1": OLDER, "c2": OLDER},
        [("low", ["c1"], ["s1"], 0), ("high", ["c2"], ["s1"], 5)],
        fairness,
    )


def test_rule_9_rejects_a_place_lost_to_a_lower_priority() -> None:
    inst = envy_world({"priority": "no_justified_envy"})
    bad = verify(inst, solution(inst, [("low", "s1")]))
    assert not bad.accepted and [v.rule for v in bad.violations] == ["9-no-justified-envy"]
    assert "'high'" in bad.violations[0].message and "'low'" in bad.violations[0].message
    assert verify(inst, solution(inst, [("high", "s1")])).accepted
    # off: the same plan is valid
    plain = envy_world(None)
    assert verify(plain, solution(plain, [("low", "s1")])).accepted
    assert justified_envy(plain, [("low", "s1")]) == [("high", "low", "s1")]


def test_rule_9_ignores_an_envy_the_swap_could_not_fix() -> None:
    # high's child is an infant; the session takes older children only.
    inst = world(
        [sess("s1", cap=1, min_months=24)],
        {"c1": OLDER, "c2": INFANT},
        [("low", ["c1"], ["s1"], 0), ("high", ["c2"], ["s1"], 5)],
        {"priority": "no_justified_envy"},
    )
    assert verify(inst, solution(inst, [("low", "s1")])).accepted


def test_rule_9_leaves_booked_requests_alone() -> None:
    inst = world(
        [sess("s1", cap=1)],
        {"c1": OLDER, "c2": OLDER},
        [("low", ["c1"], ["s1"], 0), ("high", ["c2"], ["s1"], 5)],
        {"priority": "no_justified_envy"},
        bookings=[{"request": "low", "session": "s1"}],
    )
    assert verify(inst, solution(inst, [("low", "s1")])).accepted


def test_rule_9_counts_a_better_ranked_session_of_a_placed_request() -> None:
    inst = world(
        [sess("s1", cap=1), sess("s2", 11, 12, cap=1)],
        {"c1": OLDER, "c2": OLDER},
        [("low", ["c1"], ["s1"], 0), ("high", ["c2"], ["s1", "s2"], 5)],
        {"priority": "no_justified_envy"},
    )
    bad = verify(inst, solution(inst, [("low", "s1"), ("high", "s2")]))
    assert [v.rule for v in bad.violations] == ["9-no-justified-envy"]


# ---------------------------------------------------------------- rule 8


def floor_world(fairness: dict[str, str] | None) -> Instance:
    # One caregiver: three infants (1:3) or seven older children (1:7). The
    # infants asked first, so first-come-first-served serves three infants.
    kids = {f"i{k}": INFANT for k in range(3)} | {f"o{k}": OLDER for k in range(7)}
    reqs = [(f"r-{c}", [c], ["s1"], 0) for c in kids]
    return world([sess("s1", cap=7, carers=1)], kids, reqs, fairness)


def test_rule_8_keeps_each_age_group_at_least_at_fcfs() -> None:
    inst = floor_world({"group_floor": "fcfs"})
    fcfs = fcfs_assignment(inst)
    assert fcfs is not None and group_places(inst, fcfs) == {"infant": 3, "toddler": 0, "older": 0}
    olders = [(f"r-o{k}", "s1") for k in range(7)]
    plain = floor_world(None)
    assert verify(plain, solution(plain, olders)).accepted  # more children, no infant
    bad = verify(inst, solution(inst, olders))
    assert [v.rule for v in bad.violations] == ["8-group-floor"]
    assert "'infant'" in bad.violations[0].message
    assert verify(inst, solution(inst, fcfs)).accepted


def test_home_group_is_the_age_on_the_first_preference_date() -> None:
    # Born 2024-04-20: 11 months on 2025-03-22 (infant), 12 on 2025-04-20 (toddler).
    inst = Instance(
        name="t",
        sessions=[
            {
                **sess("sun"),
                "start": "2025-04-20T09:00:00+08:00",
                "end": "2025-04-20T10:00:00+08:00",
            },
            {
                **sess("early"),
                "start": "2025-03-22T09:00:00+08:00",
                "end": "2025-03-22T10:00:00+08:00",
            },
        ],
        children=[{"id": "c", "birth_date": "2024-04-20"}],
        requests=[
            {"id": "a", "children": ["c"], "preferences": ["sun", "early"]},
            {"id": "b", "children": ["c"], "preferences": ["early", "sun"]},
        ],
    )
    assert home_groups(inst, inst.requests[0]) == ("toddler",)
    assert home_groups(inst, inst.requests[1]) == ("infant",)


# ---------------------------------------------------------------- the verifier's own FCFS


@pytest.mark.parametrize("name", ["sample-small", "sample-rebalance", "sample-tight"])
def test_the_plain_fcfs_is_the_solvers(name: str) -> None:
    inst = sample_instance(name)
    want = sorted((a.request, a.session) for a in solve(inst, method="fcfs").assignments)
    got = fcfs_assignment(inst)
    assert got is not None and sorted(got) == want


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(inst=instances())
def test_fcfs_in_priority_order_meets_both_rules(inst: Instance) -> None:
    """FORMAT §4: whenever the locked bookings are consistent, F meets every rule on."""
    fields = inst.model_dump(mode="json")
    fields["policy"]["fairness"] = {"group_floor": "fcfs", "priority": "no_justified_envy"}
    fair = Instance.model_validate(fields)
    f = fcfs_assignment(fair, priority_order=True)
    if f is None:
        return  # infeasible: the characterisation of §2 stands
    report = verify(fair, solution(fair, f))
    assert report.accepted, report.verdict


def test_the_cli_names_the_broken_rule_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inst = envy_world({"priority": "no_justified_envy"})
    ip, sp = tmp_path / "i.json", tmp_path / "s.json"
    ip.write_text(inst.model_dump_json(), encoding="utf-8")
    sp.write_text(solution(inst, [("low", "s1")]).model_dump_json(), encoding="utf-8")
    assert main(["verify", str(ip), str(sp)]) == 1
    assert "9-no-justified-envy" in capsys.readouterr().out
    data = json.loads(ip.read_text(encoding="utf-8"))
    assert data["policy"]["fairness"] == {"group_floor": None, "priority": "no_justified_envy"}
