"""One home for each rule: :mod:`slotalloc.rules`, checked against the verifier's plain copy.

Two halves. A scan of ``src/slotalloc`` with :mod:`ast` fails on any formula
that restates a rule outside its homes: ``rules.py``, the verifier's own copy
(``verify/``) and, for rules 3-5, the solver's row modules
(``solver/rows/``, which state them as constraints). Then the helpers of
``rules.py`` are compared with the verifier on generated instances: ages and
eligibility, a session's limits, a child's overlaps and cap, and the
incremental :class:`~slotalloc.rules.Occupancy`.
"""

from __future__ import annotations

import ast
import datetime as dt
import itertools
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import slotalloc
from slotalloc.compile import Compiled, compile_instance
from slotalloc.models import CN_2019, AgeGroup, Instance
from slotalloc.rules import (
    Occupancy,
    Rule,
    age_months,
    caregiver_need,
    ceil_div,
    child_cap_allows,
    child_cap_exceeded,
    child_conflicts,
    group_at_age,
    group_need,
    group_of,
    group_room,
    groups_of,
    ineligibility,
    month_groups,
    over_session_limits,
    overlap,
    pool_scale,
    pooled_weights,
    session_excess,
    session_fits,
    sessions_overlap,
)
from slotalloc.verify import VALIDITY_RULES, age_in_months, check_assignment, eligible_group
from strategies import instances

SRC = Path(slotalloc.__file__).resolve().parent

# ---------------------------------------------------------------- the scan

#: Rules 3-5 as formulas: integer ceilings, shares of a ratio, interval overlaps.
SESSION_AND_CHILD = frozenset({"ceil division", "division by a ratio", "interval overlap"})
#: Rule 2 as formulas: a month age, a group picked from an age.
ELIGIBILITY = frozenset({"month-age formula", "month difference", "group of an age by index"})

#: Modules outside this suite's reach that still do their own rule arithmetic,
#: by (path under src/slotalloc, kind): each entry goes once the module calls
#: slotalloc.rules (the online engine's per-group occupancy figures).
KNOWN = frozenset({("online/read.py", "ceil division")})


def _text(node: ast.AST) -> str:
    return ast.unparse(node).lower()


def _ceil_division(node: ast.AST) -> bool:
    """``-(-a // b)`` or ``(a + b - 1) // b``."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        inner = node.operand
        return (
            isinstance(inner, ast.BinOp)
            and isinstance(inner.op, ast.FloorDiv)
            and isinstance(inner.left, ast.UnaryOp)
            and isinstance(inner.left.op, ast.USub)
        )
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv):
        top = node.left
        return (
            isinstance(top, ast.BinOp)
            and isinstance(top.op, ast.Sub)
            and isinstance(top.right, ast.Constant)
            and top.right.value == 1
            and isinstance(top.left, ast.BinOp)
            and isinstance(top.left.op, ast.Add)
            and _text(top.left.right) == _text(node.right)
        )
    return False


def _by_ratio(node: ast.AST) -> bool:
    """``x // ratio``, ``x / ratio``, ``ceil(x / ratio)``, ``Fraction(x, ratio)``."""
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.FloorDiv | ast.Div):
        return "ratio" in _text(node.right)
    if isinstance(node, ast.Call) and _text(node.func).split(".")[-1] == "fraction":
        return len(node.args) == 2 and "ratio" in _text(node.args[1])
    return False


def _interval_overlap(node: ast.AST) -> bool:
    """``a.start < b.end and b.start < a.end`` (``and`` or ``&``)."""
    if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.And):
        parts = node.values
    elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitAnd):
        parts = [node.left, node.right]
    else:
        return False
    crossed = [
        p
        for p in parts
        if isinstance(p, ast.Compare)
        and len(p.ops) == 1
        and isinstance(p.ops[0], ast.Lt)
        and "start" in _text(p.left)
        and "end" in _text(p.comparators[0])
    ]
    return len(crossed) >= 2


def _month_age(node: ast.AST) -> bool:
    """``(year - year) * 12``."""
    if not (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mult)):
        return False
    return any(
        isinstance(b, ast.Constant) and b.value == 12 and isinstance(a, ast.BinOp)
        for a, b in ((node.left, node.right), (node.right, node.left))
        if isinstance(a, ast.BinOp) and isinstance(a.op, ast.Sub)
    )


