"""Bad input refused cleanly: one regression test per review finding.

Every command-line case checks the exit status 2, the single line on stderr
(file, place, problem; no traceback) and that no output was written.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pydantic
import pytest

from conftest import DATA
from slotalloc.cli import main
from slotalloc.exceptions import InputError
from slotalloc.io import (
    event_line_error,
    load_instance,
    load_solution,
    parse_event,
)
from slotalloc.models import MAX_COUNT, MAX_WEIGHT, Child, Instance, Request, Solution

BASE: dict[str, Any] = {
    "format": "slotalloc.instance/1",
    "name": "tiny",
    "sites": [{"id": "A", "district": "Siming"}],
    "sessions": [
        {
            "id": "A/am",
            "site": "A",
            "start": "2025-04-19T08:30:00+08:00",
            "end": "2025-04-19T12:00:00+08:00",
            "capacity": 1,
            "caregivers": 1,
        },
        {
            "id": "A/pm",
            "site": "A",
            "start": "2025-04-19T14:30:00+08:00",
            "end": "2025-04-19T17:30:00+08:00",
            "capacity": 1,
            "caregivers": 1,
        },
    ],
    "children": [
        {"id": "c1", "birth_date": "2023-05-02", "residency": "local", "household": "h1"},
        {"id": "c2", "birth_date": "2023-06-12", "residency": "non_local", "household": "h2"},
    ],
    "requests": [
        {"id": "r1", "children": ["c1"], "preferences": ["A/am", "A/pm"]},
        {"id": "r2", "children": ["c2"], "preferences": ["A/am"]},
    ],
}

EVENTS_INSTANCE = DATA / "sample-events.json"


def _doc(**changes: Any) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    doc.update(changes)
    return doc


def _write(tmp_path: Path, text: str, name: str = "inst.json") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _solve_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, where: str, problem: str
) -> str:
    """Run ``solve`` on the text; check exit 2, one line naming file, place and problem."""
    path = _write(tmp_path, text)
    out = tmp_path / "out.json"
    status = main(["solve", str(path), "-o", str(out), "--quiet", "--method", "fcfs"])
    line = _one_line(capsys)
    assert status == 2, line
    assert line.startswith(f"{path}: "), line
    assert where in line, line
    assert problem in line, line
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # no partial file
    return line


def _events_instance_ids() -> tuple[str, str]:
    inst = load_instance(EVENTS_INSTANCE)
    return inst.children[0].id, inst.sessions[0].id


def _replay(tmp_path: Path, lines: list[str]) -> list[dict[str, Any]]:
    events = _write(tmp_path, "\n".join(lines) + "\n", "events.jsonl")
    out = tmp_path / "decisions.jsonl"
    assert main(["replay", str(EVENTS_INSTANCE), str(events), "-o", str(out)]) == 0
    return [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]


def _book(rid: str, child: str, session: str) -> str:
    return json.dumps(
        {"op": "book", "request": {"id": rid, "children": [child], "preferences": [session]}}
    )


# ---------------------------------------------------------------- tracebacks / exit 1 before


def test_regression_deep_nesting_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(_doc())[:-1] + ', "stats": ' + "[" * 5000 + "]" * 5000 + "}"
    _solve_refuses(tmp_path, capsys, text, "line 1 column", "Nested more than 100 levels deep")


def test_regression_deep_nesting_of_a_solution_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inst = _write(tmp_path, json.dumps(_doc()))
    sol = _write(
        tmp_path,
        '{"format": "slotalloc.solution/1", "status": "feasible", "score": 0, "stats": {"a": '
        + "[" * 3000,
        "sol.json",
    )
    assert main(["verify", str(inst), str(sol)]) == 2
    line = _one_line(capsys)
    assert line.startswith(f"{sol}: line 1 column ") and "Nested more than 100" in line


@pytest.mark.parametrize(("levels", "refused"), [(100, False), (101, True)])
def test_regression_stats_nested_past_the_limit_refused(
    tmp_path: Path, levels: int, refused: bool
) -> None:
    # the solution object is level 1 and stats level 2: levels - 2 lists inside
    head = '{"format": "slotalloc.solution/1", "status": "feasible", "score": 0, "stats": {"x": '
    text = head + "[" * (levels - 2) + "]" * (levels - 2) + "}}"
    path = _write(tmp_path, text, "sol.json")
    if refused:
        with pytest.raises(InputError, match=r"stats\.x(\[0\])* is nested more than 100 levels"):
            load_solution(path)
    else:
        assert load_solution(path).stats is not None


def test_regression_huge_int_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = json.dumps(_doc()).replace('"capacity": 1', '"capacity": 1' + "0" * 5000, 1)
    _solve_refuses(
        tmp_path,
        capsys,
        text,
        "sessions[0] (id 'A/am').capacity",
        "an integer of 5001 digits is too long (at most 4300)",
    )


@pytest.mark.parametrize(
    ("path", "where"),
    [
        (("sessions", 0, "capacity"), "sessions[0] (id 'A/am').capacity"),
        (("sessions", 1, "caregivers"), "sessions[1] (id 'A/pm').caregivers"),
        (("sessions", 0, "max_months"), "sessions[0] (id 'A/am').max_months"),
        (("sessions", 0, "min_months"), "sessions[0] (id 'A/am').min_months"),
        (("policy", "max_sessions_per_child"), "policy.max_sessions_per_child"),
    ],
)
def test_regression_10_pow_30_in_a_count_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], path: tuple[Any, ...], where: str
) -> None:
    doc = _doc(policy={"preset": "cn-2019"})
    node: Any = doc
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = 10**30
    line = _solve_refuses(tmp_path, capsys, json.dumps(doc), where, "less than or equal to 1000000")
    assert "1000000000000000000000000000000" in line  # the value, shown once
    assert line.count("1000000000000000000000000000000") == 1


def test_regression_10_pow_30_in_age_group_months_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    group = {"name": "all", "min_months": 0, "max_months": 10**30, "ratio": 3,
             "max_group_size": 10}  # fmt: skip
    _solve_refuses(
        tmp_path,
        capsys,
        json.dumps(_doc(policy={"age_groups": [group]})),
        "policy.age_groups[0].max_months",
        "less than or equal to 1000000",
    )


def test_counts_and_weights_at_their_bounds_are_accepted() -> None:
    doc = _doc(objective={"serve": MAX_WEIGHT, "drop": MAX_WEIGHT})
    doc["sessions"][0]["capacity"] = MAX_COUNT
    doc["sessions"][0]["caregivers"] = MAX_COUNT
    doc["policy"] = {"preset": "cn-2019", "max_sessions_per_child": MAX_COUNT}
    inst = Instance.model_validate(doc, strict=True)
    assert inst.sessions[0].capacity == MAX_COUNT and inst.objective.serve == MAX_WEIGHT
    doc["objective"]["serve"] = MAX_WEIGHT + 1
    with pytest.raises(pydantic.ValidationError, match="less than or equal to 1000000000"):
        Instance.model_validate(doc, strict=True)


@pytest.mark.parametrize("where", ["name", "sites/0/district", "sessions/0/kind", "sites/0/id"])
def test_regression_lone_surrogate_in_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    doc = _doc()
    node: Any = doc
    *head, last = where.split("/")
    for part in head:
        node = node[int(part)] if part.isdigit() else node[part]
    node[last] = "x\ud800y"
    text = json.dumps(doc)  # ensure_ascii: the surrogate is written as the escape \ud800
    assert "\\ud800" in text
    place = {
        "name": "name",
        "sites/0/district": "sites[0]",
        "sessions/0/kind": "sessions[0] (id 'A/am').kind",
        "sites/0/id": "sites[0]",
    }[where]
    _solve_refuses(tmp_path, capsys, text, place, "lone surrogate (U+D800)")


def test_regression_lone_surrogate_in_event_id(tmp_path: Path) -> None:
    child, session = _events_instance_ids()
    lines = [
        '{"op": "cancel", "request": "r\\ud800"}',
        _book("x-placeholder", child, session).replace("x-placeholder", "x\\udfff"),
        _book("fine-1", child, session),
    ]
    got = _replay(tmp_path, lines)
    assert [d["event"] for d in got] == [0, 1, 2]
    assert "lone surrogate" in got[0]["error"] and got[0]["error"].startswith("request: ")
    assert "lone surrogate" in got[1]["error"] and got[1]["error"].startswith("request.id: ")
    assert got[2]["request"] == "fine-1" and "error" not in got[2]


@pytest.mark.parametrize("command", ["solve", "plan"])
@pytest.mark.parametrize("value", ["inf", "nan", "-1", "-inf"])
def test_regression_time_limit_inf(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, value: str
) -> None:
    out = tmp_path / "out.json"
    argv = [command, str(DATA / "sample-small.json"), f"--time-limit={value}", "--quiet"]
    if command == "solve":
        argv += ["-o", str(out)]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith(f"slotalloc {command}: --time-limit: ")
    assert "must be a finite number of seconds >= 0" in line
    assert list(tmp_path.iterdir()) == []


_PLAN_ROW = {
    "action": "add_caregiver",
    "session": "SI-001/2025-04-19-am",
    "caregivers": 1,
    "estimate": 30,
    "gain": {"children": 3, "score": 3000},
}


@pytest.mark.parametrize(
    ("plan", "where", "problem"),
    [
        ({"action": "add_caregiver"}, "", "A JSON list of recommendations"),
        ("add a caregiver", "", "A JSON list of recommendations"),
        ([1, 2], "[0]", "valid dictionary"),
        ([[_PLAN_ROW]], "[0]", "valid dictionary"),
        ([{**_PLAN_ROW, "gain": [3, 3000]}], "[0].gain", "valid dictionary"),
        ([{**_PLAN_ROW, "gain": {"children": "3", "score": 1}}], "[0].gain.children", "integer"),
        ([_PLAN_ROW, {**_PLAN_ROW, "acton": "x"}], "[1]", "unknown key 'acton'"),
        ([{**_PLAN_ROW, "action": "bulldoze"}], "[0].action", "add_caregiver"),
        ([{**_PLAN_ROW, "session": "s\n"}], "[0].session", "control character"),
        ([{**_PLAN_ROW, "places": 2}], "[0]", "gives 'caregivers' and not 'places'"),
    ],
)
def test_regression_report_plan_list(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plan: Any, where: str, problem: str
) -> None:
    pytest.importorskip("matplotlib")
    plan_file = _write(tmp_path, json.dumps(plan), "plan.json")
    out = tmp_path / "report"
    argv = [
        "report",
        str(DATA / "sample-small.json"),
        str(DATA / "sample-small.fcfs-solution.json"),
        "--plan",
        str(plan_file),
        "-o",
        str(out),
    ]
    assert main(argv) == 2
    line = _one_line(capsys)
    assert line.startswith(f"{plan_file}: {where}"), line
    assert problem in line
    assert not out.exists()


# ---------------------------------------------------------------- wrong results given silently


def test_regression_serve_2_pow_62_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _solve_refuses(
        tmp_path,
        capsys,
        json.dumps(_doc(objective={"serve": 2**62})),
        "objective.serve",
        "less than or equal to 1000000000 (got 4611686018427387904)",
    )


def test_regression_duplicate_key_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(_doc()).replace('"capacity": 1', '"capacity": 24, "capacity": 0', 1)
    _solve_refuses(
        tmp_path,
        capsys,
        text,
        "sessions[0] (id 'A/am'): ",
        "the key 'capacity' is given more than once.",
    )


def test_regression_duplicate_top_level_key_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = '{"name": "a", "name": "a", ' + json.dumps(_doc())[1:]
    line = _solve_refuses(tmp_path, capsys, text, "", "the key 'name' is given more than once.")
    assert line == f"{tmp_path / 'inst.json'}: the key 'name' is given more than once."


def test_regression_duplicate_key_in_event_line(tmp_path: Path) -> None:
    child, session = _events_instance_ids()
    dup = _book("dup-1", child, session).replace('"id": "dup-1"', '"id": "dup-1", "id": "d2"')
    got = _replay(tmp_path, [dup, _book("dup-1", child, session)])
    assert got[0] == {"event": 0, "error": "request: the key 'id' is given more than once."}
    assert got[1]["event"] == 1 and got[1]["request"] == "dup-1"  # the refused line used no id


@pytest.mark.parametrize("literal", ["1e400", "-1e400", "1E999"])
def test_regression_1e400_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], literal: str
) -> None:
    doc = _doc()
    doc["sites"][0]["lat"] = 0.5
    text = json.dumps(doc).replace('"lat": 0.5', f'"lat": {literal}')
    _solve_refuses(
        tmp_path, capsys, text, "sites[0] (id 'A').lat", f"the number {literal} is too large"
    )


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_regression_nan_and_infinity_literals_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], literal: str
) -> None:
    doc = _doc()
    doc["sites"][0]["area_m2"] = 0.5
    text = json.dumps(doc).replace('"area_m2": 0.5', f'"area_m2": {literal}')
    _solve_refuses(
        tmp_path, capsys, text, "sites[0] (id 'A').area_m2", f"{literal} is not a JSON number"
    )


def test_regression_non_finite_float_refused_by_the_constructors() -> None:
    with pytest.raises(pydantic.ValidationError, match="finite number"):
        Instance.model_validate(_doc(sites=[{"id": "A", "lat": float("inf")}]))
    with pytest.raises(pydantic.ValidationError, match="not a finite number"):
        Solution(status="feasible", score=0, stats={"gap": float("nan")})


def test_regression_non_finite_number_in_event_line(tmp_path: Path) -> None:
    child, session = _events_instance_ids()
    line = _book("n-1", child, session)[:-1] + ', "x": 1e400}'
    got = _replay(tmp_path, [line, '{"op": "cancel", "request": "n-1", "x": NaN}'])
    assert got == [
        {"event": 0, "error": "x: the number 1e400 is too large (not a finite number)."},
        {"event": 1, "error": "x: NaN is not a JSON number."},
    ]


def test_regression_huge_int_and_deep_nesting_in_event_lines(tmp_path: Path) -> None:
    child, session = _events_instance_ids()
    lines = [
        '{"op": "cancel", "request": 1' + "0" * 5000 + "}",
        '{"op": "cancel", "request": ' + "[" * 5000 + "]" * 5000 + "}",
        _book("ok-1", child, session),
    ]
    got = _replay(tmp_path, lines)
    assert got[0] == {
        "event": 0,
        "error": "request: an integer of 5001 digits is too long (at most 4300).",
    }
    assert got[1]["event"] == 1 and "nested more than 100 levels deep" in got[1]["error"]
    assert got[2]["event"] == 2 and got[2]["request"] == "ok-1"


# ---------------------------------------------------------------- control characters in ids


@pytest.mark.parametrize("bad", ["r\n1", "r\x1b[2J", "r\x00", "r\x7f", "r\x9b1m", "r\t"])
def test_regression_newline_in_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str
) -> None:
    doc = _doc()
    doc["requests"][0]["id"] = bad
    _solve_refuses(
        tmp_path, capsys, json.dumps(doc), "requests[0]", "an id must not hold a control character"
    )
    with pytest.raises(pydantic.ValidationError, match="control character"):
        Request(id=bad, children=["c"], preferences=["s"])
    with pytest.raises(pydantic.ValidationError, match="control character"):
        Child(id=bad, birth_date="2024-01-01")


def test_regression_newline_in_event_ids(tmp_path: Path) -> None:
    child, session = _events_instance_ids()
    lines = [
        _book("nl\n1", child, session),
        _book("ok-2", child + "\n", session),
        _book("ok-3", child, session + "\x1b"),
        '{"op": "cancel", "request": "nl\\n1"}',
        # a control character outside ids is allowed (FORMAT restricts ids only)
        json.dumps(
            {
                "op": "book",
                "request": {"id": "tab-ok", "children": ["new-kid"], "preferences": [session]},
                "children": [{"id": "new-kid", "birth_date": "2024-01-30", "household": "a\tb"}],
            }
        ),
    ]
    got = _replay(tmp_path, lines)
    assert [d["event"] for d in got] == [0, 1, 2, 3, 4]
    assert got[0]["error"] == (
        'request.id: an id must not hold a control character (U+000A) (got "nl\\n1").'
    )
    assert got[1]["error"].startswith("request.children[0]: an id must not hold a control")
    assert got[2]["error"].startswith("request.preferences[0]: an id must not hold a control")
    assert got[3]["error"].startswith("request: an id must not hold a control")
    assert got[4]["request"] == "tab-ok" and "error" not in got[4]
    assert event_line_error(lines[4]) is None


def test_regression_terminal_escape_in_explain(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An escape in an id is refused at the boundary...
    doc = _doc()
    doc["requests"][1]["id"] = "r\x1b]0;pwned\x07"
    out = tmp_path / "sol.json"
    _solve_refuses(tmp_path, capsys, json.dumps(doc), "requests[1]", "control character")
    # ...and whatever is not printable is escaped in what explain prints (U+2028 is
    # no control character, but it breaks a line on many terminals).
    doc["requests"][1]["id"] = "r\u20282"
    inst = _write(tmp_path, json.dumps(doc))
    assert main(["solve", str(inst), "-o", str(out), "--quiet", "--method", "fcfs"]) == 0
    capsys.readouterr()
    assert main(["explain", str(inst), str(out)]) == 0
    text = capsys.readouterr().out
    assert "\u2028" not in text and "r\\u20282 (c2): not placed" in text


def test_regression_terminal_escape_in_diff(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["requests"][0]["id"] = "r\u200b\u20291"
    inst = _write(tmp_path, json.dumps(doc))
    old, new = tmp_path / "old.json", tmp_path / "new.json"
    assert main(["solve", str(inst), "-o", str(old), "--quiet", "--method", "fcfs"]) == 0
    new.write_text(
        json.dumps({"format": "slotalloc.solution/1", "status": "feasible", "score": 0}),
        encoding="utf-8",
    )
    capsys.readouterr()
    assert main(["diff", str(inst), str(old), str(new)]) == 0
    text = capsys.readouterr().out
    assert "dropped  r\\u200b\\u20291: A/am" in text
    assert "\u2029" not in text and "\u200b" not in text
    assert main(["diff", str(inst), str(old), str(new), "--json"]) == 0
    doc_out = json.loads(capsys.readouterr().out)
    assert doc_out["dropped"] == [["r\u200b\u20291", "A/am"]]


def test_explain_json_escapes_c1_controls_in_free_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["children"][0]["residency"] = "lo\x9bcal"  # free text: allowed, but never raw on a tty
    inst = _write(tmp_path, json.dumps(doc))
    sol = tmp_path / "sol.json"
    assert main(["solve", str(inst), "-o", str(sol), "--quiet", "--method", "fcfs"]) == 0
    capsys.readouterr()
    assert main(["explain", str(inst), str(sol), "--json"]) == 0
    text = capsys.readouterr().out
    assert "\x9b" not in text and "\\u009b" in text
    assert json.loads(text)


def test_regression_plan_html_escaped(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    doc = _doc(name="<script>alert(1)</script>")
    doc["sites"] = [{"id": "$\\frac{a$", "district": "<b>Siming</b>"}]
    for s in doc["sessions"]:
        s["site"] = "$\\frac{a$"  # not TeX: the plots must not parse it as mathtext
    doc["sessions"][0]["id"] = "<img src=x onerror=alert(1)>"
    doc["requests"][0]["preferences"] = ["<img src=x onerror=alert(1)>", "A/pm"]
    doc["requests"][1]["preferences"] = ["A/pm"]
    inst = _write(tmp_path, json.dumps(doc))
    sol = tmp_path / "sol.json"
    assert main(["solve", str(inst), "-o", str(sol), "--quiet", "--method", "fcfs"]) == 0
    row = {**_PLAN_ROW, "session": "<i>A/pm</i>", "estimate": 1}
    plan = _write(tmp_path, json.dumps([row]), "plan.json")
    out = tmp_path / "report"
    assert main(["report", str(inst), str(sol), "--plan", str(plan), "-o", str(out)]) == 0
    page = (out / "index.html").read_text(encoding="utf-8")
    assert "<script>alert" not in page and "<i>A/pm" not in page and "<b>Siming" not in page
    assert "&lt;script&gt;" in page and "&lt;i&gt;A/pm&lt;/i&gt;" in page
    assert "&lt;b&gt;Siming&lt;/b&gt;" in page


# ---------------------------------------------------------------- messages


@pytest.mark.parametrize(
    ("edit", "where", "problem"),
    [
        (("requests", 0, "preferences", 0, "A/an"), "requests[0] (id 'r1')",
         "unknown session 'A/an' (did you mean 'A/am'?)."),
        (("requests", 0, "children", 0, "c11"), "requests[0] (id 'r1')",
         "unknown child 'c11' (did you mean 'c1'?)."),
        (("sessions", 0, "site", "AA"), "sessions[0] (id 'A/am')",
         "unknown site 'AA' (did you mean 'A'?)."),
    ],
)  # fmt: skip
def test_regression_unknown_id_did_you_mean(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    edit: tuple[Any, ...],
    where: str,
    problem: str,
) -> None:
    doc = _doc()
    node: Any = doc
    for part in edit[:-2]:
        node = node[part]
    node[edit[-2]] = edit[-1]
    line = _solve_refuses(tmp_path, capsys, json.dumps(doc), where, problem)
    assert line == f"{tmp_path / 'inst.json'}: {where}: {problem}"


def test_regression_unknown_booking_ids_did_you_mean(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc(bookings=[{"request": "r11", "session": "A/am"}])
    _solve_refuses(
        tmp_path, capsys, json.dumps(doc), "bookings[0]", "unknown request 'r11' (did you mean"
    )
    doc = _doc(bookings=[{"request": "r1", "session": "A/pn"}])
    _solve_refuses(
        tmp_path,
        capsys,
        json.dumps(doc),
        "bookings[0] (request 'r1')",
        "is not one of the request's preferences (did you mean 'A/pm'?).",
    )


def test_regression_unknown_request_in_explain_did_you_mean(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [
        "explain",
        str(DATA / "sample-small.json"),
        str(DATA / "sample-small.fcfs-solution.json"),
    ]
    assert main([*argv, "--request", "r00012"]) == 2
    line = _one_line(capsys)
    assert line == (
        f"{DATA / 'sample-small.json'}: --request: unknown request 'r00012' "
        "(did you mean 'r000012'?)."
    )


def test_regression_misspelt_key_before_missing_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = json.dumps(_doc()).replace('"capacity": 1', '"capacty": 5', 1)
    line = _solve_refuses(
        tmp_path,
        capsys,
        text,
        "sessions[0] (id 'A/am'): ",
        "unknown key 'capacty' (did you mean 'capacity'?)",
    )
    assert "required key" not in line


@pytest.mark.parametrize(
    ("key", "where", "suggested"),
    [
        ("prority", "requests[0] (id 'r1')", "priority"),
        ("birthdate", "children[0] (id 'c1')", "birth_date"),
        ("chidren", "requests[0] (id 'r1')", "children"),
    ],
)
def test_misspelt_key_in_an_event_line_is_told_the_known_one(
    key: str, where: str, suggested: str
) -> None:
    line = json.dumps(
        {
            "op": "book",
            "request": {"id": "r1", "children": ["c1"], "preferences": ["s"]},
            "children": [{"id": "c1", "birth_date": "2024-01-01"}],
        }
    )
    if suggested == "priority":
        line = line.replace('"preferences"', f'"{key}": 1, "preferences"')
    else:
        line = line.replace(f'"{suggested}"', f'"{key}"', 1 if suggested == "children" else 2)
    with pytest.raises(ValueError, match=f"did you mean '{suggested}'") as info:
        parse_event(line)
    assert f"unknown key '{key}'" in str(info.value)


def test_regression_bad_timestamp_value_shown_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["sessions"][0]["start"] = "2025-04-19 08:30"
    line = _solve_refuses(
        tmp_path, capsys, json.dumps(doc), "sessions[0] (id 'A/am').start", "RFC 3339"
    )
    assert line.count("2025-04-19 08:30") == 1


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("birth_date", "2023-02-30", "not a calendar date."),
        ("birth_date", "02/05/2023", "not a date of the form YYYY-MM-DD."),
        ("birth_date", 20230502, "valid date"),
        ("household", 4417, "valid string"),
        ("residency", ["Siming", "Huli"], "valid string"),
        ("household", "h\ud800-4417", "lone surrogate"),
    ],
)
def test_regression_personal_data_not_in_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: Any, problem: str
) -> None:
    doc = _doc()
    doc["children"][0][key] = value
    line = _solve_refuses(tmp_path, capsys, json.dumps(doc), "children[0] (id 'c1')", problem)
    for shown in ("2023", "02/05", "4417", "Siming", "Huli", "got"):
        assert shown not in line.replace(str(tmp_path), ""), line


def test_personal_data_not_in_event_messages() -> None:
    child = {"id": "k", "birth_date": "2023-02-29", "household": "secret-household"}
    line = json.dumps(
        {"op": "book", "request": {"id": "r", "children": ["k"], "preferences": ["s"]},
         "children": [child]}
    )  # fmt: skip
    with pytest.raises(ValueError) as info:
        parse_event(line)
    assert str(info.value) == "children[0] (id 'k').birth_date: not a calendar date."


def test_long_values_are_clipped_in_messages(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = _doc()
    doc["sessions"][0]["start"] = "x" * 500
    line = _solve_refuses(tmp_path, capsys, json.dumps(doc), "sessions[0]", "RFC 3339")
    assert "x" * 50 not in line and "..." in line


# ---------------------------------------------------------------- nothing broke


@pytest.mark.parametrize("path", sorted(DATA.glob("*.json")), ids=lambda p: p.name)
def test_shipped_data_still_loads(path: Path) -> None:
    if path.name.endswith("solution.json"):
        assert load_solution(path).score is not None
    else:
        assert load_instance(path).requests


def test_shipped_events_pass_the_line_screen() -> None:
    lines = (DATA / "sample-events.jsonl").read_text(encoding="utf-8").splitlines()
    assert all(event_line_error(x) is None for x in lines if x.strip())


def test_report_to_a_file_instead_of_a_folder_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    target = tmp_path / "report"
    target.write_text("precious", encoding="utf-8")
    argv = [
        "report",
        str(DATA / "sample-small.json"),
        str(DATA / "sample-small.fcfs-solution.json"),
    ]
    assert main([*argv, "-o", str(target)]) == 2
    assert _one_line(capsys) == f"{target}: is a file, not a folder."
    assert target.read_text(encoding="utf-8") == "precious"
