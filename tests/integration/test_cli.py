"""The command line: exit statuses, outputs, and what is (not) written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DATA
from slotalloc.cli import main
from slotalloc.io import load_solution


def test_verify_accepts_the_reference_baseline(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        ["verify", str(DATA / "sample-small.json"), str(DATA / "sample-small.fcfs-solution.json")]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "accepted" in out and "66560" in out


def test_verify_rejects_a_wrong_score_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = json.loads((DATA / "sample-small.fcfs-solution.json").read_text(encoding="utf-8"))
    doc["score"] += 10
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["verify", str(DATA / "sample-small.json"), str(bad)]) == 1
    assert "not accepted" in capsys.readouterr().out


def test_verify_unknown_ids_are_not_accepted(tmp_path: Path) -> None:
    doc = {
        "format": "slotalloc.solution/1",
        "status": "feasible",
        "score": 0,
        "assignments": [{"request": "nobody", "session": "nowhere"}],
    }
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["verify", str(DATA / "sample-small.json"), str(bad)]) == 1


def test_verify_malformed_solution_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(
        '{"format": "slotalloc.solution/1", "status": "great", "score": 1}', encoding="utf-8"
    )
    assert main(["verify", str(DATA / "sample-small.json"), str(bad)]) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "status" in err


def test_solve_writes_a_solution_the_verifier_accepts(tmp_path: Path) -> None:
    out = tmp_path / "sol.json"
    assert (
        main(
            [
                "solve",
                str(DATA / "sample-rebalance.json"),
                "-o",
                str(out),
                "--quiet",
                "--method",
                "fcfs",
            ]
        )
        == 0
    )
    assert load_solution(out).score == 270790
    assert main(["verify", str(DATA / "sample-rebalance.json"), str(out)]) == 0


def test_solve_to_a_missing_folder_is_exit_2(tmp_path: Path) -> None:
    out = tmp_path / "no" / "sol.json"
    assert main(["solve", str(DATA / "sample-small.json"), "-o", str(out), "--quiet"]) == 2


def test_unknown_method_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "sol.json"
    assert (
        main(
            [
                "solve",
                str(DATA / "sample-small.json"),
                "-o",
                str(out),
                "--quiet",
                "--method",
                "magic",
            ]
        )
        == 2
    )
    assert "magic" in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("kind", ["instance", "solution", "event", "decision"])
def test_schema_prints_json_schema(kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema", kind]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema


def test_explain_names_the_blocking_rules(capsys: pytest.CaptureFixture[str]) -> None:
    status = main(
        [
            "explain",
            str(DATA / "sample-small.json"),
            str(DATA / "sample-small.fcfs-solution.json"),
            "--request",
            "r000012",
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    assert "[eligibility] child c000013 is 5 months old" in out


def test_explain_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        main(
            [
                "explain",
                str(DATA / "sample-tight.json"),
                str(DATA / "sample-tight.fcfs-solution.json"),
                "--json",
            ]
        )
        == 0
    )
    doc = json.loads(capsys.readouterr().out)
    rules = {b["rule"] for e in doc["requests"] for p in e["preferences"] for b in p["blockers"]}
    assert {"capacity", "caregivers"} & rules


def test_explain_refuses_an_invalid_solution(tmp_path: Path) -> None:
    doc = json.loads((DATA / "sample-small.fcfs-solution.json").read_text(encoding="utf-8"))
    doc["assignments"].append({"request": "r000012", "session": "SI-001/2025-04-20-am"})
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["explain", str(DATA / "sample-small.json"), str(bad)]) == 2


def test_diff_counts_moves_drops_and_placements(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    old = json.loads((DATA / "sample-small.fcfs-solution.json").read_text(encoding="utf-8"))
    new = json.loads(json.dumps(old))
    first = new["assignments"].pop(0)
    (tmp_path / "old.json").write_text(json.dumps(old), encoding="utf-8")
    new["score"] = None
    from slotalloc.io import parse_instance, parse_solution
    from slotalloc.verify import score_of

    inst = parse_instance(json.loads((DATA / "sample-small.json").read_text(encoding="utf-8")))
    new["score"] = score_of(inst, [(a["request"], a["session"]) for a in new["assignments"]])
    parse_solution(new)
    (tmp_path / "new.json").write_text(json.dumps(new), encoding="utf-8")
    assert (
        main(
            [
                "diff",
                str(DATA / "sample-small.json"),
                str(tmp_path / "old.json"),
                str(tmp_path / "new.json"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert f"dropped  {first['request']}: {first['session']}" in out
    assert "0 moved, 1 dropped, 0 newly placed" in out


def test_solve_by_parts_in_process(tmp_path: Path) -> None:
    out = tmp_path / "sol.json"
    assert (
        main(
            [
                "solve",
                str(DATA / "sample-tight.json"),
                "-o",
                str(out),
                "--quiet",
                "--executor",
                "inprocess",
                "--deterministic",
                "--time-limit",
                "1",
            ]
        )
        == 0
    )
    assert main(["verify", str(DATA / "sample-tight.json"), str(out)]) == 0


def test_workers_without_executor_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "sol.json"
    assert (
        main(
            ["solve", str(DATA / "sample-small.json"), "-o", str(out), "--quiet", "--workers", "2"]
        )
        == 2
    )
    assert "--executor" in capsys.readouterr().err
    assert not out.exists()


def test_explain_names_the_holders_of_a_full_session(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from slotalloc import solve
    from slotalloc.models import Instance

    # One caregiver: seven older children (1 per 7) fill it; an infant of
    # higher priority could take none of their places one for one.
    kids = {f"o{k}": "2022-12-01" for k in range(7)} | {"i": "2024-08-01"}
    inst = Instance(
        name="full",
        sessions=[
            {
                "id": "s1",
                "site": "A",
                "start": "2025-04-19T09:00:00+08:00",
                "end": "2025-04-19T10:00:00+08:00",
                "capacity": 10,
                "caregivers": 1,
            }
        ],
        children=[{"id": k, "birth_date": v} for k, v in kids.items()],
        requests=[
            {
                "id": f"r-{k}",
                "children": [k],
                "preferences": ["s1"],
                "priority": 5 if k == "i" else 0,
            }
            for k in kids
        ],
    )
    ip, sp = tmp_path / "i.json", tmp_path / "s.json"
    ip.write_text(inst.model_dump_json(), encoding="utf-8")
    sp.write_text(solve(inst, method="fcfs").to_solution().model_dump_json(), encoding="utf-8")
    assert main(["verify", str(ip), str(sp)]) == 0  # the independent verifier first
    capsys.readouterr()
    assert main(["explain", str(ip), str(sp), "--request", "r-i"]) == 0
    lines = capsys.readouterr().out.splitlines()
    held = [line.strip() for line in lines if "holder [" in line]
    assert [h.split()[2] for h in held] == [f"r-o{k}" for k in range(5)]
    assert all(h.startswith("holder [rule] ") and "break caregivers" in h for h in held)
    assert lines[-1].strip() == "and 2 more holders"
    assert main(["explain", str(ip), str(sp), "--request", "r-i", "--json"]) == 0
    (pref,) = json.loads(capsys.readouterr().out)["requests"][0]["preferences"]
    assert [h["request"] for h in pref["holders"]] == [f"r-o{k}" for k in range(7)]
    assert {(h["why"], tuple(h["rules"]), h["booked"], h["priority"]) for h in pref["holders"]} == {
        ("rule", ("caregivers",), False, 0)
    }