def _month_difference(node: ast.AST) -> bool:
    """``on_month - birth_month`` (months as numpy ``datetime64[M]``, say)."""
    return (
        isinstance(node, ast.BinOp)
        and isinstance(node.op, ast.Sub)
        and "month" in _text(node.left)
        and "month" in _text(node.right)
    )


def _group_by_index(node: ast.AST) -> bool:
    """``month_group[age]``: an age's group looked up by hand."""
    return isinstance(node, ast.Subscript) and _text(node.value).endswith("month_group")


CHECKS = (
    ("ceil division", _ceil_division),
    ("division by a ratio", _by_ratio),
    ("interval overlap", _interval_overlap),
    ("month-age formula", _month_age),
    ("month difference", _month_difference),
    ("group of an age by index", _group_by_index),
)


def findings(source: str) -> list[tuple[int, str, str]]:
    """(line, kind, text) of every formula in ``source`` that restates a rule."""
    out = []
    for node in ast.walk(ast.parse(source)):
        for kind, check in CHECKS:
            if check(node):
                out.append((getattr(node, "lineno", 0), kind, ast.unparse(node)))
    return out


def _exempt(path: str, kind: str) -> bool:
    if path == "rules.py" or path.startswith("verify/"):
        return True
    if path.startswith("solver/rows/") and kind in SESSION_AND_CHILD:
        return True
    return (path, kind) in KNOWN


@pytest.mark.parametrize(
    ("source", "kind"),
    [
        ("need = -(-n // r)", "ceil division"),
        ("delta = (n + k + r - 1) // r", "ceil division"),
        ("w = lcm // c.ratio", "division by a ratio"),
        ("x = math.ceil(n / ratio[g])", "division by a ratio"),
        ("x = Fraction(n, group.ratio)", "division by a ratio"),
        ("o = c.start[s] < c.end[t] and c.start[t] < c.end[s]", "interval overlap"),
        ("o = (start[a] < end[b]) & (start[b] < end[a])", "interval overlap"),
        ("a = (sy - by) * 12 + (sm - bm)", "month-age formula"),
        ("m = (o_month - b_month).astype(int)", "month difference"),
        ("g = c.month_group[a]", "group of an age by index"),
    ],
)
def test_the_scan_sees_each_kind_of_formula(source: str, kind: str) -> None:
    assert kind in {k for _, k, _ in findings(source)}


def test_no_rule_is_restated_outside_its_homes() -> None:
    found = []
    for file in sorted(SRC.rglob("*.py")):
        path = file.relative_to(SRC).as_posix()
        for line, kind, text in findings(file.read_text(encoding="utf-8")):
            if not _exempt(path, kind):
                found.append(f"{path}:{line}: {kind}: {text}")
    assert not found, "call slotalloc.rules instead:\n" + "\n".join(found)


def test_every_formula_of_the_rules_module_is_seen_by_the_scan() -> None:
    kinds = {k for _, k, _ in findings((SRC / "rules.py").read_text(encoding="utf-8"))}
    assert {"ceil division", "month-age formula", "group of an age by index"} <= kinds


# ---------------------------------------------------------------- names


def test_rule_codes_are_the_verifiers_labels() -> None:
    assert {r.code for r in Rule} == set(VALIDITY_RULES) - {"unknown-id"}
    assert [r.number for r in Rule] == sorted(r.number for r in Rule)
    assert all(str(r) == r.value for r in Rule)


def test_conflict_labels_keep_the_words_of_solution_files() -> None:
    assert Rule.PER_CHILD_CAP.conflict_label == "max_sessions_per_child"
    assert all(r.conflict_label == r.value for r in Rule if r is not Rule.PER_CHILD_CAP)


# ---------------------------------------------------------------- rule 2


@given(st.dates(dt.date(2018, 1, 1), dt.date(2026, 12, 31)), st.dates(dt.date(2024, 1, 1)))
def test_age_months_is_the_verifiers(birth: dt.date, on: dt.date) -> None:
    a = age_months(birth.year, birth.month, birth.day, on.year, on.month, on.day)
    assert a == age_in_months(birth, on)


def _policy_group(groups: tuple[AgeGroup, ...], age: int) -> int:
    return next((i for i, g in enumerate(groups) if g.min_months <= age < g.max_months), -1)


@pytest.mark.parametrize(
    "groups",
    [
        CN_2019,
        (
            AgeGroup(name="a", min_months=3, max_months=9, ratio=2, max_group_size=4),
            AgeGroup(name="b", min_months=12, max_months=20, ratio=4, max_group_size=6),
        ),
    ],
)
def test_group_at_age_is_the_policys_group(groups: tuple[AgeGroup, ...]) -> None:
    month_group = month_groups(groups)
    ages = list(range(-3, 50))
    assert [group_at_age(a, month_group) for a in ages] == [_policy_group(groups, a) for a in ages]
    vector = group_at_age(np.array(ages, dtype=np.int64), month_group)
    assert vector.tolist() == [_policy_group(groups, a) for a in ages]


def _verifier_group(inst: Instance, c: Compiled, child: str, session: str) -> int:
    g = eligible_group(inst, child, session)
    return -1 if g is None else c.group_names.index(g.name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(instances())
def test_eligibility_is_the_verifiers(inst: Instance) -> None:
    c = compile_instance(inst)
    pairs = list(itertools.product(range(c.n_children), range(c.n_sessions)))
    kids = np.array([k for k, _ in pairs], dtype=np.int64)
    sess = np.array([s for _, s in pairs], dtype=np.int64)
    vector = groups_of(
        c.birth[kids], c.sess_date[sess], c.min_months[sess], c.max_months[sess], c.month_group
    ).tolist()
    for (k, s), g in zip(pairs, vector, strict=True):
        child, session = inst.children[k], inst.sessions[s]
        want = _verifier_group(inst, c, child.id, session.id)
        assert g == group_of(c, child.birth_date, s) == want
        b, d = child.birth_date, session.start.date()
        a = age_months(b.year, b.month, b.day, d.year, d.month, d.day)
        why = ineligibility(a, int(c.min_months[s]), int(c.max_months[s]), c.month_group)
        assert (why is None) == (want >= 0)


# ---------------------------------------------------------------- rules 3-5


@st.composite
def assignments(draw: st.DrawFn, inst: Instance) -> list[int]:
    """Arcs of an assignment, at most one per request, rules 3-5 broken or not."""
    c = compile_instance(inst)
    out = []
    for r in range(c.n_requests):
        lo, hi = int(c.req_arc_ptr[r]), int(c.req_arc_ptr[r + 1])
        if hi > lo and draw(st.booleans()):
            out.append(draw(st.integers(lo, hi - 1)))
    return out


def _pairs(c: Compiled, arcs: list[int]) -> list[tuple[str, str]]:
    return [(c.request_ids[int(c.arc_req[a])], c.session_ids[int(c.arc_sess[a])]) for a in arcs]


def _kids(c: Compiled, r: int) -> list[int]:
    return c.req_child[c.req_child_ptr[r] : c.req_child_ptr[r + 1]].tolist()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_session_and_child_checks_are_the_verifiers(data: st.DataObject) -> None:
    inst = data.draw(instances(bookings=True))
    c = compile_instance(inst)
    arcs = data.draw(assignments(inst))
    verdict = check_assignment(inst, _pairs(c, arcs))
    sid, cid = c.session_ids, c.child_ids

    want_sessions = Counter((v.rule, v.sessions[0]) for v in verdict if v.rule.startswith("3-"))
    got_sessions: Counter[tuple[str, str]] = Counter()
    for s in sorted({int(c.arc_sess[a]) for a in arcs}):
        mine = [a for a in arcs if c.arc_sess[a] == s]
        counts = c.arc_groups[mine].sum(axis=0).tolist()
        excess = session_excess(c, s, sum(counts), counts)
        got_sessions.update((rule.code, sid[s]) for rule, _ in excess)
        assert session_fits(c, s, sum(counts), counts) == (not excess)
    assert got_sessions == want_sessions

    want_children = Counter((v.rule, v.children[0]) for v in verdict if v.rule[0] in "45")
    got_children: Counter[tuple[str, str]] = Counter()
    held: dict[int, list[int]] = {}
    for a in arcs:
        for k in _kids(c, int(c.arc_req[a])):
            held.setdefault(k, []).append(int(c.arc_sess[a]))
    for k, sessions in held.items():
        for i, s in enumerate(sessions):
            overlaps = [x for x in child_conflicts(c, s, sessions[:i]) if x[0] is Rule.OVERLAP]
            got_children[(Rule.OVERLAP.code, cid[k])] += len(overlaps)
            for _, j in overlaps:
                assert sessions_overlap(c, s, sessions[j])
        if child_cap_exceeded(len(sessions), c.max_sessions_per_child):
            got_children[(Rule.PER_CHILD_CAP.code, cid[k])] += 1
    assert +got_children == want_children


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_occupancy_names_the_rule_the_verifier_finds(data: st.DataObject) -> None:
    inst = data.draw(instances())
    c = compile_instance(inst)
    order = data.draw(st.permutations(range(c.n_arcs)))
    occ = Occupancy(c)
    held: list[int] = []
    for a in order:
        r, s = int(c.arc_req[a]), int(c.arc_sess[a])
        if any(c.arc_req[b] == r for b in held):
            continue
        groups = [(g, k) for g, k in enumerate(c.arc_groups[a].tolist()) if k]
        rule = occ.broken_rule(s, int(c.req_size[r]), groups, _kids(c, r))
        assert occ.violation(s, int(c.req_size[r]), groups, _kids(c, r)) == (
            None if rule is None else rule.code
        )
        found = {v.rule for v in check_assignment(inst, _pairs(c, [*held, a]))}
        if rule is None:
            assert not {x for x in found if x[0] in "345"}
            occ.add(s, int(c.req_size[r]), groups, _kids(c, r))
            held.append(a)
        else:
            assert rule.code in found


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=1, max_size=3),
    st.lists(st.integers(0, 6), min_size=3, max_size=3),
    st.integers(0, 12),
    st.integers(0, 4),
    st.booleans(),
)
def test_vectorised_limits_are_the_scalar_need(
    ratio: list[int], dims: list[int], capacity: int, caregivers: int, pooled: bool
) -> None:
    dims = [d + 1 for d in dims[: len(ratio)]]
    lcm = pool_scale(ratio) if pooled else 0
    counts = np.indices(dims)
    bad = over_session_limits(counts, capacity, caregivers, ratio, lcm)
    for n in itertools.product(*(range(d) for d in dims)):
        need = caregiver_need(list(n), ratio, lcm)
        exact = sum(k / r for k, r in zip(n, ratio, strict=True))
        if pooled:
            assert need == sum(k * lcm // r for k, r in zip(n, ratio, strict=True))
            assert abs(need / lcm - exact) < 1e-9
        else:
            assert need == sum(group_need(k, r) for k, r in zip(n, ratio, strict=True))
        over = sum(n) > capacity or need > caregivers * (lcm or 1)
        assert bool(bad[n]) == over


@given(st.integers(0, 60), st.integers(1, 9), st.integers(0, 9), st.integers(1, 60))
def test_integer_helpers(n: int, ratio: int, y: int, lcm_mult: int) -> None:
    assert ceil_div(n, ratio) == group_need(n, ratio) == -(-n // ratio)
    assert group_need(n, ratio) * ratio >= n > (group_need(n, ratio) - 1) * ratio
    assert (n <= group_room(y, ratio)) == (group_need(n, ratio) <= y)
    lcm = ratio * lcm_mult
    assert pooled_weights(ratio, lcm) * ratio == lcm


@given(st.integers(0, 5), st.integers(0, 3))
def test_per_child_cap(held: int, cap: int) -> None:
    assert child_cap_allows(held, cap) == (cap == 0 or held < cap)
    assert child_cap_exceeded(held, cap) == (cap > 0 and held > cap)


def test_overlap_is_half_open() -> None:
    assert overlap(0, 10, 5, 15) and overlap(0, 10, 0, 10) and overlap(2, 3, 0, 10)
    assert not overlap(0, 10, 10, 20) and not overlap(10, 20, 0, 10)
    starts, ends = np.array([0, 10, 5]), np.array([10, 20, 6])
    assert overlap(starts, ends, 9, 11).tolist() == [True, True, False]


def test_the_compiler_still_answers_to_the_old_names() -> None:
    import slotalloc.compile as compile_module
    import slotalloc.rules as rules_module

    assert compile_module.age_months is rules_module.age_months
    assert compile_module.group_of is rules_module.group_of
    assert compile_module._groups_vectorised is rules_module.groups_of
